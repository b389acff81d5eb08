"""``synthperf.selective.scores``: the score classes under seapig's module path (``seapig.scores``,
spec §1.1, both versions' exports). ``PyODScore`` is always exported (seapig: only with pyod
installed): it duck-types its detector, so pyod is needed only for pyod's detectors; ``TensorPCA`` lives in :mod:`synthperf.selective.scores.utils` (and at the top level).
"""
from __future__ import annotations

from ..base import EmbeddingScore, RandomScore, UncertaintyScore
from ..classwise import (ClassWiseMode, ClassWiseScore, CosineClassWiseScore, EuclideanClassWiseScore,
                         MahalanobisClassWiseScore)
from ..ensemble import MutualInformationScore, PredictiveVarianceScore
from ..knn_scores import CosineScore, EuclideanScore, KNNScore, MahalanobisScore
from ..logits import EnergyScore, EntropyScore, LogitScore, MarginScore, SoftmaxScore
from ..pca import PCAScore

__all__ = [
    "CosineScore", "EmbeddingScore", "EnergyScore", "EntropyScore", "EuclideanScore", "KNNScore", "LogitScore",
    "MahalanobisScore", "MarginScore", "PCAScore", "RandomScore", "SoftmaxScore", "UncertaintyScore",
    "ClassWiseMode", "ClassWiseScore", "EuclideanClassWiseScore", "CosineClassWiseScore",
    "MahalanobisClassWiseScore", "MutualInformationScore", "PredictiveVarianceScore",
]

from ..pyod_score import PyODScore  # noqa: E402

__all__.append("PyODScore")
