"""SPPI: synthetic-powered predictive inference (conformal prediction with synthetic
calibration data), plus the split-conformal baselines. Spec: specs/sppi.md.

Layers: ``windows`` (transport windows, worst-case bounds) -> ``thresholds`` (single-group
and batched thresholds on the kernel layer) -> scores, estimators, evaluation, trials.
"""
from .thresholds import (
    split_conformal_threshold,
    split_conformal_thresholds,
    sppi_threshold,
    sppi_thresholds,
)
from .windows import coverage_bounds, transport_windows

__all__ = [
    "coverage_bounds",
    "split_conformal_threshold",
    "split_conformal_thresholds",
    "sppi_threshold",
    "sppi_thresholds",
    "transport_windows",
]
