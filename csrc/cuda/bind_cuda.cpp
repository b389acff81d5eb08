// pybind11 bindings of the CUDA module: synthperf._native_cuda (compiled by g++, links the
// static CUDA runtime; the kernels live in kernels/cuda/*.cu). Importing this module needs
// no CUDA library; without a driver device_count() is 0 and launches raise RuntimeError.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <string>

#include "launchers.h"
#include "synthperf/bindings_registry.h"

namespace py = pybind11;

namespace {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "insufficient driver" error
    return 0;
  }
  return n;
}

void check(int status, const char* what) {
  if (status != 0) {
    throw std::runtime_error(std::string(what) + " failed: " +
                             cudaGetErrorString(static_cast<cudaError_t>(status)));
  }
}

}  // namespace

PYBIND11_MODULE(_native_cuda, m) {
  m.doc() = "synthperf CUDA kernels (static cudart). Called through synthperf.ops.";
  m.def("device_count", &device_count, "Number of usable CUDA devices (0 without a driver).");
  m.def("runtime_version", []() {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return v;
  });
  m.def("order_statistics_f32",
        [](std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream) {
          check(synthperf::order_statistics_cuda_f32(x, B, ld, lengths, ranks, rank_rows, A, out,
                                                     stream),
                "order_statistics (CUDA, float32)");
        });
  m.def("order_statistics_f64",
        [](std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream) {
          check(synthperf::order_statistics_cuda_f64(x, B, ld, lengths, ranks, rank_rows, A, out,
                                                     stream),
                "order_statistics (CUDA, float64)");
        });
  synthperf::register_all_bindings(m);  // csrc/cuda/*.cpp groups
}
