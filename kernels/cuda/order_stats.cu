// Batched order statistics on the GPU: one thread block per (row, rank).
//
// Algorithm: bitwise selection on order-preserving keys (csrc/include/synthperf/device_math.h,
// the same functions the CPU path order_statistics_bitwise_cpu runs in the test suite).
// For each key bit from the top, the block counts keys < candidate with a shared-memory
// reduction and applies lifting_step. Cost O(bits * n) per (row, rank), no sort, no
// extra memory. Inputs were validated on the host (no NaN, ranks in range); rows are
// row-major [B, ld] with per-row valid lengths.
//
// No pybind11 here (see csrc/cuda/bind_cuda.cpp): plain launchers with extern "C"-style
// signatures keep nvcc compile time around one second.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "synthperf/device_math.h"

namespace synthperf {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ __forceinline__ typename KeyTraits<T>::Key load_key(const T* p) {
  using Key = typename KeyTraits<T>::Key;
  Key bits;
  memcpy(&bits, p, sizeof(Key));
  return ordered_key_from_bits(bits);
}

template <typename T>
__global__ void order_statistics_kernel(const T* __restrict__ x, std::int64_t ld,
                                        const std::int64_t* __restrict__ lengths,
                                        const std::int64_t* __restrict__ ranks,
                                        std::int64_t rank_rows, std::int64_t A,
                                        T* __restrict__ out) {
  using Key = typename KeyTraits<T>::Key;
  __shared__ unsigned long long partial[kThreads];
  const std::int64_t b = blockIdx.x;
  const std::int64_t a = blockIdx.y;
  const std::int64_t len = lengths[b];
  const std::int64_t k = ranks[(rank_rows == 1 ? 0 : b) * A + a];
  const T* row = x + b * ld;

  Key ans = 0;
  for (int bit = KeyTraits<T>::kBits - 1; bit >= 0; --bit) {
    const Key t = lifting_candidate(ans, bit);
    unsigned long long local = 0;
    for (std::int64_t i = threadIdx.x; i < len; i += blockDim.x) local += load_key(row + i) < t;
    partial[threadIdx.x] = local;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
      if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
      __syncthreads();
    }
    const std::int64_t count = static_cast<std::int64_t>(partial[0]);
    __syncthreads();  // everyone read partial[0] before the next pass overwrites it
    ans = lifting_step(ans, bit, count, k);
  }
  if (threadIdx.x == 0) {
    const Key bits = bits_from_ordered_key(ans);
    T value;
    memcpy(&value, &bits, sizeof(Key));
    out[b * A + a] = value;
  }
}

template <typename T>
int launch(std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream) {
  if (B == 0 || A == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(B), static_cast<unsigned>(A));
  order_statistics_kernel<T><<<grid, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const T*>(x), ld, reinterpret_cast<const std::int64_t*>(lengths),
      reinterpret_cast<const std::int64_t*>(ranks), rank_rows, A, reinterpret_cast<T*>(out));
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

// Plain launchers (declared in csrc/cuda/launchers.h). Pointers are device addresses.
int order_statistics_cuda_f32(std::uintptr_t x, std::int64_t B, std::int64_t ld,
                              std::uintptr_t lengths, std::uintptr_t ranks, std::int64_t rank_rows,
                              std::int64_t A, std::uintptr_t out, std::uintptr_t stream) {
  return launch<float>(x, B, ld, lengths, ranks, rank_rows, A, out, stream);
}
int order_statistics_cuda_f64(std::uintptr_t x, std::int64_t B, std::int64_t ld,
                              std::uintptr_t lengths, std::uintptr_t ranks, std::int64_t rank_rows,
                              std::int64_t A, std::uintptr_t out, std::uintptr_t stream) {
  return launch<double>(x, B, ld, lengths, ranks, rank_rows, A, out, stream);
}

}  // namespace synthperf
