// Batched order statistics on the CPU (declarations; implementation in csrc/cpu/order_stats.cpp).
//
// Conventions (shared by every backend, see python/synthperf/ops/order_stats.py):
//   x       [B, ld] row-major values; row b holds lengths[b] valid entries x[b, 0:lengths[b]],
//           the rest is padding and never read.
//   ranks   [R, A] 1-based ranks (k-th smallest), R = 1 (shared by all rows) or R = B.
//   out     [B, A] selected values, out[b, a] = k-th smallest of row b with k = ranks[r(b), a].
// Errors are reported through the returned status (0 = ok) and the first offending row.
#pragma once

#include <cstdint>

namespace synthperf {

enum SelectStatus : int {
  kSelectOk = 0,
  kSelectNaN = 1,          // a NaN inside the valid part of a row
  kSelectRankOutOfRange = 2,  // rank < 1 or rank > lengths[b]
  kSelectBadLength = 3,    // lengths[b] < 1 or > ld
};

struct SelectError {
  int status = kSelectOk;
  std::int64_t row = -1;
  std::int64_t value = 0;  // offending rank or length
};

// Histogram bucket selection, OpenMP over rows. simd: use the AVX-512 passes when the CPU
// has them (select_simd.h); false forces the portable path (its tests and CPUs without it).
// zero_rank_value: when set, rank 0 is allowed and yields *zero_rank_value (split conformal's
// "top" threshold when alpha < 1/(n+1)), written by the worker threads with the rest.
template <typename T>
SelectError order_statistics_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                 const std::int64_t* lengths, const std::int64_t* ranks,
                                 std::int64_t rank_rows, std::int64_t A, T* out, bool simd = true,
                                 const T* zero_rank_value = nullptr);

// The GPU algorithms executed on the CPU with the same device_math.h functions, so the CPU
// tests exercise the exact math the GPU kernels run. Slower than order_statistics_cpu.
// Bitwise selection (one counting pass per key bit): the Triton kernel's algorithm.
template <typename T>
SelectError order_statistics_bitwise_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                         const std::int64_t* lengths, const std::int64_t* ranks,
                                         std::int64_t rank_rows, std::int64_t A, T* out);

// Radix-digit selection (8-bit digits, one histogram pass per digit): the CUDA kernel's.
template <typename T>
SelectError order_statistics_radix_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                       const std::int64_t* lengths, const std::int64_t* ranks,
                                       std::int64_t rank_rows, std::int64_t A, T* out);

}  // namespace synthperf
