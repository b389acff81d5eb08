"""Quality of synthetic data, measured (issue 13 item 2). A shared layer: imports no system
subpackage (conformal, selective, flows, guidance, gafi, experiments).

- :func:`classification_accuracy_score` (CAS): a fresh classifier trained on synthetic data
  only, accuracy on real held-out data (default: the shared digits protocol, :func:`digits_split`),
  mean and SE over classifier seeds;
- :func:`classifier_accuracy` / :func:`per_class_accuracy`: e.g. a real-data classifier's
  accuracy on synthetic samples, overall and per class, with binomial SEs;
- :func:`frechet_distance`: Frechet distance between feature Gaussians, on the penultimate
  features of a digits network trained in-process (:func:`digits_feature_extractor`) or any
  local ``feature_extractor``;
- :func:`score_distances`: two-sample distances (Kolmogorov-Smirnov with p-value,
  Wasserstein-1, Cramer-von Mises) between real and synthetic calibration scores, optionally
  per class.
"""
from .quality import (
    CASResult,
    ClassAccuracy,
    ScoreDistances,
    classification_accuracy_score,
    classifier_accuracy,
    default_cas_classifier,
    digits_split,
    per_class_accuracy,
    score_distances,
)
from .frechet import DigitsFeatureNet, digits_feature_extractor, frechet_distance, gaussian_frechet

__all__ = ["CASResult", "ClassAccuracy", "ScoreDistances", "classification_accuracy_score", "classifier_accuracy",
           "default_cas_classifier", "digits_split", "per_class_accuracy", "score_distances",
           "DigitsFeatureNet", "digits_feature_extractor", "frechet_distance", "gaussian_frechet"]
