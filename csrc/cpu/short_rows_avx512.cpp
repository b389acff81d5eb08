// Batches of short rows (width <= 32) sorted a block at a time by a vector sorting network,
// one row per lane (see simd_short_rows_select in csrc/include/synthperf/select_simd.h).
#include <algorithm>
#include <limits>

#include "synthperf/avx512_lanes.h"
#include "synthperf/select_simd.h"

namespace synthperf {

#ifdef SYNTHPERF_SIMD_SELECT
namespace {

using avx512::F32;
using avx512::F64;
using avx512::kCountSelectMax;

// Comparators of Batcher's odd-even merge sort on P = 2^p inputs (P <= 32), built at compile
// time so each network is unrolled with its columns in registers.
template <int P>
struct SortNetwork {
  static constexpr int kMax = 191;  // comparators for P = 32
  int size = 0;
  std::uint8_t lo[kMax] = {}, hi[kMax] = {};
  constexpr SortNetwork() {
    for (int p = 1; p < P; p <<= 1)
      for (int k = p; k >= 1; k >>= 1)
        for (int j = k % p; j + k < P; j += 2 * k)
          for (int i = 0; i < (k < P - j - k ? k : P - j - k); ++i)
            if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
              lo[size] = static_cast<std::uint8_t>(i + j);
              hi[size] = static_cast<std::uint8_t>(i + j + k);
              ++size;
            }
  }
};

// Sorts col[0, P) lane-wise (compare + blend: an exact permutation, no -0.0/0.0 rewriting).
template <class X, int P>
SP_TARGET inline void sort_columns(typename X::V* col) {
  using V = typename X::V;
  using M = typename X::M;
  static constexpr SortNetwork<P> net{};
#pragma GCC unroll 200
  for (int c = 0; c < net.size; ++c) {
    const V a = col[net.lo[c]], b = col[net.hi[c]];
    const M m = X::lt_all(b, a);
    col[net.lo[c]] = X::blend(m, a, b);
    col[net.hi[c]] = X::blend(m, b, a);
  }
}

// Up to W rows of at most 32 elements at once, one row per lane: columns are gathered
// (+inf past each row's length), sorted by the network, then every rank is a lookup.
template <class X>
SP_TARGET int short_rows_network(const typename X::T* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                                 const std::int64_t* ranks, bool shared_ranks, std::int64_t A, typename X::T* out) {
  using T = typename X::T;
  using V = typename X::V;
  using M = typename X::M;
  int maxlen = 1;
  M ends_at[kCountSelectMax + 1] = {};  // lanes whose row has exactly j elements
  for (int l = 0; l < rows; ++l) {
    maxlen = std::max(maxlen, static_cast<int>(lengths[l]));
    ends_at[lengths[l]] |= M(M(1) << l);
  }
  int P = 1;
  while (P < maxlen) P <<= 1;
  const V inf = X::set1(std::numeric_limits<T>::infinity());
  V col[kCountSelectMax];
  M valid = X::tail(rows), bad = 0;
  for (int j = 0; j < P; ++j) {
    valid = M(valid & ~ends_at[j]);
    col[j] = X::gather_column(x, ld, j, valid, inf);
    bad |= X::munord(valid, col[j]);
  }
  if (bad) return kSimdNaN;
  switch (P) {
    case 1: break;
    case 2: sort_columns<X, 2>(col); break;
    case 4: sort_columns<X, 4>(col); break;
    case 8: sort_columns<X, 8>(col); break;
    case 16: sort_columns<X, 16>(col); break;
    default: sort_columns<X, 32>(col); break;
  }
  alignas(64) T sorted[kCountSelectMax][X::W];
  for (int j = 0; j < P; ++j) X::store(sorted[j], col[j]);
  for (int l = 0; l < rows; ++l) {
    const std::int64_t* rk = shared_ranks ? ranks : ranks + l * A;
    for (std::int64_t a = 0; a < A; ++a) out[l * A + a] = sorted[rk[a] - 1][l];
  }
  return kSimdSelected;
}

}  // namespace

template <>
int simd_short_rows_select<double>(const double* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                                   const std::int64_t* ranks, bool shared_ranks, std::int64_t A, double* out) {
  return short_rows_network<F64>(x, rows, ld, lengths, ranks, shared_ranks, A, out);
}
template <>
int simd_short_rows_select<float>(const float* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                                  const std::int64_t* ranks, bool shared_ranks, std::int64_t A, float* out) {
  return short_rows_network<F32>(x, rows, ld, lengths, ranks, shared_ranks, A, out);
}

#else  // no AVX-512 code on this compiler/architecture

template <typename T>
int simd_short_rows_select(const T*, int, std::int64_t, const std::int64_t*, const std::int64_t*, bool,
                           std::int64_t, T*) {
  return kSimdDeclined;
}
template int simd_short_rows_select<float>(const float*, int, std::int64_t, const std::int64_t*,
                                           const std::int64_t*, bool, std::int64_t, float*);
template int simd_short_rows_select<double>(const double*, int, std::int64_t, const std::int64_t*,
                                            const std::int64_t*, bool, std::int64_t, double*);

#endif  // SYNTHPERF_SIMD_SELECT
}  // namespace synthperf
