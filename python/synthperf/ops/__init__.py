"""Kernel entry points. Each takes numpy arrays or torch tensors and ``backend=``.

| kernel | reference | cpu | cuda | triton |
|---|---|---|---|---|
| :func:`order_statistics` | numpy sort per row | C++ histogram selection | bitwise select | bitwise select |
| :func:`discrete_score` | torch chunked float64 | C++ tiled streaming LSE (OpenMP, ISA dispatch) | - | fused online softmax + Euler/Heun |
"""
from .discrete_score import discrete_score, discrete_score_reference, integrate_discrete, pfode_discrete_step
from .order_stats import order_statistics, order_statistics_reference

__all__ = [
    "discrete_score",
    "discrete_score_reference",
    "integrate_discrete",
    "order_statistics",
    "order_statistics_reference",
    "pfode_discrete_step",
]
