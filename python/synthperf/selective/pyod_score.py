"""``PyODScore``: wrap any pyod detector as a selective-prediction score (spec §1.8; optional extra).

pyod convention (higher ``decision_function`` = more outlying) matches ours (lower = accept).
The detector is fitted on the reference embeddings; a calibration set is required
(``cal_required``): its ``decision_function`` values are the calibration scores. Scores are
float32 tensors on the query's device.

Duck typing: any detector with ``fit(X)`` and ``decision_function(X)`` (numpy (N, D) float64 in,
(N,) out) works - a pyod ``BaseDetector``, a scikit-learn-style wrapper or a test double; pyod
itself is not imported. ``decision_scores_`` (pyod's training scores) is used for the ``q``-trim
when present, else ``decision_function`` on the reference.
"""
from __future__ import annotations


import numpy as np
import torch

from ._common import quantile_threshold
from ._types import OutlierDetector, Projection
from .base import EmbeddingScore


def _check_detector(detector: object) -> None:
    missing = [m for m in ("fit", "decision_function") if not callable(getattr(detector, m, None))]
    if missing:
        raise TypeError(f"detector must be a pyod-style outlier detector with fit(X) and decision_function(X); "
                        f"{type(detector).__name__} lacks {' and '.join(missing)}")


class PyODScore(EmbeddingScore):
    """Score = ``detector.decision_function(x)``; ``detector`` is an (unfitted) pyod-style detector."""

    train_required = True
    cal_required = True

    def __init__(self, detector: OutlierDetector, pca: Projection | None = None) -> None:
        _check_detector(detector)
        super().__init__(pca=pca)
        self.detector = detector
        self.ident = f"pyod-{type(detector).__name__}"

    @staticmethod
    def _np(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().double().numpy()

    def _fit_impl(self, q: float | None) -> None:
        if self.cal_embeddings is None:
            raise ValueError("PyODScore needs a calibration set: fit(X=ref, Y=cal) or loaders with 'val'")
        if self.pca is not None:
            self._fit_pca()
        ref = self.ref_embeddings
        if q is not None:
            self.detector.fit(self._np(ref))
            train = getattr(self.detector, "decision_scores_", None)
            if train is None:
                train = self.detector.decision_function(self._np(ref))
            s = torch.as_tensor(np.asarray(train, dtype=np.float64).reshape(-1), dtype=torch.float32)
            keep = s < quantile_threshold(s, q)
            ref = ref[keep.to(ref.device)]
            self.ref_embeddings = ref
        self.detector.fit(self._np(ref))
        self.set_trained()
        self.scores = torch.as_tensor(np.asarray(self.detector.decision_function(self._np(self.cal_embeddings))),
                                      dtype=torch.float32)
        self.set_calibrated()

    def _score_embeddings(self, X: torch.Tensor) -> torch.Tensor:
        Xp = self.pca.transform(X) if self.pca is not None else X
        s = np.asarray(self.detector.decision_function(self._np(Xp)))
        return torch.as_tensor(s, dtype=torch.float32).to(X.device)
