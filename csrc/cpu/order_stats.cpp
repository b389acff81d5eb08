// Batched order statistics, CPU backend. See csrc/include/synthperf/order_stats.h.
#include "synthperf/order_stats.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "synthperf/device_math.h"
#include "synthperf/parallel.h"

namespace synthperf {
namespace {

// Validate one row's length and ranks; returns kSelectOk or the error code.
inline int check_row(std::int64_t len, std::int64_t ld, const std::int64_t* rk, std::int64_t A,
                     std::int64_t* bad_value) {
  if (len < 1 || len > ld) { *bad_value = len; return kSelectBadLength; }
  for (std::int64_t a = 0; a < A; ++a) {
    if (rk[a] < 1 || rk[a] > len) { *bad_value = rk[a]; return kSelectRankOutOfRange; }
  }
  return kSelectOk;
}

// Select the sorted, distinct ranks ks[lo..hi) inside buf[begin, end): recursive
// multi-selection. Each nth_element call partitions the range, so the ranks left of the
// pivot are searched only in the left part (expected O(n log A) per row).
template <typename T>
void multiselect(T* buf, std::int64_t begin, std::int64_t end, const std::int64_t* ks,
                 std::int64_t lo, std::int64_t hi, T* values) {
  if (lo >= hi) return;
  const std::int64_t mid = lo + (hi - lo) / 2;
  const std::int64_t pos = ks[mid] - 1;  // 0-based position of the pivot rank
  std::nth_element(buf + begin, buf + pos, buf + end);
  values[mid] = buf[pos];
  multiselect(buf, begin, pos, ks, lo, mid, values);
  multiselect(buf, pos + 1, end, ks, mid + 1, hi, values);
}

template <typename T, typename RowFn>
SelectError for_each_row(std::int64_t B, std::int64_t ld, const std::int64_t* lengths,
                         const std::int64_t* ranks, std::int64_t rank_rows, std::int64_t A,
                         RowFn&& row_fn) {
  ErrorSlot err;
#pragma omp parallel
  {
    RowScratch<T> scratch;
#pragma omp for schedule(dynamic, 8)
    for (std::int64_t b = 0; b < B; ++b) {
      if (err.failed()) continue;
      const std::int64_t* rk = ranks + (rank_rows == 1 ? 0 : b) * A;
      std::int64_t bad = 0;
      const int st = check_row(lengths[b], ld, rk, A, &bad);
      if (st != kSelectOk) { err.set(st, b, bad); continue; }
      const int st2 = row_fn(b, lengths[b], rk, scratch);
      if (st2 != kSelectOk) err.set(st2, b, 0);
    }
  }
  return err.get();
}

}  // namespace

template <typename T>
SelectError order_statistics_cpu(const T* x, std::int64_t B, std::int64_t ld,
                                 const std::int64_t* lengths, const std::int64_t* ranks,
                                 std::int64_t rank_rows, std::int64_t A, T* out) {
  return for_each_row<T>(B, ld, lengths, ranks, rank_rows, A,
      [&](std::int64_t b, std::int64_t len, const std::int64_t* rk, RowScratch<T>& s) -> int {
        const T* row = x + b * ld;
        s.values.resize(len);
        for (std::int64_t i = 0; i < len; ++i) {
          if (std::isnan(row[i])) return kSelectNaN;
          s.values[i] = row[i];
        }
        // Distinct ranks in increasing order, remembering where each requested rank goes.
        s.order.resize(A);
        for (std::int64_t a = 0; a < A; ++a) s.order[a] = a;
        std::sort(s.order.begin(), s.order.end(),
                  [rk](std::int64_t i, std::int64_t j) { return rk[i] < rk[j]; });
        s.distinct.clear();
        for (std::int64_t a = 0; a < A; ++a) {
          const std::int64_t k = rk[s.order[a]];
          if (s.distinct.empty() || s.distinct.back() != k) s.distinct.push_back(k);
        }
        const std::int64_t D = static_cast<std::int64_t>(s.distinct.size());
        s.selected.resize(D);
        multiselect(s.values.data(), 0, len, s.distinct.data(), 0, D, s.selected.data());
        std::int64_t d = 0;
        for (std::int64_t a = 0; a < A; ++a) {
          const std::int64_t k = rk[s.order[a]];
          while (s.distinct[d] != k) ++d;
          out[b * A + s.order[a]] = s.selected[d];
        }
        return kSelectOk;
      });
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

#define SYNTHPERF_INSTANTIATE(T)                                                            \
  template SelectError order_statistics_cpu<T>(const T*, std::int64_t, std::int64_t,        \
                                               const std::int64_t*, const std::int64_t*,    \
                                               std::int64_t, std::int64_t, T*);             \
  template SelectError order_statistics_bitwise_cpu<T>(const T*, std::int64_t, std::int64_t,\
                                                       const std::int64_t*,                 \
                                                       const std::int64_t*, std::int64_t,   \
                                                       std::int64_t, T*);
SYNTHPERF_INSTANTIATE(float)
SYNTHPERF_INSTANTIATE(double)
#undef SYNTHPERF_INSTANTIATE

}  // namespace synthperf
