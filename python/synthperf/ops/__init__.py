"""Kernel entry points. Each takes numpy arrays or torch tensors and ``backend=``.

| kernel | reference | cpu | cuda | triton |
|---|---|---|---|---|
| :func:`order_statistics` | numpy sort per row | C++ histogram selection | bitwise select | bitwise select |
| :func:`discrete_score` | torch chunked float64 | C++ tiled streaming LSE (OpenMP, ISA dispatch) | - | fused online softmax + Euler/Heun |
| :mod:`~synthperf.ops.sppi` (under ``conformal.sppi_thresholds``) | selection + clip | fused C++ multi-select + clip | selection + clip | selection + clip |

The discrete-score kernels are also ``torch.library`` custom ops (``torch.ops.synthperf.discrete_score``,
``torch.ops.synthperf.pfode_step``, registered on first use by :mod:`._torch_ops`). Solver, grid
and saving policy for simulations live in :mod:`synthperf.flows.solvers`, not here.

Backend choice follows one policy (:mod:`synthperf.backend`): ``backend=None`` is the process
preference with fallback, an explicit name is a request that raises when it cannot run.
"""
from .discrete_score import discrete_score, discrete_score_reference, integrate_discrete, pfode_step
from .order_stats import order_statistics, order_statistics_cpu, order_statistics_device, order_statistics_reference
from .sppi import sppi_clip_selected, sppi_thresholds_cpu

__all__ = [
    "discrete_score",
    "discrete_score_reference",
    "integrate_discrete",
    "order_statistics",
    "order_statistics_cpu",
    "order_statistics_device",
    "order_statistics_reference",
    "pfode_step",
    "sppi_clip_selected",
    "sppi_thresholds_cpu",
]
