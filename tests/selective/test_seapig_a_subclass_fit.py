"""A seapig-A EmbeddingScore subclass that overrides fit(), calls super().fit(...) and then its own
argument-less _fit_impl() works, and _fit_impl runs exactly once (issue 15, user subclasses)."""
from __future__ import annotations

import torch

from synthperf.selective import EmbeddingScore


class _NearestL2(EmbeddingScore):
    ident = "nearest-l2"
    train_required = False
    cal_required = False
    calls = 0

    def _fit_impl(self) -> None:
        type(self).calls += 1
        self.set_trained()
        self.scores = torch.cdist(self.cal_embeddings, self.ref_embeddings).amin(dim=1)
        self.set_calibrated()

    def fit(self, X=None, Y=None, model=None, loaders=None, outdir=None, prefix=None):
        super().fit(X=X, Y=Y, model=model, loaders=loaders, outdir=outdir, prefix=prefix)
        self._fit_impl()

    def _score_embeddings(self, X: torch.Tensor) -> torch.Tensor:
        return torch.cdist(X, self.ref_embeddings).amin(dim=1)


def test_a_subclass_own_fit_runs_fit_impl_once():
    g = torch.Generator().manual_seed(0)
    ref, cal, q = torch.randn(20, 3, generator=g), torch.randn(8, 3, generator=g), torch.randn(5, 3, generator=g)
    s = _NearestL2()
    s.fit(X=ref, Y=cal)
    assert _NearestL2.calls == 1 and s.is_calibrated()
    torch.testing.assert_close(s.scores, torch.cdist(cal, ref).amin(dim=1))
    s.set_threshold(0.5)
    out = s.select(q)
    torch.testing.assert_close(out["score"], torch.cdist(q, ref).amin(dim=1))
    assert torch.equal(out["selected"], out["score"] < s.threshold)
