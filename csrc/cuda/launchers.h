// Plain host launchers implemented in kernels/cuda/*.cu. They take device addresses as
// uintptr_t (torch.Tensor.data_ptr()) and a CUDA stream handle, and return a cudaError_t
// as int (0 = success). No torch and no pybind11 on either side of this boundary.
#pragma once

#include <cstdint>

namespace synthperf {

int order_statistics_cuda_f32(std::uintptr_t x, std::int64_t B, std::int64_t ld,
                              std::uintptr_t lengths, std::uintptr_t ranks, std::int64_t rank_rows,
                              std::int64_t A, std::uintptr_t out, std::uintptr_t stream);
int order_statistics_cuda_f64(std::uintptr_t x, std::int64_t B, std::int64_t ld,
                              std::uintptr_t lengths, std::uintptr_t ranks, std::int64_t rank_rows,
                              std::int64_t A, std::uintptr_t out, std::uintptr_t stream);

}  // namespace synthperf
