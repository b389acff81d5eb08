"""SPPI: synthetic-powered predictive inference (conformal prediction with synthetic
calibration data), plus the split-conformal baselines. Spec: specs/sppi.md.

Layers: ``windows`` (transport windows, worst-case bounds) -> ``thresholds`` (single-group
and batched thresholds on the kernel layer) -> ``scores`` (APS/LAC/CQR/residual), ``subset``
(SPI-Subset class selection), ``evaluation`` (batched coverage/size), ``estimators``
(sklearn/MAPIE-style classes), ``data`` (local MEPS / ImageNet-probs layouts) and
``trials`` (upstream-exact seeded experiments).
"""
from .data import (
    SUBSET_CLASSES,
    ClassificationData,
    RegressionData,
    generate_imagenet_like,
    load_imagenet_probs,
    load_meps,
    load_meps_pair,
    other_classes,
)
from .estimators import SplitConformalClassifier, SplitConformalRegressor, SPPIClassifier, SPPIRegressor
from .evaluation import IntervalMetrics, SetMetrics, evaluate_aps_sets, evaluate_intervals, evaluate_sets
from .scores import APS_TOP, abs_residual_scores, aps_from_precomputed, aps_precompute, aps_scores, cqr_scores, lac_scores
from .subset import class_distances, cvm_statistics, sppi_subset_select, wasserstein_distances
from .thresholds import (
    split_conformal_threshold,
    split_conformal_thresholds,
    sppi_threshold,
    sppi_thresholds,
)
from .trials import SPPITrialConfig, run_sppi_trials, trial_seeds
from .windows import coverage_bounds, transport_windows

__all__ = [
    "APS_TOP", "ClassificationData", "IntervalMetrics", "RegressionData", "SUBSET_CLASSES", "SPPIClassifier",
    "SPPIRegressor", "SPPITrialConfig", "SetMetrics", "SplitConformalClassifier", "SplitConformalRegressor",
    "abs_residual_scores", "aps_from_precomputed", "aps_precompute", "aps_scores", "class_distances",
    "coverage_bounds", "cqr_scores", "cvm_statistics", "evaluate_aps_sets", "evaluate_intervals", "evaluate_sets",
    "generate_imagenet_like", "lac_scores", "load_imagenet_probs", "load_meps", "load_meps_pair",
    "other_classes", "run_sppi_trials", "split_conformal_threshold", "split_conformal_thresholds",
    "sppi_subset_select", "sppi_threshold", "sppi_thresholds", "trial_seeds", "transport_windows",
    "wasserstein_distances",
]
