"""Issue 15 item 1 "Correct statistics": mean vs rms, binned AUCs, rc/<Name>/ keys, pseudo-inverse
Mahalanobis, RFF dtype, set_threshold(q=1.0), empty logits. Each against a direct numpy reference."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from synthperf.selective import (EnergyScore, EntropyScore, EuclideanScore, CosineScore, MahalanobisScore,
                                 MarginScore, RandomScore, SoftmaxScore, TensorPCA, risk_coverage)


def _knn_dist(q: np.ndarray, ref: np.ndarray, k: int) -> np.ndarray:
    d = np.sqrt(((q[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, :k]


@pytest.mark.parametrize("cls", [EuclideanScore, CosineScore])
def test_mean_is_arithmetic_and_rms_is_root_mean_square(cls):
    g = torch.Generator().manual_seed(3)
    ref, cal, q = (torch.randn(n, 6, generator=g) for n in (300, 40, 25))
    mean = cls(k=4, stat="mean").fit(X=ref, Y=cal).score(q).double().numpy()
    rms = cls(k=4, stat="rms").fit(X=ref, Y=cal).score(q).double().numpy()
    r, x = ref.double().numpy(), q.double().numpy()
    if cls is CosineScore:
        r, x = r / np.linalg.norm(r, axis=1, keepdims=True), x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 0.5 * _knn_dist(x, r, 4) ** 2
    else:
        d = _knn_dist(x, r, 4)
    np.testing.assert_allclose(mean, d.mean(1), rtol=1e-5)
    np.testing.assert_allclose(rms, np.sqrt((d ** 2).mean(1)), rtol=1e-5)
    assert (rms >= mean - 1e-6).all() and (rms > mean).any()


def _seapig_binned_aucs(score: np.ndarray, res: np.ndarray, risk: str, n_bins: int) -> tuple[float, float]:
    """seapig's risk_coverage written out in numpy: curve, bins by searchsorted, max per bin, trapz."""
    n = score.size

    def curve(s):
        order = np.argsort(s, kind="stable")
        cov = np.arange(1, n + 1) / n
        r = np.cumsum(res[order]) / n
        return cov, (r / cov if risk == "selective" else r)

    cov, emp = curve(score)
    _, ref = curve(res)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.searchsorted(edges, cov, side="left") - 1, 0, n_bins - 1)
    out = []
    for v in (cov, emp, ref):
        o = np.zeros(n_bins)
        np.maximum.at(o, b, v)
        out.append(o)
    c, e, r = out
    return float(np.trapezoid(e, c)), float(np.trapezoid(r, c))


@pytest.mark.parametrize("risk", ["generalized", "selective"])
def test_risk_coverage_aucs_are_taken_after_binning(risk):
    g = torch.Generator().manual_seed(0)
    score, res = torch.rand(5000, generator=g), torch.rand(5000, generator=g)
    rc = risk_coverage(score.double(), res.double(), risk, n_bins=37)  # float64 in: float64 out
    emp, ref = _seapig_binned_aucs(score.double().numpy(), res.double().numpy(), risk, 37)
    rc32 = risk_coverage(score, res, risk, n_bins=37)  # float32 in: the same areas, rounded to float32
    assert rc32.auc_empirical.dtype == torch.float32 and rc32.coverage.dtype == torch.float32
    assert rc32.auc_empirical == torch.tensor(emp, dtype=torch.float64).float()
    assert float(rc.auc_empirical) == pytest.approx(emp, rel=1e-12)
    assert float(rc.auc_reference) == pytest.approx(ref, rel=1e-12)
    assert float(rc.auc_excess) == pytest.approx(emp - ref, rel=1e-10)
    assert rc.coverage.numel() == 37
    full = risk_coverage(score, res, risk, n_bins=5000)
    # binning changes the area by more than float round-off: the (unbinned) first bin is cut off
    assert abs(float(full.auc_empirical) - emp) > 1e-4


def test_single_named_error_metric_logs_under_its_name():
    torchmetrics = pytest.importorskip("torchmetrics")
    from synthperf.selective import RiskCoverageMetric

    class AbsErr(torchmetrics.Metric):
        def __init__(self):
            super().__init__()
            self.add_state("r", default=[], dist_reduce_fx="cat")

        def update(self, preds, target):
            self.r.append((preds - target).abs().reshape(preds.shape[0], -1).mean(1))

        def compute(self):
            return torch.cat(self.r) if isinstance(self.r, list) else self.r

    g = torch.Generator().manual_seed(1)
    p, t, s = torch.rand(300, generator=g), torch.rand(300, generator=g), torch.rand(300, generator=g)
    m = RiskCoverageMetric(n_bins=20, error_metric=AbsErr())
    assert set(m.compute()) == {f"rc/AbsErr/auc_{k}" for k in ("empirical", "reference", "excess")}  # empty
    m.update(p, t, s)
    out = m.compute()
    assert set(out) == {f"rc/AbsErr/auc_{k}" for k in ("empirical", "reference", "excess")}
    rc = risk_coverage(s, (p - t).abs(), n_bins=20)
    assert out["rc/AbsErr/auc_empirical"].item() == pytest.approx(float(rc.auc_empirical), rel=1e-6)
    plain = RiskCoverageMetric(n_bins=20)
    plain.update(p, t, s)
    assert set(plain.compute()) == {f"rc/auc_{k}" for k in ("empirical", "reference", "excess")}


def _seapig_pinv_scores(ref: np.ndarray, q: np.ndarray, k: int, ridge: float = 1e-8) -> np.ndarray:
    cov = np.cov(ref.T)
    cov = cov + ridge * np.diag(cov).mean() * np.eye(cov.shape[0])
    lam, V = np.linalg.eigh(cov)
    keep = lam > lam[-1] * cov.shape[0] * np.finfo(np.float32).eps
    W = (V[:, keep] / lam[keep]) @ V[:, keep].T
    return _knn_dist(q @ W.T, ref @ W.T, k).mean(1)


def test_rank_deficient_mahalanobis_falls_back_to_pseudo_inverse():
    g = torch.Generator().manual_seed(0)
    ref, q = torch.randn(20, 64, generator=g), torch.randn(5, 64, generator=g)  # rank(Σ) = 19 < 64
    with pytest.warns(UserWarning, match="Falling back to the pseudo-inverse"):
        s = MahalanobisScore(k=5, stat="mean").fit(X=ref, Y=q)
    assert s.rank_deficient_
    got = s.score(q).double().numpy()
    np.testing.assert_allclose(got, _seapig_pinv_scores(ref.double().numpy(), q.double().numpy(), 5), rtol=1e-4)
    assert got.max() < 20  # a bare ridge puts the null directions at ~1e4 (thousands, issue 15)
    # the true Mahalanobis distance on the support of Σ
    with pytest.warns(UserWarning):
        s2 = MahalanobisScore(k=5, stat="mean", singular="pinv_sqrt").fit(X=ref, Y=q)
    cov = np.cov(ref.double().numpy().T) + 1e-8 * np.eye(64) * np.diag(np.cov(ref.double().numpy().T)).mean()
    lam, V = np.linalg.eigh(cov)
    keep = lam > lam[-1] * 64 * np.finfo(np.float32).eps
    W = (V[:, keep] / np.sqrt(lam[keep])).T
    expect = _knn_dist(q.double().numpy() @ W.T, ref.double().numpy() @ W.T, 5).mean(1)
    np.testing.assert_allclose(s2.score(q).double().numpy(), expect, rtol=1e-4)


def test_full_rank_mahalanobis_has_no_warning_and_uses_the_inverse():
    g = torch.Generator().manual_seed(2)
    ref, q = torch.randn(400, 5, generator=g), torch.randn(7, 5, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = MahalanobisScore(k=3, stat="max").fit(X=ref, Y=q)
    assert not s.rank_deficient_
    r = ref.double().numpy()
    cov = np.cov(r.T)
    vi = np.linalg.inv(cov + 1e-8 * np.diag(cov).mean() * np.eye(5))
    diff = q.double().numpy()[:, None, :] - r[None, :, :]
    d = np.sqrt(np.einsum("qnd,de,qne->qn", diff, vi, diff))
    np.testing.assert_allclose(s.score(q).double().numpy(), np.sort(d, 1)[:, :3].max(1), rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rff_features_drawn_in_input_dtype(dtype):
    X = torch.randn(50, 4, dtype=dtype)
    torch.manual_seed(7)
    pca = TensorPCA(n_components=3, gamma=0.5, M=16).fit(X)
    torch.manual_seed(7)
    w = torch.randn(16, 4, dtype=dtype) * math.sqrt(2 * 0.5)
    u = torch.rand(16, dtype=dtype) * (2 * math.pi)
    assert pca._rff_w.dtype == dtype and pca._rff_u.dtype == dtype
    assert torch.equal(pca._rff_w, w) and torch.equal(pca._rff_u, u)
    phi = (math.sqrt(2 / 16) * torch.cos(X @ w.T + u)).double()
    torch.testing.assert_close(pca.mu, phi.mean(0))


def test_set_threshold_accepts_q_one():
    g = torch.Generator().manual_seed(4)
    s = EuclideanScore(k=2).fit(X=torch.randn(100, 3, generator=g), Y=torch.randn(30, 3, generator=g))
    assert float(s.set_threshold(q=1.0)) == float(s.scores.max())
    assert float(RandomScore().set_threshold(1.0)) == 1.0
    for bad in (0.0, 1.0 + 1e-9, -0.5):
        with pytest.raises(ValueError, match=r"q must lie in \(0, 1\]"):
            s.set_threshold(q=bad)


@pytest.mark.parametrize("cls", [SoftmaxScore, EntropyScore, EnergyScore, MarginScore])
@pytest.mark.parametrize("task,shape", [("multiclass", (0, 4)), ("binary", (0,)), ("multilabel", (0, 3))])
def test_empty_logits_give_empty_scores(cls, task, shape):
    fit_shape = (10,) + shape[1:]
    s = cls(task=task).fit(X=torch.randn(fit_shape))
    out = s.select(torch.empty(shape))
    assert out["score"].shape == (0,) and out["selected"].shape == (0,) and out["selected"].dtype == torch.bool
    with pytest.raises(ValueError, match="at least one sample"):
        cls(task=task).fit(X=torch.empty(shape))
