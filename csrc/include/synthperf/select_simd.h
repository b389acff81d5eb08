// AVX-512 histogram selection for the CPU core (csrc/cpu/select_avx512.cpp).
//
// The same algorithm as bucket_select_row (selection.h), restructured so every pass over
// the row is a vector loop: a min/max/NaN pass, a 64-element strided sample, a bucket-index
// pass, one scalar histogram, a vector prefix sum that locates every rank's bucket, and a
// vector scan that lists the elements of the needed buckets. Compiled with per-function
// target attributes and chosen at run time (simd_select_supported), so the module still runs
// on CPUs without AVX-512, where the portable bucket_select_row serves every row.
#pragma once

#include <cstdint>
#include <vector>

namespace synthperf {

// Per-thread scratch, reused across rows (grown, never shrunk).
template <typename T>
struct SimdScratch {
  std::vector<std::uint16_t> idx;     // [len + pad] bucket index of every element
  std::vector<std::int32_t> count;    // [4 * nb] four interleaved histograms, then combined
  std::vector<std::int32_t> prefix;   // [nb] inclusive prefix sums of the combined counts
  std::vector<std::int32_t> pos;      // [len + pad] positions of the needed buckets' elements
  std::vector<std::uint8_t> slot_of;  // [nb] gather slot of a needed bucket, 0xFF otherwise
  std::vector<T> gathered;            // [len] elements of the needed buckets, slot by slot
};

enum SimdSelectResult : int {
  kSimdSelected = 0,  // out[] holds the order statistics
  kSimdNaN = 1,       // the row holds a NaN (out[] unspecified)
  kSimdDeclined = 2,  // not handled here (short row, many ranks, degenerate range): use the
                      // portable path
};

// True when this CPU (and OS) support AVX-512 F/DQ/BW/VL; evaluated once.
bool simd_select_supported();

// k-th smallest values of row[0, len) for the 1-based ranks rk[0..A) (any order, repeats
// allowed, all in [1, len]). `prefetch`: the caller's next row (at least len elements are
// touched by prefetch hints only, never read), or nullptr. Call only when
// simd_select_supported().
template <typename T>
int simd_select_row(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A,
                    T* out, SimdScratch<T>& s, const T* prefetch = nullptr);

// Rows per block of simd_short_rows_select (one row per vector lane).
template <typename T>
constexpr int kSimdShortRowsPerBlock = 64 / sizeof(T);
// Rows of a batch whose padded width ld is at most this go through simd_short_rows_select.
constexpr std::int64_t kSimdShortRowMax = 32;

// Up to kSimdShortRowsPerBlock<T> rows x[l * ld + j] (l < rows, j < lengths[l] <= 32, lengths
// and ranks already validated) sorted together by a sorting network, one row per lane:
// out[l * A + a] = ranks[a]-th (shared_ranks) or ranks[l * A + a]-th smallest of row l, and
// *zero_rank_value for a rank 0 (allowed only when zero_rank_value is set).
// Returns kSimdSelected, or kSimdNaN when a row holds a NaN (which row: ask the per-row path).
template <typename T>
int simd_short_rows_select(const T* x, int rows, std::int64_t ld, const std::int64_t* lengths,
                           const std::int64_t* ranks, bool shared_ranks, std::int64_t A, T* out,
                           const T* zero_rank_value);

}  // namespace synthperf
