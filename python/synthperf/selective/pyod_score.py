"""``PyODScore``: wrap any pyod detector as a selective-prediction score (spec §1.8; optional extra).

pyod convention (higher ``decision_function`` = more outlying) matches ours (lower = accept).
The detector is fitted on the reference embeddings; a calibration set is required
(``cal_required``): its ``decision_function`` values are the calibration scores. Scores are
float32 tensors on the query's device.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._common import quantile_threshold
from .base import EmbeddingScore


def _require_pyod():
    try:
        from pyod.models.base import BaseDetector  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("PyODScore needs pyod: pip install pyod (the 'selective' test extra installs it)") from exc
    return BaseDetector


class PyODScore(EmbeddingScore):
    """Score = ``detector.decision_function(x)``; ``detector`` is an (unfitted) pyod BaseDetector."""

    train_required = True
    cal_required = True

    def __init__(self, detector: Any, pca: Any = None) -> None:
        base = _require_pyod()
        if not isinstance(detector, base):
            raise TypeError(f"detector must be a pyod BaseDetector instance, got {type(detector).__name__}")
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
            s = torch.as_tensor(np.asarray(self.detector.decision_scores_), dtype=torch.float32)
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
