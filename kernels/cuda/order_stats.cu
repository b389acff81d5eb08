// Batched order statistics on the GPU, all of a row's ranks in one pass over the launch.
//
// Two kernels, one algorithm: rows up to kWarpRowMax entries get one warp each (no block
// barriers, four rows per block); longer rows get a whole block.
//
// Algorithm: radix-digit selection on order-preserving keys (csrc/include/synthperf/
// device_math.h, the same functions the CPU twin order_statistics_radix_cpu runs in the test
// suite). For each rank, 8-bit digits are fixed from the top: a shared-memory histogram of
// the next digit of the keys that match the digits fixed so far, then warp 0 scans the 256
// bins (8 per lane, radix_find_digit) to find the bin holding the k-th key. kBits/8 passes
// per rank (4 for float32, 8 for float64), no sort, no global scratch.
//
// The row's keys are cached in dynamic shared memory when they fit, so the passes after the
// first read on-chip memory; longer rows are re-read from global memory (L2) on every pass.
// The launch size (kernel, grid, cache or not, dynamic bytes) comes from
// order_stats_launch_plan (csrc/include/synthperf/cuda_launch.h, shared with the CPU build
// and tested there): static + dynamic shared memory stay within the 48 KiB default limit. Histogram updates are warp-aggregated (__match_any_sync: one
// atomic per distinct bin per warp), since the top digits of real data (sign + exponent)
// put most keys in a handful of bins. Inputs were validated on the host (no NaN, ranks in
// range).
//
// No pybind11 here (see csrc/cuda/bind_cuda.cpp): plain launchers keep nvcc time low.
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "synthperf/cuda_launch.h"
#include "synthperf/device_math.h"

namespace synthperf {
namespace {

constexpr int kThreads = kOrderStatsThreads;
constexpr int kWarpRowMax = kOrderStatsWarpRowMax;
constexpr int kWarpsPerBlock = kOrderStatsWarpsPerBlock;

template <typename T>
__device__ __forceinline__ typename KeyTraits<T>::Key load_key(const T* p) {
  using Key = typename KeyTraits<T>::Key;
  Key bits;
  memcpy(&bits, p, sizeof(Key));
  return ordered_key_from_bits(bits);
}

// Add one to hist[bin] for every lane with bin < kRadixBins: one atomic per distinct bin.
// All 32 lanes must call it (full mask).
__device__ __forceinline__ void warp_aggregated_increment(unsigned* hist, unsigned bin) {
  const unsigned peers = __match_any_sync(0xffffffffu, bin);
  const int leader = __ffs(peers) - 1;
  if (bin < static_cast<unsigned>(kRadixBins) && static_cast<int>(threadIdx.x % 32) == leader) {
    atomicAdd(&hist[bin], static_cast<unsigned>(__popc(peers)));
  }
}

// Warp `lane` scans its 8-bin slice of hist (after an exclusive scan over lanes) and the
// whole warp learns the digit holding rank k and the rank inside that bin.
__device__ __forceinline__ void warp_find_digit(const unsigned* hist, int lane, std::int64_t k,
                                                unsigned* digit_out, std::int64_t* k_out) {
  constexpr int kPerLane = kRadixBins / 32;
  unsigned local[kPerLane];
  long long sum = 0;
#pragma unroll
  for (int j = 0; j < kPerLane; ++j) {
    local[j] = hist[lane * kPerLane + j];
    sum += local[j];
  }
  long long incl = sum;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const long long up = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += up;
  }
  std::int64_t k_in_bin = 0;
  const int j = radix_find_digit(local, kPerLane, incl - sum, k, &k_in_bin);
  const unsigned found = __ballot_sync(0xffffffffu, j >= 0);  // exactly one lane
  const int winner = __ffs(found) - 1;
  *digit_out = static_cast<unsigned>(__shfl_sync(0xffffffffu, lane * kPerLane + j, winner));
  *k_out = __shfl_sync(0xffffffffu, static_cast<long long>(k_in_bin), winner);
}

// One warp per row (rows of at most kWarpRowMax entries), kWarpsPerBlock rows per block.
template <typename T>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
order_statistics_warp_kernel(const T* __restrict__ x, std::int64_t B, std::int64_t ld,
                             const std::int64_t* __restrict__ lengths,
                             const std::int64_t* __restrict__ ranks, std::int64_t rank_rows,
                             std::int64_t A, T* __restrict__ out, int cache_row) {
  using Key = typename KeyTraits<T>::Key;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ WarpKernelShared sh;  // the only static shared memory (counted by the launch plan)
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t b = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (b >= B) return;  // whole warps exit together; no block barrier below
  unsigned* hist = sh.hist[warp];
  Key* cache = reinterpret_cast<Key*>(smem_raw) + warp * ld;
  const std::int64_t len = lengths[b];
  const T* row = x + b * ld;
  if (cache_row) {
    for (std::int64_t i = lane; i < len; i += 32) cache[i] = load_key(row + i);
  }
  for (int j = lane; j < kRadixBins; j += 32) hist[j] = 0u;
  __syncwarp();
  for (std::int64_t a = 0; a < A; ++a) {
    Key prefix = 0, decided = 0;
    std::int64_t k = ranks[(rank_rows == 1 ? 0 : b) * A + a];
    for (int shift = KeyTraits<T>::kBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
      for (std::int64_t base = 0; base < len; base += 32) {  // uniform trip count: full-mask syncs
        const std::int64_t i = base + lane;
        unsigned bin = kRadixBins;  // "no bin"
        if (i < len) {
          const Key key = cache_row ? cache[i] : load_key(row + i);
          if (radix_prefix_matches(key, prefix, decided)) bin = radix_digit(key, shift);
        }
        warp_aggregated_increment(hist, bin);
      }
      __syncwarp();
      unsigned digit = 0;
      warp_find_digit(hist, lane, k, &digit, &k);
      __syncwarp();
      for (int j = lane; j < kRadixBins; j += 32) hist[j] = 0u;
      __syncwarp();
      prefix |= static_cast<Key>(digit) << shift;
      decided |= static_cast<Key>(kRadixBins - 1) << shift;
    }
    if (lane == 0) {
      const Key bits = bits_from_ordered_key(prefix);
      T value;
      memcpy(&value, &bits, sizeof(Key));
      out[b * A + a] = value;
    }
  }
}

// One block per row (long rows).
template <typename T>
__global__ void __launch_bounds__(kThreads)
order_statistics_kernel(const T* __restrict__ x, std::int64_t ld,
                        const std::int64_t* __restrict__ lengths,
                        const std::int64_t* __restrict__ ranks, std::int64_t rank_rows,
                        std::int64_t A, T* __restrict__ out, int cache_row) {
  using Key = typename KeyTraits<T>::Key;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Key* cache = reinterpret_cast<Key*>(smem_raw);
  __shared__ BlockKernelShared<Key> sh;  // the only static shared memory (counted by the launch plan)
  unsigned* hist = sh.hist;

  const std::int64_t b = blockIdx.x;
  const std::int64_t len = lengths[b];
  const T* row = x + b * ld;
  const int tid = threadIdx.x;

  if (cache_row) {
    for (std::int64_t i = tid; i < len; i += kThreads) cache[i] = load_key(row + i);
  }
  for (std::int64_t a = 0; a < A; ++a) {
    Key prefix = 0, decided = 0;
    std::int64_t k = ranks[(rank_rows == 1 ? 0 : b) * A + a];
    for (int shift = KeyTraits<T>::kBits - kRadixBits; shift >= 0; shift -= kRadixBits) {
      if (tid < kRadixBins) hist[tid] = 0u;
      __syncthreads();  // cleared (and, on the first pass, the row cache is filled)
      for (std::int64_t base = 0; base < len; base += kThreads) {  // uniform per warp
        const std::int64_t i = base + tid;
        unsigned bin = kRadixBins;
        if (i < len) {
          const Key key = cache_row ? cache[i] : load_key(row + i);
          if (radix_prefix_matches(key, prefix, decided)) bin = radix_digit(key, shift);
        }
        warp_aggregated_increment(hist, bin);
      }
      __syncthreads();
      if (tid < 32) {  // warp 0: the bin holding rank k
        unsigned digit = 0;
        std::int64_t k_in_bin = 0;
        warp_find_digit(hist, tid, k, &digit, &k_in_bin);
        if (tid == 0) {
          sh.prefix = prefix | (static_cast<Key>(digit) << shift);
          sh.k = k_in_bin;
        }
      }
      __syncthreads();
      prefix = sh.prefix;
      k = sh.k;
      decided |= static_cast<Key>(kRadixBins - 1) << shift;
    }
    if (tid == 0) {
      const Key bits = bits_from_ordered_key(prefix);
      T value;
      memcpy(&value, &bits, sizeof(Key));
      out[b * A + a] = value;
    }
  }
}

// Static shared memory the compiler reports for a kernel (cached per kernel), or -1.
template <typename Kernel>
std::int64_t reported_static_smem(Kernel kernel) {
  cudaFuncAttributes attr{};
  if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return static_cast<std::int64_t>(attr.sharedSizeBytes);
}

template <typename T>
int launch(std::uintptr_t x, std::int64_t B, std::int64_t ld, std::uintptr_t lengths,
           std::uintptr_t ranks, std::int64_t rank_rows, std::int64_t A, std::uintptr_t out,
           std::uintptr_t stream) {
  using Key = typename KeyTraits<T>::Key;
  if (B == 0 || A == 0) return cudaSuccess;
  cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  const bool warp = ld <= kWarpRowMax;
  static const std::int64_t warp_static = reported_static_smem(order_statistics_warp_kernel<T>);
  static const std::int64_t block_static = reported_static_smem(order_statistics_kernel<T>);
  const OrderStatsLaunchPlan plan = order_stats_launch_plan(
      B, ld, static_cast<int>(sizeof(Key)), warp ? warp_static : block_static);
  if (plan.blocks > kMaxGridX || plan.total_smem > kSmemBudget) return cudaErrorInvalidConfiguration;
  const size_t smem = static_cast<size_t>(plan.dynamic_smem);
  if (plan.warp_kernel) {
    order_statistics_warp_kernel<T><<<static_cast<unsigned>(plan.blocks), plan.threads, smem, st>>>(
        reinterpret_cast<const T*>(x), B, ld, reinterpret_cast<const std::int64_t*>(lengths),
        reinterpret_cast<const std::int64_t*>(ranks), rank_rows, A, reinterpret_cast<T*>(out),
        plan.cache_row);
    return static_cast<int>(cudaGetLastError());
  }
  order_statistics_kernel<T><<<static_cast<unsigned>(plan.blocks), plan.threads, smem, st>>>(
      reinterpret_cast<const T*>(x), ld, reinterpret_cast<const std::int64_t*>(lengths),
      reinterpret_cast<const std::int64_t*>(ranks), rank_rows, A, reinterpret_cast<T*>(out),
      plan.cache_row);
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
