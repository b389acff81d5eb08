// Small OpenMP helpers for the CPU core: first-error slot and per-thread scratch buffers.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#ifdef SYNTHPERF_HAVE_OPENMP
#include <omp.h>
#endif

#include "synthperf/order_stats.h"
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
  std::vector<T> values;
  std::vector<T> selected;
  std::vector<std::int64_t> order;
  std::vector<std::int64_t> distinct;
  std::vector<unsigned char> keys;
  BucketScratch<T> buckets;
};

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
