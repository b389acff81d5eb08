// Multi-selection helpers for the CPU core: k-th smallest values of one row for several
// ranks at once, with std::nth_element recursion (expected O(n log A) per row).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace synthperf {

// Select the sorted, distinct 1-based ranks ks[lo..hi) inside buf[begin, end). Each
// nth_element call partitions the range, so ranks left of the pivot are searched only in
// the left part. values[i] receives the ks[i]-th smallest value.
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

// Select arbitrary (unsorted, possibly repeated) 1-based ranks rk[0..A) from buf[0, len),
// writing out[a] = rk[a]-th smallest. Scratch vectors are reused across calls.
template <typename T>
void select_ranks(T* buf, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out,
                  std::vector<std::int64_t>& order, std::vector<std::int64_t>& distinct,
                  std::vector<T>& selected) {
  order.resize(A);
  for (std::int64_t a = 0; a < A; ++a) order[a] = a;
  std::sort(order.begin(), order.end(), [rk](std::int64_t i, std::int64_t j) { return rk[i] < rk[j]; });
  distinct.clear();
  for (std::int64_t a = 0; a < A; ++a) {
    const std::int64_t k = rk[order[a]];
    if (distinct.empty() || distinct.back() != k) distinct.push_back(k);
  }
  const std::int64_t D = static_cast<std::int64_t>(distinct.size());
  selected.resize(D);
  multiselect(buf, 0, len, distinct.data(), 0, D, selected.data());
  std::int64_t d = 0;
  for (std::int64_t a = 0; a < A; ++a) {
    const std::int64_t k = rk[order[a]];
    while (distinct[d] != k) ++d;
    out[order[a]] = selected[d];
  }
}

}  // namespace synthperf
