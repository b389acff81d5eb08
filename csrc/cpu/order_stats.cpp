// Batched order statistics, CPU backend. See csrc/include/synthperf/order_stats.h.
#include "synthperf/order_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "synthperf/device_math.h"
#include "synthperf/parallel.h"
#include "synthperf/selection.h"

namespace synthperf {
namespace {

// Validate one row's length and ranks (rank 0 too when allow_zero); returns kSelectOk or the
// error code.
inline int check_row(std::int64_t len, std::int64_t ld, const std::int64_t* rk, std::int64_t A,
                     std::int64_t* bad_value, bool allow_zero = false) {
  if (len < 1 || len > ld) { *bad_value = len; return kSelectBadLength; }
  const std::int64_t lowest = allow_zero ? 0 : 1;
  for (std::int64_t a = 0; a < A; ++a) {
    if (rk[a] < lowest || rk[a] > len) { *bad_value = rk[a]; return kSelectRankOutOfRange; }
  }
  return kSelectOk;
}

// select_row, where a rank 0 yields *zero_value (if set): zeros are selected as rank 1, then
// overwritten.
template <typename T>
bool select_row_or_fill(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out,
                        RowScratch<T>& s, bool simd, const T* next, const T* zero_value) {
  if (zero_value == nullptr || std::find(rk, rk + A, 0) == rk + A) {
    return select_row(row, len, rk, A, out, s, simd, next);
  }
  s.ranks.assign(rk, rk + A);
  std::replace(s.ranks.begin(), s.ranks.end(), std::int64_t(0), std::int64_t(1));
  if (!select_row(row, len, s.ranks.data(), A, out, s, simd, next)) return false;
  for (std::int64_t a = 0; a < A; ++a) {
    if (rk[a] == 0) out[a] = *zero_value;
  }
  return true;
}

template <typename T, typename RowFn>
SelectError for_each_row(std::int64_t B, std::int64_t ld, const std::int64_t* lengths,
                         const std::int64_t* ranks, std::int64_t rank_rows, std::int64_t A,
                         RowFn&& row_fn, bool allow_zero = false) {
  ErrorSlot err;
  // Threads only pay off for enough work; a tiny batch runs serially (no fork/join cost,
  // which on a busy 2-core machine can exceed the work itself).
  // (+64 per row: short rows cost more per element than their length suggests)
  const bool parallel = B * (ld + 64) >= kParallelMinElements && B > 1;
#pragma omp parallel if (parallel)
  {
    RowScratch<T> scratch;
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t b = 0; b < B; ++b) {
      if (err.failed()) continue;
      const std::int64_t* rk = ranks + (rank_rows == 1 ? 0 : b) * A;
      std::int64_t bad = 0;
      const int st = check_row(lengths[b], ld, rk, A, &bad, allow_zero);
      if (st != kSelectOk) { err.set(st, b, bad); continue; }
      const int st2 = row_fn(b, lengths[b], rk, scratch);
      if (st2 != kSelectOk) err.set(st2, b, 0);
    }
  }
  return err.get();
}

}  // namespace

// Batches of short rows (padded width <= 32, e.g. n = 15 calibration sets): blocks of
// kSimdShortRowsPerBlock rows sorted together by a vector sorting network. Rows are validated
// first; a block with a NaN is redone row by row so the error names the first bad row.
template <typename T>
SelectError short_rows_cpu(const T* x, std::int64_t B, std::int64_t ld, const std::int64_t* lengths,
                           const std::int64_t* ranks, std::int64_t rank_rows, std::int64_t A, T* out,
                           const T* zero_value) {
  const bool allow_zero = zero_value != nullptr;
  constexpr int W = kSimdShortRowsPerBlock<T>;
  const std::int64_t blocks = (B + W - 1) / W;
  // Shared ranks that are all >= the lowest allowed rank only need each row's length checked.
  bool shared_ok = false;
  std::int64_t shared_max_rank = 1;
  if (rank_rows == 1) {
    shared_ok = A == 0 || *std::min_element(ranks, ranks + A) >= (allow_zero ? 0 : 1);
    if (A > 0) shared_max_rank = *std::max_element(ranks, ranks + A);
  }
  ErrorSlot err;
  const bool parallel = B * ld >= kParallelMinElements / 4 && blocks > 1;
#pragma omp parallel if (parallel)
  {
    RowScratch<T> scratch;
#pragma omp for schedule(static)
    for (std::int64_t blk = 0; blk < blocks; ++blk) {
      if (err.failed()) continue;
      const std::int64_t b0 = blk * W;
      const int rows = static_cast<int>(std::min<std::int64_t>(W, B - b0));
      bool ok = true;
      for (int l = 0; l < rows && ok; ++l) {
        std::int64_t bad = 0;
        const std::int64_t len = lengths[b0 + l];
        if (shared_ok && len >= shared_max_rank && len >= 1 && len <= ld) continue;
        const std::int64_t* rk = ranks + (rank_rows == 1 ? 0 : b0 + l) * A;
        const int st = check_row(len, ld, rk, A, &bad, allow_zero);
        if (st != kSelectOk) { err.set(st, b0 + l, bad); ok = false; }
      }
      if (!ok) continue;
      const std::int64_t* rk0 = ranks + (rank_rows == 1 ? 0 : b0) * A;
      if (simd_short_rows_select(x + b0 * ld, rows, ld, lengths + b0, rk0, rank_rows == 1, A, out + b0 * A,
                                 zero_value) == kSimdSelected) continue;
      for (int l = 0; l < rows; ++l) {  // a NaN in the block: find its row
        const std::int64_t b = b0 + l;
        const std::int64_t* rk = ranks + (rank_rows == 1 ? 0 : b) * A;
        if (!select_row_or_fill<T>(x + b * ld, lengths[b], rk, A, out + b * A, scratch, false, nullptr, zero_value)) {
          err.set(kSelectNaN, b, 0);
          break;
        }
      }
    }
  }
  return err.get();
}

template <typename T>
SelectError order_statistics_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                 const std::int64_t* lengths, const std::int64_t* ranks,
                                 std::int64_t rank_rows, std::int64_t A, T* out, bool simd,
                                 const T* zero_rank_value) {
  if (simd && ld <= kSimdShortRowMax && B > 1 && simd_select_supported()) {
    return short_rows_cpu<T>(x, B, ld, lengths, ranks, rank_rows, A, out, zero_rank_value);
  }
  return for_each_row<T>(B, ld, lengths, ranks, rank_rows, A,
      [&](std::int64_t b, std::int64_t len, const std::int64_t* rk, RowScratch<T>& s) -> int {
        const T* row = x + b * ld;
        const T* next = b + 1 < B ? row + ld : nullptr;
        if (!select_row_or_fill(row, len, rk, A, out + b * A, s, simd, next, zero_rank_value)) return kSelectNaN;
        return kSelectOk;
      }, zero_rank_value != nullptr);
}

template <typename T>
SelectError order_statistics_bitwise_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                         const std::int64_t* lengths, const std::int64_t* ranks,
                                         std::int64_t rank_rows, std::int64_t A, T* out) {
  using Key = typename KeyTraits<T>::Key;
  return for_each_row<T>(B, ld, lengths, ranks, rank_rows, A,
      [&](std::int64_t b, std::int64_t len, const std::int64_t* rk, RowScratch<T>& s) -> int {
        const T* row = x + b * ld;
        s.keys.resize(len * sizeof(Key));
        Key* keys = reinterpret_cast<Key*>(s.keys.data());
        for (std::int64_t i = 0; i < len; ++i) {
          if (std::isnan(row[i])) return kSelectNaN;
          Key bits;
          std::memcpy(&bits, &row[i], sizeof(Key));
          keys[i] = ordered_key_from_bits(bits);
        }
        for (std::int64_t a = 0; a < A; ++a) {
          Key ans = 0;
          for (int bit = KeyTraits<T>::kBits - 1; bit >= 0; --bit) {
            const Key t = lifting_candidate(ans, bit);
            std::int64_t count = 0;
            for (std::int64_t i = 0; i < len; ++i) count += keys[i] < t;
            ans = lifting_step(ans, bit, count, rk[a]);
          }
          const Key bits = bits_from_ordered_key(ans);
          std::memcpy(&out[b * A + a], &bits, sizeof(Key));
        }
        return kSelectOk;
      });
}

template <typename T>
SelectError order_statistics_radix_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                       const std::int64_t* lengths, const std::int64_t* ranks,
                                       std::int64_t rank_rows, std::int64_t A, T* out) {
  using Key = typename KeyTraits<T>::Key;
  return for_each_row<T>(B, ld, lengths, ranks, rank_rows, A,
      [&](std::int64_t b, std::int64_t len, const std::int64_t* rk, RowScratch<T>& s) -> int {
        const T* row = x + b * ld;
        s.keys.resize(len * sizeof(Key));
        Key* keys = reinterpret_cast<Key*>(s.keys.data());
        for (std::int64_t i = 0; i < len; ++i) {
          if (std::isnan(row[i])) return kSelectNaN;
          Key bits;
          std::memcpy(&bits, &row[i], sizeof(Key));
          keys[i] = ordered_key_from_bits(bits);
        }
        unsigned hist[kRadixBins];
        for (std::int64_t a = 0; a < A; ++a) {
          Key prefix = 0, decided = 0;
          std::int64_t k = rk[a];
          for (int shift = KeyTraits<T>::kBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
            std::fill(hist, hist + kRadixBins, 0u);
            for (std::int64_t i = 0; i < len; ++i) {
              if (radix_prefix_matches(keys[i], prefix, decided)) ++hist[radix_digit(keys[i], shift)];
            }
            std::int64_t k_in_bin = 0;
            const int digit = radix_find_digit(hist, kRadixBins, 0, k, &k_in_bin);
            prefix |= static_cast<Key>(digit) << shift;
            decided |= static_cast<Key>(kRadixBins - 1) << shift;
            k = k_in_bin;
          }
          const Key bits = bits_from_ordered_key(prefix);
          std::memcpy(&out[b * A + a], &bits, sizeof(Key));
        }
        return kSelectOk;
      });
}

#define SYNTHPERF_INSTANTIATE(T)                                                            \
  template SelectError order_statistics_cpu<T>(const T*, std::int64_t, std::int64_t,        \
                                               const std::int64_t*, const std::int64_t*,    \
                                               std::int64_t, std::int64_t, T*, bool,        \
                                               const T*);                                   \
  template SelectError order_statistics_bitwise_cpu<T>(const T*, std::int64_t, std::int64_t,\
                                                       const std::int64_t*,                 \
                                                       const std::int64_t*, std::int64_t,   \
                                                       std::int64_t, T*);            \
  template SelectError order_statistics_radix_cpu<T>(const T*, std::int64_t, std::int64_t,  \
                                                     const std::int64_t*,                   \
                                                     const std::int64_t*, std::int64_t,     \
                                                     std::int64_t, T*);
SYNTHPERF_INSTANTIATE(float)
SYNTHPERF_INSTANTIATE(double)
#undef SYNTHPERF_INSTANTIATE

}  // namespace synthperf
