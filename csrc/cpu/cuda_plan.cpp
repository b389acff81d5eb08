// CPU twin of the CUDA order-statistics launch-size computation (csrc/include/synthperf/
// cuda_launch.h): the same function the CUDA launcher calls, exposed so the CPU test suite
// checks the shared-memory budget at every width without a GPU.
#include <pybind11/pybind11.h>

#include "synthperf/bindings_registry.h"
#include "synthperf/cuda_launch.h"

namespace py = pybind11;

namespace synthperf {
namespace {

py::dict cuda_launch_plan(std::int64_t B, std::int64_t ld, int key_bytes, std::int64_t static_smem_override) {
  if (B < 0) throw py::value_error("cuda_launch_plan: B must be >= 0, got " + std::to_string(B));
  if (ld < 1) throw py::value_error("cuda_launch_plan: ld must be >= 1, got " + std::to_string(ld));
  if (key_bytes != 4 && key_bytes != 8)
    throw py::value_error("cuda_launch_plan: key_bytes must be 4 (float32) or 8 (float64), got " +
                          std::to_string(key_bytes));
  const OrderStatsLaunchPlan p = order_stats_launch_plan(B, ld, key_bytes, static_smem_override);
  py::dict d;
  d["kernel"] = p.warp_kernel ? "warp" : "block";
  d["cache_row"] = static_cast<bool>(p.cache_row);
  d["blocks"] = p.blocks;
  d["threads"] = p.threads;
  d["static_smem"] = p.static_smem;
  d["dynamic_smem"] = p.dynamic_smem;
  d["total_smem"] = p.total_smem;
  d["smem_budget"] = kSmemBudget;
  return d;
}

void register_cuda_plan(py::module_& m) {
  m.def("cuda_launch_plan", &cuda_launch_plan, py::arg("B"), py::arg("ld"), py::arg("key_bytes"),
        py::arg("static_smem_override") = -1,
        "Launch plan of the CUDA order-statistics kernels for B rows of width ld (key_bytes 4 or 8): "
        "dict(kernel, cache_row, blocks, threads, static_smem, dynamic_smem, total_smem, smem_budget).");
}

}  // namespace
}  // namespace synthperf

SYNTHPERF_REGISTER_BINDINGS(cuda_plan, synthperf::register_cuda_plan)
