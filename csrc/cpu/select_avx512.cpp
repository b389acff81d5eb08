// AVX-512 histogram selection (see csrc/include/synthperf/select_simd.h).
//
// Per row, with nb buckets (len/4 rounded up to a power of two, 16..4096):
//   1. min, max and NaN flag in one streaming pass (also pulls the row into L1);
//   2. lo/hi from a 64-element strided sample: its 2nd smallest / 2nd largest, widened by two
//      sample gaps and clipped to [min, max], so one outlier cannot squeeze the buckets;
//   3. bucket j = clamp(trunc((x - lo) * nb / (hi - lo)), 0, nb - 1) of every element, stored
//      as uint16. The map is monotone in x, so bucket order is value order and the counts
//      locate every rank exactly; lo and hi only decide speed;
//   4. histogram (four interleaved copies: fewer store-forwarding stalls on repeated buckets),
//      prefetching the caller's next row meanwhile (pass 1 of that row then hits the cache);
//   5. a 16-lane prefix sum; rank r lies in bucket #{j : prefix[j] < r};
//   6. one 32-lane scan lists the positions of the needed buckets' elements, which are
//      gathered slot by slot;
//   7. each rank is finished inside its bucket (about 4 elements): by counting (lt <= k < le)
//      when the bucket holds at most 32 elements, else std::nth_element.
// Ranks 1 and len are the min and max of pass 1. Rows of at most 32 elements are sorted by
// counting instead (count_sort_select); rows of 33..63 elements take the portable path.
// Batches of short rows have their own kernel: csrc/cpu/short_rows_avx512.cpp.
#include "synthperf/select_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "synthperf/avx512_lanes.h"

namespace synthperf {

#ifdef SYNTHPERF_SIMD_SELECT

bool simd_select_supported() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }();
  return ok;
}

namespace {

using avx512::F32;
using avx512::F64;
using avx512::kCountSelectMax;

constexpr int kMaxInteriorRanks = 32;  // more ranks per row: the portable path
constexpr std::int64_t kPad = 64;      // slack after idx/pos for full-vector stores

// Pass 1: min and max of row[0, len); returns true when a NaN is present.
template <class X>
SP_TARGET bool minmax_nan(const typename X::T* row, std::int64_t len, typename X::T* mn, typename X::T* mx) {
  using V = typename X::V;
  using M = typename X::M;
  V a = X::set1(row[0]), b = a, c = a, d = a;
  M bad = 0;
  std::int64_t i = 0;
  for (; i + 2 * X::W <= len; i += 2 * X::W) {
    const V v = X::loadu(row + i), w = X::loadu(row + i + X::W);
    bad |= X::unord(v, w);
    a = X::vmin(a, v); b = X::vmax(b, v); c = X::vmin(c, w); d = X::vmax(d, w);
  }
  for (; i < len; i += X::W) {
    const M m = X::tail(len - i);
    const V v = X::load(m, row + i);
    bad |= X::munord(m, v);
    a = X::mmin(a, m, v); b = X::mmax(b, m, v);
  }
  *mn = X::rmin(X::vmin(a, c));
  *mx = X::rmax(X::vmax(b, d));
  return bad != 0;
}

// Pass 2: 2nd smallest and 2nd largest of the 64 elements row[t * (len / 64)], t < 64.
template <class X>
SP_TARGET void sample_second_extremes(const typename X::T* row, std::int64_t len, typename X::T* lo2,
                                      typename X::T* hi2) {
  using T = typename X::T;
  using V = typename X::V;
  using M = typename X::M;
  const std::int64_t stride = len / 64;
  const V inf = X::set1(std::numeric_limits<T>::infinity()), ninf = X::set1(-std::numeric_limits<T>::infinity());
  V a1 = inf, a2 = inf, b1 = ninf, b2 = ninf;  // per lane: two smallest, two largest
  for (int q = 0; q < 64; q += X::W) {
    const V v = X::gather_strided(row, q, stride);
    a2 = X::vmin(a2, X::vmax(a1, v)); a1 = X::vmin(a1, v);
    b2 = X::vmax(b2, X::vmin(b1, v)); b1 = X::vmax(b1, v);
  }
  // 2nd smallest overall = min(smallest of a2, 2nd smallest lane of a1)
  const T m1 = X::rmin(a1);
  const M e = X::eq(a1, X::set1(m1));
  const T s1 = X::rmin(X::mask_mov(a1, M(e & -e), inf));
  *lo2 = std::min(s1, X::rmin(a2));
  const T M1 = X::rmax(b1);
  const M f = X::eq(b1, X::set1(M1));
  const T S1 = X::rmax(X::mask_mov(b1, M(f & -f), ninf));
  *hi2 = std::max(S1, X::rmax(b2));
}

// Pass 3: bucket index of every element (idx has kPad slack for the last full store).
template <class X>
SP_TARGET void bucket_indices(const typename X::T* row, std::int64_t len, typename X::T lo,
                              typename X::T scale, int nb, std::uint16_t* idx) {
  using V = typename X::V;
  const V vlo = X::set1(lo), vs = X::set1(scale), zero = X::set1(0), last = X::set1(typename X::T(nb - 1));
  std::int64_t i = 0;
  for (; i + X::W <= len; i += X::W) {
    const V t = X::scaled(X::loadu(row + i), vlo, vs);
    X::store_u16(idx + i, X::vmin(X::vmax(t, zero), last));
  }
  if (i < len) {
    const V t = X::scaled(X::load(X::tail(len - i), row + i), vlo, vs);
    X::store_u16(idx + i, X::vmin(X::vmax(t, zero), last));
  }
}

// The k-th smallest (0-based) of a[0, g), g <= 32: the element with #{< a_i} <= k < #{<= a_i}.
template <class X>
SP_TARGET typename X::T count_select(const typename X::T* a, int g, int k) {
  using V = typename X::V;
  using M = typename X::M;
  constexpr int kVecs = (kCountSelectMax + X::W - 1) / X::W;
  V v[kVecs];
  M m[kVecs];
  const int nv = (g + X::W - 1) / X::W;
  for (int q = 0; q < nv; ++q) {
    m[q] = X::tail(g - q * X::W);
    v[q] = X::load(m[q], a + q * X::W);
  }
  for (int i = 0; i < g; ++i) {
    const V b = X::set1(a[i]);
    int lt = 0, le = 0;
    for (int q = 0; q < nv; ++q) {
      lt += __builtin_popcount(static_cast<unsigned>(X::lt(m[q], v[q], b)));
      le += __builtin_popcount(static_cast<unsigned>(X::le(m[q], v[q], b)));
    }
    if (lt <= k && k < le) return a[i];
  }
  return a[0];  // not reached for NaN-free input
}

// Steps 4-7 on the bucket indices; see the file comment. Buffers are sized by the caller.
template <class X>
SP_TARGET void select_from_buckets(const typename X::T* row, std::int64_t len, const std::int64_t* rk,
                                   const int* interior, int nr, int nb, typename X::T* out,
                                   const std::uint16_t* idx, std::int32_t* c, std::int32_t* prefix,
                                   std::int32_t* pos, std::uint8_t* slot_of, typename X::T* gathered,
                                   const typename X::T* prefetch) {
  using T = typename X::T;
  // 4. histogram
  std::int64_t i = 0;
  constexpr std::int64_t kLine = 64 / sizeof(T);
  for (; i + 4 <= len; i += 4) {
    if (prefetch != nullptr && (i % kLine) == 0) {  // the caller's next row, one line per step
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + i), _MM_HINT_T0);
    }
    ++c[idx[i]]; ++c[nb + idx[i + 1]]; ++c[2 * nb + idx[i + 2]]; ++c[3 * nb + idx[i + 3]];
  }
  for (; i < len; ++i) ++c[idx[i]];
  // 5. combined counts, inclusive prefix, bucket of every interior rank
  int bucket[kMaxInteriorRanks];
  for (int q = 0; q < nr; ++q) bucket[q] = 0;
  std::int32_t carry = 0;
  const __m512i zero = _mm512_setzero_si512();
  for (int j = 0; j < nb; j += 16) {
    __m512i v = _mm512_add_epi32(_mm512_add_epi32(_mm512_loadu_si512(c + j), _mm512_loadu_si512(c + nb + j)),
                                 _mm512_add_epi32(_mm512_loadu_si512(c + 2 * nb + j), _mm512_loadu_si512(c + 3 * nb + j)));
    _mm512_storeu_si512(c + j, v);
    v = _mm512_add_epi32(v, _mm512_alignr_epi32(v, zero, 15));
    v = _mm512_add_epi32(v, _mm512_alignr_epi32(v, zero, 14));
    v = _mm512_add_epi32(v, _mm512_alignr_epi32(v, zero, 12));
    v = _mm512_add_epi32(v, _mm512_alignr_epi32(v, zero, 8));
    v = _mm512_add_epi32(v, _mm512_set1_epi32(carry));
    _mm512_storeu_si512(prefix + j, v);
    for (int q = 0; q < nr; ++q) {
      const __m512i r = _mm512_set1_epi32(static_cast<std::int32_t>(rk[interior[q]]));
      bucket[q] += __builtin_popcount(static_cast<unsigned>(_mm512_cmplt_epi32_mask(v, r)));
    }
    carry = prefix[j + 15];
  }
  // gather slots: one per distinct needed bucket
  int need[kMaxInteriorRanks], slot[kMaxInteriorRanks];
  std::int32_t start[kMaxInteriorRanks], fill[kMaxInteriorRanks];
  int S = 0;
  std::int32_t off = 0;
  for (int q = 0; q < nr; ++q) {
    int t = 0;
    while (t < S && need[t] != bucket[q]) ++t;
    if (t == S) {
      need[S] = bucket[q];
      start[S] = fill[S] = off;
      off += c[bucket[q]];
      ++S;
    }
    slot[q] = t;
  }
  // 6. positions of the needed buckets' elements, 32 uint16 lanes per step, then gather
  __m512i nv[kMaxInteriorRanks];
  for (int t = 0; t < S; ++t) nv[t] = _mm512_set1_epi16(static_cast<short>(need[t]));
  const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  std::int64_t nc = 0;
  for (std::int64_t w = 0; w < len; w += 32) {
    const __mmask32 tm = (len - w) >= 32 ? 0xFFFFFFFFu : ((1u << (len - w)) - 1);
    const __m512i ix = _mm512_loadu_si512(idx + w);
    __mmask32 m = _mm512_cmpeq_epi16_mask(ix, nv[0]);
    for (int t = 1; t < S; ++t) m |= _mm512_cmpeq_epi16_mask(ix, nv[t]);
    m &= tm;
    const __mmask16 m0 = static_cast<__mmask16>(m), m1 = static_cast<__mmask16>(m >> 16);
    const __m512i p0 = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<std::int32_t>(w)));
    _mm512_storeu_si512(pos + nc, _mm512_maskz_compress_epi32(m0, p0));
    nc += __builtin_popcount(m0);
    _mm512_storeu_si512(pos + nc, _mm512_maskz_compress_epi32(m1, _mm512_add_epi32(p0, _mm512_set1_epi32(16))));
    nc += __builtin_popcount(m1);
  }
  for (int t = 0; t < S; ++t) slot_of[need[t]] = static_cast<std::uint8_t>(t);
  for (std::int64_t u = 0; u < nc; ++u) {
    const std::int32_t e = pos[u];
    gathered[fill[slot_of[idx[e]]]++] = row[e];
  }
  for (int t = 0; t < S; ++t) slot_of[need[t]] = 0xFF;
  // 7. finish each rank inside its bucket
  for (int q = 0; q < nr; ++q) {
    const int t = slot[q];
    T* g = gathered + start[t];
    const int gs = fill[t] - start[t];
    const std::int64_t k = rk[interior[q]] - 1 - (prefix[need[t]] - c[need[t]]);
    if (gs <= kCountSelectMax) {
      out[interior[q]] = count_select<X>(g, gs, static_cast<int>(k));
    } else {
      std::nth_element(g, g + k, g + gs);
      out[interior[q]] = g[k];
    }
  }
}

// Rows of at most 32 elements: sorted by counting, pos_i = #{x_j < x_i} + #{j < i : x_j == x_i}
// (a permutation, also with ties), then every rank is a lookup. Returns kSimdNaN on NaN.
template <class X>
SP_TARGET int count_sort_select(const typename X::T* row, int len, const std::int64_t* rk, std::int64_t A,
                                typename X::T* out) {
  using T = typename X::T;
  using V = typename X::V;
  using M = typename X::M;
  constexpr int kVecs = (kCountSelectMax + X::W - 1) / X::W;
  V v[kVecs];
  M m[kVecs];
  M bad = 0;
  const int nv = (len + X::W - 1) / X::W;
  for (int q = 0; q < nv; ++q) {
    m[q] = X::tail(len - q * X::W);
    v[q] = X::load(m[q], row + q * X::W);
    bad |= X::munord(m[q], v[q]);
  }
  if (bad) return kSimdNaN;
  T sorted[kCountSelectMax];
  for (int i = 0; i < len; ++i) {
    const V b = X::set1(row[i]);
    int p = 0;
    for (int q = 0; q < nv; ++q) {
      const int before = i - q * X::W;  // lanes of vector q with index < i
      const M mb = before <= 0 ? M(0) : X::tail(before);
      p += __builtin_popcount(static_cast<unsigned>(X::lt(m[q], v[q], b)));
      p += __builtin_popcount(static_cast<unsigned>(X::eq_masked(M(m[q] & mb), v[q], b)));
    }
    sorted[p] = row[i];
  }
  for (std::int64_t a = 0; a < A; ++a) out[a] = sorted[rk[a] - 1];
  return kSimdSelected;
}

template <class X>
int select_row(const typename X::T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A,
               typename X::T* out, SimdScratch<typename X::T>& s, const typename X::T* prefetch) {
  using T = typename X::T;
  if (len <= kCountSelectMax) return count_sort_select<X>(row, static_cast<int>(len), rk, A, out);
  if (len < 64 || len > (std::int64_t(1) << 30)) return kSimdDeclined;
  int interior[kMaxInteriorRanks];
  int nr = 0;
  for (std::int64_t a = 0; a < A; ++a) {
    if (rk[a] != 1 && rk[a] != len) {
      if (nr == kMaxInteriorRanks) return kSimdDeclined;
      interior[nr++] = static_cast<int>(a);
    }
  }
  T mn, mx;
  if (minmax_nan<X>(row, len, &mn, &mx)) return kSimdNaN;
  for (std::int64_t a = 0; a < A; ++a) {
    if (rk[a] == 1) out[a] = mn;
    else if (rk[a] == len) out[a] = mx;
  }
  if (nr == 0) return kSimdSelected;
  if (mn == mx) {
    for (int q = 0; q < nr; ++q) out[interior[q]] = mn;
    return kSimdSelected;
  }
  T lo2, hi2;
  sample_second_extremes<X>(row, len, &lo2, &hi2);
  const T gap = (hi2 - lo2) / T(61);
  const T lo = std::max(mn, lo2 - 2 * gap), hi = std::min(mx, hi2 + 2 * gap);
  int nb = 16;
  while (nb < len / 4 && nb < 4096) nb *= 2;
  const T scale = static_cast<T>(nb) / (hi - lo);
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi) || !std::isfinite(scale) || !(scale > T(0))) {
    return kSimdDeclined;
  }
  if (s.idx.size() < static_cast<std::size_t>(len + kPad)) s.idx.resize(len + kPad);
  if (s.pos.size() < static_cast<std::size_t>(len + kPad)) s.pos.resize(len + kPad);
  if (s.gathered.size() < static_cast<std::size_t>(len)) s.gathered.resize(len);
  if (s.count.size() < static_cast<std::size_t>(4 * nb)) s.count.resize(4 * nb);
  if (s.prefix.size() < static_cast<std::size_t>(nb)) s.prefix.resize(nb);
  if (s.slot_of.size() < static_cast<std::size_t>(nb)) s.slot_of.resize(nb, 0xFF);
  std::memset(s.count.data(), 0, 4 * static_cast<std::size_t>(nb) * sizeof(std::int32_t));
  bucket_indices<X>(row, len, lo, scale, nb, s.idx.data());
  select_from_buckets<X>(row, len, rk, interior, nr, nb, out, s.idx.data(), s.count.data(), s.prefix.data(),
                         s.pos.data(), s.slot_of.data(), s.gathered.data(), prefetch);
  return kSimdSelected;
}

}  // namespace

template <>
int simd_select_row<double>(const double* row, std::int64_t len, const std::int64_t* rk, std::int64_t A,
                            double* out, SimdScratch<double>& s, const double* prefetch) {
  return select_row<F64>(row, len, rk, A, out, s, prefetch);
}
template <>
int simd_select_row<float>(const float* row, std::int64_t len, const std::int64_t* rk, std::int64_t A,
                           float* out, SimdScratch<float>& s, const float* prefetch) {
  return select_row<F32>(row, len, rk, A, out, s, prefetch);
}

#else  // no AVX-512 code on this compiler/architecture: every row takes the portable path

bool simd_select_supported() { return false; }

template <typename T>
int simd_select_row(const T*, std::int64_t, const std::int64_t*, std::int64_t, T*, SimdScratch<T>&, const T*) {
  return kSimdDeclined;
}
template int simd_select_row<float>(const float*, std::int64_t, const std::int64_t*, std::int64_t, float*,
                                    SimdScratch<float>&, const float*);
template int simd_select_row<double>(const double*, std::int64_t, const std::int64_t*, std::int64_t, double*,
                                     SimdScratch<double>&, const double*);

#endif  // SYNTHPERF_SIMD_SELECT
}  // namespace synthperf
