// Launch-size computation of the CUDA order-statistics kernels (kernels/cuda/order_stats.cu),
// shared with the CPU build so the CPU test suite checks exactly the plan the GPU launches.
//
// A block may use at most kSmemBudget bytes of shared memory without opting in (48 KiB on
// every architecture since sm_20): static __shared__ variables PLUS the dynamic allocation.
// The static parts are the structs below, declared once per block in the kernels, so their
// sizes here are exact by construction; the plan caches a row in dynamic shared memory only
// when the static part (rounded up to kDynSmemAlign, where the dynamic buffer starts) plus
// the row fits in the budget. The launcher also re-checks the static size the compiler
// reports (cudaFuncGetAttributes) before it trusts the plan.
//
// Exposed to Python as synthperf._native.cuda_launch_plan (tests/test_cuda_launch_plan.py).
#pragma once

#include <cstdint>

#include "synthperf/device_math.h"

namespace synthperf {

constexpr int kOrderStatsThreads = 256;          // block kernel: >= kRadixBins, one bin per thread to clear
constexpr int kOrderStatsWarpRowMax = 4096;      // rows up to this width: one warp per row
constexpr int kOrderStatsWarpsPerBlock = 4;      // warp kernel: rows per block
constexpr std::int64_t kSmemBudget = 48 * 1024;  // shared memory per block without the opt-in attribute
constexpr std::int64_t kDynSmemAlign = 16;       // the dynamic buffer is declared __align__(16)
constexpr std::int64_t kMaxGridX = 2147483647;   // gridDim.x limit (2^31 - 1)

// Static shared memory of the block kernel (one row per block).
template <typename Key>
struct BlockKernelShared {
  unsigned hist[kRadixBins];
  Key prefix;
  long long k;
};

// Static shared memory of the warp kernel (kOrderStatsWarpsPerBlock rows per block).
struct WarpKernelShared {
  unsigned hist[kOrderStatsWarpsPerBlock][kRadixBins];
};

struct OrderStatsLaunchPlan {
  int warp_kernel;              // 1: one warp per row, 0: one block per row
  int cache_row;                // 1: the row(s) are cached in dynamic shared memory
  std::int64_t blocks;          // gridDim.x
  int threads;                  // blockDim.x
  std::int64_t static_smem;     // bytes of static shared memory (exact, from the structs above)
  std::int64_t dynamic_smem;    // bytes of dynamic shared memory requested at launch
  std::int64_t total_smem;      // static (aligned) + dynamic; <= kSmemBudget for a valid plan
};

SP_HD std::int64_t smem_round_up(std::int64_t v, std::int64_t a) { return (v + a - 1) / a * a; }

// Plan for B rows of leading dimension ld (ld >= 1) and keys of key_bytes (4 or 8) bytes.
// static_smem_override >= 0 replaces the static size (the launcher passes what the compiler
// reports when it is larger than the struct, which it never is for these kernels).
SP_HD OrderStatsLaunchPlan order_stats_launch_plan(std::int64_t B, std::int64_t ld, int key_bytes,
                                                   std::int64_t static_smem_override = -1) {
  OrderStatsLaunchPlan p{};
  const std::int64_t row_bytes = ld * key_bytes;
  p.warp_kernel = ld <= kOrderStatsWarpRowMax ? 1 : 0;
  if (p.warp_kernel) {
    p.static_smem = static_cast<std::int64_t>(sizeof(WarpKernelShared));
    p.threads = kOrderStatsWarpsPerBlock * 32;
    p.blocks = (B + kOrderStatsWarpsPerBlock - 1) / kOrderStatsWarpsPerBlock;
  } else {
    p.static_smem = key_bytes == 4 ? static_cast<std::int64_t>(sizeof(BlockKernelShared<std::uint32_t>))
                                   : static_cast<std::int64_t>(sizeof(BlockKernelShared<std::uint64_t>));
    p.threads = kOrderStatsThreads;
    p.blocks = B;
  }
  if (static_smem_override > p.static_smem) p.static_smem = static_smem_override;
  const std::int64_t rows_cached = p.warp_kernel ? kOrderStatsWarpsPerBlock : 1;
  const std::int64_t base = smem_round_up(p.static_smem, kDynSmemAlign);
  p.cache_row = base + rows_cached * row_bytes <= kSmemBudget ? 1 : 0;
  p.dynamic_smem = p.cache_row ? rows_cached * row_bytes : 0;
  p.total_smem = base + p.dynamic_smem;
  return p;
}

}  // namespace synthperf
