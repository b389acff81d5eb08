// Small OpenMP helpers for the CPU core: first-error slot and per-thread scratch buffers.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#ifdef SYNTHPERF_HAVE_OPENMP
#include <omp.h>
#endif

#include "synthperf/order_stats.h"
#include "synthperf/select_simd.h"
#include "synthperf/selection.h"

namespace synthperf {

// Minimum number of elements a batched kernel must touch before it forks OpenMP threads.
constexpr std::int64_t kParallelMinElements = 1 << 17;

// Records the first error seen by any thread (under a critical section: errors are rare).
class ErrorSlot {
 public:
  bool failed() const {
    bool f;
#pragma omp atomic read
    f = failed_;
    return f;
  }
  void set(int status, std::int64_t row, std::int64_t value) {
#pragma omp critical(synthperf_error_slot)
    {
      if (!failed_ || row < err_.row) {
        err_.status = status; err_.row = row; err_.value = value;
      }
#pragma omp atomic write
      failed_ = true;
    }
  }
  SelectError get() const { return err_; }

 private:
  bool failed_ = false;
  SelectError err_;
};

// Per-thread scratch reused across rows (no allocation per row after warm-up).
template <typename T>
struct RowScratch {
  std::vector<std::int64_t> ranks;  // a row's ranks with 0 replaced (select_row_or_fill)
  std::vector<unsigned char> keys;  // order-preserving keys (bitwise / radix twins)
  BucketScratch<T> buckets;
  SimdScratch<T> simd;
};

// Order statistics of one read-only row (see bucket_select_row for the contract): the AVX-512
// path when `simd` is set and the CPU has it, else, or when that path declines the row, the
// portable bucket_select_row. Both return the exact selected elements, so results agree bit
// for bit. prefetch_next: the caller's next row (a cache hint only) or nullptr. Returns false
// when the row holds a NaN.
template <typename T>
bool select_row(const T* row, std::int64_t len, const std::int64_t* rk, std::int64_t A, T* out,
                RowScratch<T>& s, bool simd, const T* prefetch_next = nullptr) {
  if (simd && simd_select_supported()) {
    const int r = simd_select_row(row, len, rk, A, out, s.simd, prefetch_next);
    if (r == kSimdSelected) return true;
    if (r == kSimdNaN) return false;
  }
  return bucket_select_row(row, len, rk, A, out, s.buckets);
}

inline int max_threads() {
#ifdef SYNTHPERF_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1");
#ifdef SYNTHPERF_HAVE_OPENMP
  omp_set_num_threads(n);
#endif
}

}  // namespace synthperf
