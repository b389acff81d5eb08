"""SPPI: synthetic-powered predictive inference (conformal prediction with synthetic
calibration data), plus the split-conformal baselines. Spec: specs/sppi.md.

Layers: ``windows`` (transport windows, worst-case bounds) -> ``thresholds`` (single-group
and batched thresholds on the kernel layer) -> ``scores`` (APS/LAC/CQR/residual), ``subset``
(SPI-Subset class selection), ``evaluation`` (batched coverage/size), ``estimators``
(sklearn/MAPIE-style classes), ``data`` (local MEPS / ImageNet-probs layouts) and
``trials`` (upstream-exact seeded experiments); ``mapie_api`` (MAPIE 1.x verbs), ``weighted``
(covariate-shift conformal), ``cqr`` (MAPIE's ConformalizedQuantileRegressor), ``risk_control``
(conformal risk control), ``metrics``.
"""
from .cqr import ConformalizedQuantileRegressor
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
from .estimators import (MondrianConformalRegressor, SplitConformalClassifier, SplitConformalRegressor, SPPIClassifier,
                         SPPIRegressor)
from .evaluation import IntervalMetrics, SetMetrics, evaluate_aps_sets, evaluate_intervals, evaluate_sets
from .metrics import (class_conditional_coverage, classification_coverage_score, classification_mean_width_score,
                      group_coverage, regression_coverage_score, regression_mean_width_score)
from .risk_control import conformal_risk_control, false_negative_losses, selective_error_losses
from .scores import APS_TOP, abs_residual_scores, aps_from_precomputed, aps_precompute, aps_scores, cqr_scores, lac_scores
from .scores import (cqr_asymmetric_scores, gamma_scores, normalized_residual_scores, raps_scores, saps_scores,
                     topk_scores)
from .subset import class_distances, cvm_statistics, sppi_subset_select, wasserstein_distances
from .thresholds import (
    split_conformal_threshold,
    split_conformal_thresholds,
    sppi_threshold,
    sppi_thresholds,
)
from .trials import SPPITrialConfig, run_sppi_trials, trial_seeds
from .weighted import (WeightedSplitConformalClassifier, WeightedSplitConformalRegressor,
                       gaussian_shift_likelihood_ratio, weighted_split_conformal_thresholds)
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
__all__ += [  # issue 16: MAPIE 1.x verbs, more scores and methods, metrics
    "MondrianConformalRegressor", "class_conditional_coverage", "classification_coverage_score",
    "classification_mean_width_score", "conformal_risk_control", "cqr_asymmetric_scores", "false_negative_losses",
    "gamma_scores", "gaussian_shift_likelihood_ratio", "group_coverage", "normalized_residual_scores",
    "raps_scores", "regression_coverage_score", "regression_mean_width_score", "saps_scores",
    "selective_error_losses", "topk_scores", "weighted_split_conformal_thresholds",
    "WeightedSplitConformalClassifier", "WeightedSplitConformalRegressor", "ConformalizedQuantileRegressor",
]
