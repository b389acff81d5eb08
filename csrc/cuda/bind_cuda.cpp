// pybind11 bindings of the CUDA module: synthperf._native_cuda (compiled by g++, links the
// static CUDA runtime; the kernels live in kernels/cuda/*.cu). Importing this module needs
// no CUDA library; without a driver device_count() is 0 and launches raise RuntimeError.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
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

// Makes `device` current for the scope and restores the caller's device afterwards: kernels
// launch on the device that owns the tensors, not on whatever device happens to be current.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

[[noreturn]] void bad_argument(const std::string& msg) { throw pybind11::value_error(msg); }

// A pointer argument: non-null and aligned to `align` bytes (checked first, without any CUDA
// call); then allocated on `device` (device or managed memory, per cudaPointerGetAttributes).
void check_pointer_value(std::uintptr_t p, std::size_t align, const char* name, const char* fn) {
  if (p == 0) bad_argument(std::string(fn) + ": " + name + " is a null pointer");
  if (p % align != 0)
    bad_argument(std::string(fn) + ": " + name + " is not aligned to " + std::to_string(align) + " bytes");
}

void check_device_pointer(std::uintptr_t p, int device, const char* name, const char* fn) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, reinterpret_cast<const void*>(p)) != cudaSuccess) {
    cudaGetLastError();
    bad_argument(std::string(fn) + ": " + name + " is not a CUDA allocation");
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    bad_argument(std::string(fn) + ": " + name + " is not device memory (host or unregistered pointer)");
  if (attr.device != device)
    bad_argument(std::string(fn) + ": " + name + " lives on device " + std::to_string(attr.device) +
                 " but the launch targets device " + std::to_string(device));
}

// order_statistics_{f32,f64}: x [B, ld] row-major (contiguous rows, stride ld), lengths [B],
// ranks [rank_rows, A] with rank_rows in {1, B}, out [B, A]; int64 index arrays. The Python
// layer (synthperf.ops.order_stats._run_gpu) checks the same before it calls.
template <typename T>
void order_statistics_binding(std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
                              std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
                              std::uintptr_t stream, int device, const char* fn) {
  if (B < 0 || A < 0) bad_argument(std::string(fn) + ": B and A must be >= 0");
  if (ld < 1) bad_argument(std::string(fn) + ": ld (the row stride) must be >= 1");
  if (B > 0 && rank_rows != 1 && rank_rows != B)
    bad_argument(std::string(fn) + ": rank_rows must be 1 or B = " + std::to_string(B));
  if (B > 0 && ld > std::numeric_limits<std::int64_t>::max() / B / static_cast<std::int64_t>(sizeof(T)))
    bad_argument(std::string(fn) + ": B * ld overflows");
  if (B > 0 && A > std::numeric_limits<std::int64_t>::max() / B)
    bad_argument(std::string(fn) + ": B * A overflows");
  if (B == 0 || A == 0) return;
  check_pointer_value(x, sizeof(T), "x", fn);
  check_pointer_value(lengths, sizeof(std::int64_t), "lengths", fn);
  check_pointer_value(ranks, sizeof(std::int64_t), "ranks", fn);
  check_pointer_value(out, sizeof(T), "out", fn);
  const int n = device_count();
  if (device < 0 || device >= n)
    bad_argument(std::string(fn) + ": device " + std::to_string(device) + " out of range (" +
                 std::to_string(n) + " devices)");
  check_device_pointer(x, device, "x", fn);
  check_device_pointer(lengths, device, "lengths", fn);
  check_device_pointer(ranks, device, "ranks", fn);
  check_device_pointer(out, device, "out", fn);
  DeviceGuard guard(device);
  int status;
  if constexpr (sizeof(T) == 4) {
    status = synthperf::order_statistics_cuda_f32(x, B, ld, lengths, ranks, rank_rows, A, out, stream);
  } else {
    status = synthperf::order_statistics_cuda_f64(x, B, ld, lengths, ranks, rank_rows, A, out, stream);
  }
  check(status, fn);
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
  // device: the CUDA device index that owns every pointer (made current for the launch).
  m.def("order_statistics_f32",
        [](std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream, int device) {
          order_statistics_binding<float>(x, B, ld, lengths, ranks, rank_rows, A, out, stream, device,
                                          "order_statistics (CUDA, float32)");
        },
        py::arg("x"), py::arg("B"), py::arg("ld"), py::arg("lengths"), py::arg("ranks"), py::arg("rank_rows"),
        py::arg("A"), py::arg("out"), py::arg("stream"), py::arg("device"));
  m.def("order_statistics_f64",
        [](std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream, int device) {
          order_statistics_binding<double>(x, B, ld, lengths, ranks, rank_rows, A, out, stream, device,
                                           "order_statistics (CUDA, float64)");
        },
        py::arg("x"), py::arg("B"), py::arg("ld"), py::arg("lengths"), py::arg("ranks"), py::arg("rank_rows"),
        py::arg("A"), py::arg("out"), py::arg("stream"), py::arg("device"));
  synthperf::register_all_bindings(m);  // csrc/cuda/*.cpp groups
}
