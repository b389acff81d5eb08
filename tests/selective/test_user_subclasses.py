"""A user EmbeddingScore subclass written for either seapig version works (issue 15 item 2)."""
from __future__ import annotations

import pytest
import torch

from synthperf.selective import EmbeddingScore, TensorPCA


class NormScoreA(EmbeddingScore):
    """seapig git main style: only ``_score_embeddings``."""

    ident = "norm"

    def _score_embeddings(self, X):
        return X.double().norm(dim=1)


class MeanDistanceB(EmbeddingScore):
    """seapig 0.3.0 style: ``_fit(q)`` and ``_score(query)``."""

    ident = "meandist"

    def _fit(self, q):
        if self.pca is not None:
            self._apply_pca()
        self.register_buffer("center", self.ref_embeddings.double().mean(0))
        self.set_trained()
        cal = self.cal_embeddings if self.cal_embeddings is not None else self.ref_embeddings
        self.scores = self._score(cal, projected=True)
        if self.cal_embeddings is not None:
            self.set_calibrated()

    def _score(self, query, projected=False):
        x = query if (projected or self.pca is None) else self.pca.transform(query)
        return (x.double() - self.center).norm(dim=1)


def test_version_a_subclass_with_only_score_embeddings():
    g = torch.Generator().manual_seed(0)
    ref, cal, q = torch.randn(50, 3, generator=g), torch.randn(20, 3, generator=g), torch.randn(7, 3, generator=g)
    s = NormScoreA().fit(X=ref, Y=cal)
    assert s.is_trained() and s.is_calibrated()
    torch.testing.assert_close(s.scores, cal.double().norm(dim=1))
    thr = s.set_threshold(0.5)
    out = s.select(q)
    torch.testing.assert_close(out["score"], q.double().norm(dim=1))
    assert torch.equal(out["selected"], q.double().norm(dim=1) < thr)
    nocal = NormScoreA().fit(X=ref)
    assert not nocal.is_calibrated() and nocal.scores.shape == (50,)
    with pytest.raises(ValueError, match="q=0.9"):
        NormScoreA().fit(X=ref, q=0.9)


def test_version_b_subclass_with_fit_and_score():
    g = torch.Generator().manual_seed(1)
    ref, cal, q = torch.randn(60, 4, generator=g), torch.randn(30, 4, generator=g), torch.randn(9, 4, generator=g)
    s = MeanDistanceB().fit(ref={"embedding": ref}, cal={"embedding": cal})
    center = ref.double().mean(0)
    torch.testing.assert_close(s.scores, (cal.double() - center).norm(dim=1))
    torch.testing.assert_close(s.score(query=q), (q.double() - center).norm(dim=1))
    assert s.is_calibrated()
    p = MeanDistanceB(pca=TensorPCA(2)).fit(ref=ref, cal=cal)
    z = p.pca.transform(q)
    torch.testing.assert_close(p.score(query=q), (z - p.ref_embeddings.double().mean(0)).norm(dim=1))


def test_subclass_without_any_score_says_what_to_define():
    class Nothing(EmbeddingScore):
        pass

    with pytest.raises(NotImplementedError, match=r"_score_embeddings\(X\).*_score\(query\)"):
        Nothing().fit(X=torch.randn(5, 2))


def test_pyod_score_duck_types_its_detector():
    import numpy as np

    from synthperf.selective import PyODScore

    class CentroidDetector:
        """No pyod: fit/decision_function only (distance to the training mean)."""

        def fit(self, X):
            self.mu_ = X.mean(0)
            return self

        def decision_function(self, X):
            return np.linalg.norm(X - self.mu_, axis=1)

    g = torch.Generator().manual_seed(3)
    ref, cal, q = torch.randn(80, 3, generator=g), torch.randn(30, 3, generator=g), torch.randn(6, 3, generator=g)
    s = PyODScore(CentroidDetector()).fit(X=ref, Y=cal)
    mu = ref.double().mean(0)
    torch.testing.assert_close(s.scores, (cal.double() - mu).norm(dim=1).float())
    torch.testing.assert_close(s.score(q), (q.double() - mu).norm(dim=1).float())
    assert s.ident == "pyod-CentroidDetector"
    trimmed = PyODScore(CentroidDetector()).fit(X=ref, Y=cal, q=0.5)  # no decision_scores_: uses decision_function
    assert trimmed.ref_embeddings.shape[0] == 40

    class NoDecision:
        def fit(self, X):
            return self

    with pytest.raises(TypeError, match="lacks decision_function"):
        PyODScore(NoDecision())
