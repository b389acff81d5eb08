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

// Up to W rows of at most P elements at once, one row per lane: each W-column group of the
// rows is loaded (+inf past each row's length) and transposed in registers, the P columns are
// sorted by the network, then every rank is a lookup.
template <class X, int P>
SP_TARGET int short_rows_tile(const typename X::T* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                              const std::int64_t* ranks, bool shared_ranks, std::int64_t A, typename X::T* out,
                              const typename X::T* zero_rank_value) {
  using T = typename X::T;
  using V = typename X::V;
  using M = typename X::M;
  constexpr int W = X::W;
  constexpr int G = (P + W - 1) / W;  // column groups of W
  const V inf = X::set1(std::numeric_limits<T>::infinity());
  V col[G * W];
  M bad = 0;
  for (int g = 0; g < G; ++g) {
    V* r = col + g * W;
    for (int l = 0; l < W; ++l) {
      if (l < rows) {
        const std::int64_t left = lengths[l] - g * W;  // this row's elements in group g
        r[l] = X::load_or(inf, X::tail(left > 0 ? left : 0), x + l * ld + g * W);
        bad |= X::unord(r[l], r[l]);
      } else {
        r[l] = inf;
      }
    }
    X::transpose(r);
  }
  if (bad) return kSimdNaN;
  sort_columns<X, P>(col);
  alignas(64) T sorted[P][W];
  for (int j = 0; j < P; ++j) X::store(sorted[j], col[j]);
  for (int l = 0; l < rows; ++l) {
    const std::int64_t* rk = shared_ranks ? ranks : ranks + l * A;
    for (std::int64_t a = 0; a < A; ++a) out[l * A + a] = rk[a] == 0 ? *zero_rank_value : sorted[rk[a] - 1][l];
  }
  return kSimdSelected;
}

template <class X>
int short_rows_network(const typename X::T* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                       const std::int64_t* ranks, bool shared_ranks, std::int64_t A, typename X::T* out,
                       const typename X::T* zero_rank_value) {
  std::int64_t maxlen = 1;
  for (int l = 0; l < rows; ++l) maxlen = std::max(maxlen, lengths[l]);
  const auto run = [&](auto tile) {
    return tile(x, rows, ld, lengths, ranks, shared_ranks, A, out, zero_rank_value);
  };
  if (maxlen <= 2) return run(short_rows_tile<X, 2>);
  if (maxlen <= 4) return run(short_rows_tile<X, 4>);
  if (maxlen <= 8) return run(short_rows_tile<X, 8>);
  if (maxlen <= 16) return run(short_rows_tile<X, 16>);
  return run(short_rows_tile<X, 32>);
}

}  // namespace

template <>
int simd_short_rows_select<double>(const double* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                                   const std::int64_t* ranks, bool shared_ranks, std::int64_t A, double* out,
                                  const double* zero_rank_value) {
  return short_rows_network<F64>(x, rows, ld, lengths, ranks, shared_ranks, A, out, zero_rank_value);
}
template <>
int simd_short_rows_select<float>(const float* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                                  const std::int64_t* ranks, bool shared_ranks, std::int64_t A, float* out,
                                  const float* zero_rank_value) {
  return short_rows_network<F32>(x, rows, ld, lengths, ranks, shared_ranks, A, out, zero_rank_value);
}

#else  // no AVX-512 code on this compiler/architecture

template <typename T>
int simd_short_rows_select(const T*, int, std::int64_t, const std::int64_t*, const std::int64_t*, bool,
                           std::int64_t, T*, const T*) {
  return kSimdDeclined;
}
template int simd_short_rows_select<float>(const float*, int, std::int64_t, const std::int64_t*,
                                           const std::int64_t*, bool, std::int64_t, float*, const float*);
template int simd_short_rows_select<double>(const double*, int, std::int64_t, const std::int64_t*,
                                            const std::int64_t*, bool, std::int64_t, double*, const double*);

#endif  // SYNTHPERF_SIMD_SELECT
}  // namespace synthperf
