"""Selective prediction with the seapig API on exact faiss KNN (issue 4, spec ``seapig.md``).

Scores (lower = accept; ``select(X) -> {"score", "selected": score < threshold}``):

- KNN distances: :class:`EuclideanScore`, :class:`CosineScore`, :class:`MahalanobisScore`
  and their class-wise variants (:class:`ClassWiseScore`, ``*ClassWiseScore``);
- logits: :class:`SoftmaxScore`, :class:`EntropyScore`, :class:`EnergyScore`, :class:`MarginScore`;
  ensembles (member axis last): :class:`MutualInformationScore`, :class:`PredictiveVarianceScore`;
- :class:`PCAScore` with :class:`TensorPCA` (linear or RFF kernel PCA, ``partial_fit``);
- :class:`PyODScore` (any detector with ``fit``/``decision_function``, e.g. pyod's), :class:`RandomScore`.

The KNN engine (:mod:`synthperf.selective.knn`) is exact faiss search by default. Metrics
(:class:`SelectiveMetric`, :class:`RiskCoverageMetric`, needing torchmetrics) and
:class:`SelectiveInferenceTask` (needing lightning) are imported lazily on first access.
Logging goes to the standard ``logging`` logger ``synthperf`` (child ``synthperf.selective``);
progress bars follow :func:`synthperf.disable_progress`. seapig's module paths exist too:
:mod:`synthperf.selective.scores` (and ``.scores.utils``), :mod:`synthperf.selective.utils`
(``configure_logging``, ``get_logger``, ``disable``/``enable`` progress, progress backend
get/set) and :mod:`synthperf.selective.risk`.
"""
from __future__ import annotations

import importlib
from typing import Any

from .base import EmbeddingScore, RandomScore, UncertaintyScore
from .classwise import (ClassWiseMode, ClassWiseScore, CosineClassWiseScore, EuclideanClassWiseScore,
                        MahalanobisClassWiseScore)
from .knn import KNNIndex, knn_search
from .knn_scores import CosineScore, EuclideanScore, KNNScore, MahalanobisScore
from .ensemble import MutualInformationScore, PredictiveVarianceScore
from .logits import EnergyScore, EntropyScore, LogitScore, MarginScore, SoftmaxScore
from .pca import PCAScore, TensorPCA
from .risk import RiskCoverage, aurc, eaurc, risk_coverage

_LAZY = {
    "SelectiveMetric": ".metric",
    "RiskCoverageMetric": ".metric",
    "SelectiveInferenceTask": ".model",
    "PyODScore": ".pyod_score",
}

__all__ = [
    "UncertaintyScore", "EmbeddingScore", "RandomScore", "KNNScore", "EuclideanScore", "CosineScore",
    "MahalanobisScore", "ClassWiseMode", "ClassWiseScore", "EuclideanClassWiseScore", "CosineClassWiseScore",
    "MahalanobisClassWiseScore", "LogitScore", "SoftmaxScore", "EntropyScore", "EnergyScore", "MarginScore",
    "MutualInformationScore", "PredictiveVarianceScore",
    "PCAScore", "TensorPCA", "KNNIndex", "knn_search", "RiskCoverage", "risk_coverage", "aurc", "eaurc",
    *_LAZY,
]


_SUBMODULES = ("scores", "utils")  # seapig's module paths (synthperf.selective.scores / .utils / .risk)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
