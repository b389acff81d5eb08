"""MutualInformationScore / PredictiveVarianceScore (seapig B ensemble scores) against numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.selective import MutualInformationScore, PredictiveVarianceScore


def _softmax(z, axis):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _H(p, axis):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p)).sum(axis=axis)


def _Hb(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def _reference(z: np.ndarray, task: str, T: float):
    """(MI, PV) per sample from logits (N, K, M) or (N, M)."""
    z = z / T
    if z.ndim == 2:
        z = z[:, None, :]
    if task == "multiclass" or (task == "binary" and z.shape[1] == 2):
        p = _softmax(z, axis=1)
        mi = _H(p.mean(2), 1) - _H(p, 1).mean(1)
        pv = p.var(axis=2).sum(1)
    else:
        p = 1 / (1 + np.exp(-z))
        mi = (_Hb(p.mean(2)) - _Hb(p).mean(2)).max(1)
        pv = p.var(axis=2).max(1)
    return mi, pv


@pytest.mark.parametrize("task,shape", [("multiclass", (40, 5, 4)), ("binary", (40, 2, 3)), ("binary", (40, 6)),
                                        ("binary", (40, 1, 6)), ("multilabel", (40, 3, 5))])
@pytest.mark.parametrize("T", [1.0, 2.5])
def test_ensemble_scores_match_numpy(task, shape, T):
    g = torch.Generator().manual_seed(5)
    z = 2 * torch.randn(shape, generator=g)
    mi_ref, pv_ref = _reference(z.double().numpy(), task, T)
    mi = MutualInformationScore(temperature=T, task=task).fit(X=z)
    pv = PredictiveVarianceScore(temperature=T, task=task).fit(X=z)
    np.testing.assert_allclose(mi.score(z).double().numpy(), mi_ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pv.score(z).double().numpy(), pv_ref, rtol=1e-5, atol=1e-7)
    assert mi.score(z).dtype == torch.float32 and (mi_ref >= -1e-9).all()
    mi.set_threshold(0.9)
    sel = mi.select(z[:5])
    assert sel["selected"].dtype == torch.bool


def test_agreeing_members_score_zero_and_errors():
    z = torch.randn(10, 4, 1).repeat(1, 1, 3)  # identical members
    for cls in (MutualInformationScore, PredictiveVarianceScore):
        s = cls().fit(X=z)
        assert float(s.score(z).abs().max()) < 1e-6
        with pytest.raises(ValueError, match="at least 2 members"):
            s.score(torch.randn(10, 4, 1))
        with pytest.raises(ValueError, match="per_member must be True"):
            cls(per_member=False)
        with pytest.raises(ValueError, match="3-D"):
            s.score(torch.randn(10, 4))
        assert cls().fit(X=z).score(torch.empty(0, 4, 3)).shape == (0,)
