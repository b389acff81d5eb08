// Multi-selection helpers for the CPU core: k-th smallest values of one row for several
// ranks at once, with std::nth_element recursion (expected O(n log A) per row).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

// Min, max and "any NaN" of row[0..len) in one streaming pass. Four independent
// accumulators (SSE2 lanes on x86-64) break the compare/select dependency chain.
inline bool minmax_nan(const double* row, std::int64_t len, double* lo_out, double* hi_out) {
  std::int64_t i = 0;
  double lo = row[0], hi = row[0];
  bool nan = false;
#if defined(__SSE2__)
  if (len >= 8) {
    __m128d l0 = _mm_loadu_pd(row), l1 = _mm_loadu_pd(row + 2), h0 = l0, h1 = l1;
    __m128d bad = _mm_setzero_pd();
    for (; i + 4 <= len; i += 4) {
      const __m128d a = _mm_loadu_pd(row + i), b = _mm_loadu_pd(row + i + 2);
      bad = _mm_or_pd(bad, _mm_or_pd(_mm_cmpunord_pd(a, a), _mm_cmpunord_pd(b, b)));
      l0 = _mm_min_pd(a, l0); l1 = _mm_min_pd(b, l1);
      h0 = _mm_max_pd(a, h0); h1 = _mm_max_pd(b, h1);
    }
    alignas(16) double lv[4], hv[4];
    _mm_store_pd(lv, l0); _mm_store_pd(lv + 2, l1); _mm_store_pd(hv, h0); _mm_store_pd(hv + 2, h1);
    nan = _mm_movemask_pd(bad) != 0;
    lo = lv[0]; hi = hv[0];
    for (int k = 1; k < 4; ++k) { lo = lv[k] < lo ? lv[k] : lo; hi = hv[k] > hi ? hv[k] : hi; }
  }
#endif
  for (; i < len; ++i) {
    const double v = row[i];
    nan |= (v != v);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *lo_out = lo; *hi_out = hi;
  return nan;
}

inline bool minmax_nan(const float* row, std::int64_t len, float* lo_out, float* hi_out) {
  std::int64_t i = 0;
  float lo = row[0], hi = row[0];
  bool nan = false;
#if defined(__SSE2__)
  if (len >= 16) {
    __m128 l0 = _mm_loadu_ps(row), l1 = _mm_loadu_ps(row + 4), h0 = l0, h1 = l1;
    __m128 bad = _mm_setzero_ps();
    for (; i + 8 <= len; i += 8) {
      const __m128 a = _mm_loadu_ps(row + i), b = _mm_loadu_ps(row + i + 4);
      bad = _mm_or_ps(bad, _mm_or_ps(_mm_cmpunord_ps(a, a), _mm_cmpunord_ps(b, b)));
      l0 = _mm_min_ps(a, l0); l1 = _mm_min_ps(b, l1);
      h0 = _mm_max_ps(a, h0); h1 = _mm_max_ps(b, h1);
    }
    alignas(16) float lv[8], hv[8];
    _mm_store_ps(lv, l0); _mm_store_ps(lv + 4, l1); _mm_store_ps(hv, h0); _mm_store_ps(hv + 4, h1);
    nan = _mm_movemask_ps(bad) != 0;
    lo = lv[0]; hi = hv[0];
    for (int k = 1; k < 8; ++k) { lo = lv[k] < lo ? lv[k] : lo; hi = hv[k] > hi ? hv[k] : hi; }
  }
#endif
  for (; i < len; ++i) {
    const float v = row[i];
    nan |= (v != v);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *lo_out = lo; *hi_out = hi;
  return nan;
}

// Scratch for bucket_select_row (reused across rows by one thread).
template <typename T>
struct BucketScratch {
  std::vector<std::uint16_t> bucket_of;        // bucket index of each element
  std::vector<std::int64_t> count;             // histogram, then exclusive prefix sums
  std::vector<std::int32_t> sub_count;         // two interleaved partial histograms
  std::vector<std::int32_t> slot_of_bucket;    // -1 or the gather slot of a needed bucket
  std::vector<std::vector<T>> gathered;        // elements of each needed bucket
  std::vector<std::int64_t> rank_bucket, local_rank, slot_fill, order, distinct;
  std::vector<T> copy, slot_out, selected;
};

// Rows this short are sorted outright (insertion sort in a stack buffer) and every rank is
// a lookup: cheaper than rank bookkeeping + multi-selection for the n = 15 calibration sets.
constexpr std::int64_t kSortRowMax = 32;

template <typename T>
bool sort_select_short_row(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out) {
  T buf[kSortRowMax];
  bool nan = false;
  for (std::int64_t i = 0; i < len; ++i) {
    const T v = row[i];
    nan |= (v != v);
    std::int64_t j = i;
    while (j > 0 && buf[j - 1] > v) {  // NaN compares false: harmless, flagged above
      buf[j] = buf[j - 1];
      --j;
    }
    buf[j] = v;
  }
  if (nan) return false;
  for (std::int64_t a = 0; a < A; ++a) out[a] = buf[rk[a] - 1];
  return true;
}

// Plain path: copy, NaN check, multi-selection. For short rows and degenerate ranges.
template <typename T>
bool copy_select_row(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out,
                     BucketScratch<T>& s) {
  if (len <= kSortRowMax) return sort_select_short_row(row, len, rk, A, out);
  s.copy.assign(row, row + len);
  for (std::int64_t i = 0; i < len; ++i) {
    if (s.copy[i] != s.copy[i]) return false;
  }
  select_ranks(s.copy.data(), len, rk, A, out, s.order, s.distinct, s.selected);
  return true;
}

// k-th smallest values of a read-only row for several 1-based ranks rk[0..A).
//
// Histogram selection in two streaming passes:
//   1. map each element to one of NB buckets with j = clamp(floor((x - lo) * scale), 0, NB-1)
//      and count. The map is monotone in x whatever lo and scale are, so bucket order is
//      value order and the counts locate every rank exactly; lo and scale only affect speed.
//      They come from a 64-element sample (its 2nd smallest and 2nd largest values), so no
//      separate min/max pass is needed and one outlier cannot squeeze the buckets.
//   2. gather only the buckets holding a requested rank (about n/NB elements each) and
//      finish with std::nth_element there.
// Short rows, samples without spread and non-finite ranges take an exact min/max range or
// the plain copy + multi-selection path. Returns false (results unspecified) when the row
// holds a NaN, which pass 1 detects for free.
template <typename T>
bool bucket_select_row(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out,
                       BucketScratch<T>& s) {
  if (len < 64) return copy_select_row(row, len, rk, A, out, s);
  // Second smallest and second largest of a strided 64-element sample (NaN: pass 1 flags it).
  const std::int64_t stride = len / 64;
  T lo1 = row[0], lo2 = row[stride], hi1 = row[0], hi2 = row[stride];
  if (lo2 < lo1) std::swap(lo1, lo2);
  if (hi2 > hi1) std::swap(hi1, hi2);
  for (int t = 2; t < 64; ++t) {
    const T v = row[t * stride];
    if (v < lo2) { if (v < lo1) { lo2 = lo1; lo1 = v; } else { lo2 = v; } }
    if (v > hi2) { if (v > hi1) { hi2 = hi1; hi1 = v; } else { hi2 = v; } }
  }
  T lo = lo2, hi = hi2;
  if (!(hi > lo) || !std::isfinite(static_cast<double>(hi - lo))) {
    if (minmax_nan(row, len, &lo, &hi)) return false;
    if (lo == hi) {
      for (std::int64_t a = 0; a < A; ++a) out[a] = lo;
      return true;
    }
    if (!std::isfinite(static_cast<double>(hi - lo))) return copy_select_row(row, len, rk, A, out, s);
  }
  int nb = 16;
  while (nb < len / 4 && nb < 4096) nb *= 2;
  const T scale = static_cast<T>(nb) / (hi - lo);
  if (!std::isfinite(static_cast<double>(scale)) || !(scale > T(0))) return copy_select_row(row, len, rk, A, out, s);
  s.bucket_of.resize(len);
  s.count.assign(nb + 1, 0);
  s.sub_count.assign(2 * static_cast<std::size_t>(nb), 0);
  std::uint16_t* bucket_of = s.bucket_of.data();
  std::int32_t* c0 = s.sub_count.data();
  std::int32_t* c1 = c0 + nb;  // two interleaved histograms: fewer store-forwarding stalls
  const T last = static_cast<T>(nb - 1);
  bool nan = false;
  auto bucket = [&](T v) -> int {
    nan |= (v != v);
    T t = (v - lo) * scale;
    t = t >= T(0) ? t : T(0);  // also maps NaN to 0 (flagged above)
    t = t < last ? t : last;
    return static_cast<int>(t);
  };
  std::int64_t i = 0;
  for (; i + 2 <= len; i += 2) {
    const int j0 = bucket(row[i]), j1 = bucket(row[i + 1]);
    bucket_of[i] = static_cast<std::uint16_t>(j0);
    bucket_of[i + 1] = static_cast<std::uint16_t>(j1);
    ++c0[j0];
    ++c1[j1];
  }
  for (; i < len; ++i) {
    const int j = bucket(row[i]);
    bucket_of[i] = static_cast<std::uint16_t>(j);
    ++c0[j];
  }
  if (nan) return false;
  std::int64_t* count = s.count.data();
  for (int j = 0; j < nb; ++j) count[j + 1] = count[j] + c0[j] + c1[j];  // count[j] = #elements in buckets < j
  s.slot_of_bucket.assign(nb, -1);
  s.rank_bucket.resize(A);
  s.local_rank.resize(A);
  std::int64_t slots = 0;
  for (std::int64_t a = 0; a < A; ++a) {
    // bucket j with count[j] < k <= count[j+1]
    const std::int64_t j = std::upper_bound(count, count + nb + 1, rk[a] - 1) - count - 1;
    s.rank_bucket[a] = j;
    s.local_rank[a] = rk[a] - count[j];
    if (s.slot_of_bucket[j] < 0) {
      if (static_cast<std::int64_t>(s.gathered.size()) <= slots) s.gathered.resize(slots + 1);
      s.gathered[slots].resize(count[j + 1] - count[j]);
      s.slot_fill.resize(slots + 1);
      s.slot_fill[slots] = 0;
      s.slot_of_bucket[j] = static_cast<std::int32_t>(slots++);
    }
  }
  const std::int32_t* slot_of_bucket = s.slot_of_bucket.data();
  for (i = 0; i < len; ++i) {
    const std::int32_t slot = slot_of_bucket[bucket_of[i]];
    if (slot >= 0) s.gathered[slot][s.slot_fill[slot]++] = row[i];
  }
  for (std::int64_t a = 0; a < A; ++a) {
    std::vector<T>& g = s.gathered[s.slot_of_bucket[s.rank_bucket[a]]];
    T* pos = g.data() + (s.local_rank[a] - 1);
    std::nth_element(g.data(), pos, g.data() + g.size());
    out[a] = *pos;
  }
  return true;
}

}  // namespace synthperf
