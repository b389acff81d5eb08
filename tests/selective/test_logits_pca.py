"""Logit-score formulas, temperature fitting, TensorPCA (vs scikit-learn, partial_fit, RFF), PCAScore, PyODScore."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthperf.selective import (EnergyScore, EntropyScore, MarginScore, PCAScore, SoftmaxScore, TensorPCA)

Z = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])


def test_multiclass_formulas():
    p = torch.softmax(Z, 1)
    torch.testing.assert_close(SoftmaxScore().score(Z), -p.amax(1))
    torch.testing.assert_close(EntropyScore().score(Z), -(p * p.log()).sum(1))
    torch.testing.assert_close(EnergyScore(temperature=2.0).score(Z), -2.0 * torch.logsumexp(Z / 2.0, 1))
    torch.testing.assert_close(MarginScore().score(Z), torch.tensor([-2.0, 0.0]))
    # row 0 is more confident than row 1 for every score
    for cls in (SoftmaxScore, EntropyScore, EnergyScore, MarginScore):
        s = cls().score(Z)
        assert s[0] < s[1], cls.__name__


def test_binary_and_multilabel_formulas():
    x = torch.tensor([3.0, -0.2, 0.0])
    p = torch.sigmoid(x)
    torch.testing.assert_close(SoftmaxScore(task="binary").score(x), -torch.maximum(p, 1 - p))
    torch.testing.assert_close(EntropyScore(task="binary").score(x[:, None]),
                               -(p * p.log() + (1 - p) * (1 - p).log()))
    torch.testing.assert_close(EnergyScore(task="binary").score(x), -F.softplus(x.abs()))
    torch.testing.assert_close(MarginScore(task="binary").score(x), -x.abs())
    ml = torch.tensor([[3.0, -1.0], [0.1, 4.0]])
    pm = torch.sigmoid(ml)
    torch.testing.assert_close(SoftmaxScore(task="multilabel").score(ml), -torch.maximum(pm, 1 - pm).amin(1))
    torch.testing.assert_close(EnergyScore(task="multilabel").score(ml), -F.softplus(ml).sum(1))
    torch.testing.assert_close(MarginScore(task="multilabel").score(ml), torch.tensor([-1.0, -0.1]))
    assert EntropyScore(task="binary").score(torch.tensor([0.0])).item() == pytest.approx(math.log(2))


def test_per_member_average():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 3, 5, generator=g)
    s = EntropyScore(per_member=True).score(z)
    manual = torch.stack([EntropyScore().score(z[:, :, m]) for m in range(5)], 1).mean(1)
    torch.testing.assert_close(s, manual)


def test_temperature_fit_reduces_nll_and_scores_calibrate():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (400,), generator=g)
    logits = torch.randn(400, 4, generator=g) + 2.0 * F.one_hot(y, 4)
    over = 5.0 * logits  # overconfident
    s = SoftmaxScore().fit(X=over, Y=y)
    assert s.temperature is not None and s.temperature > 1.5
    nll = lambda t: F.cross_entropy(over / t, y).item()  # noqa: E731
    assert nll(s.temperature) < nll(1.0)
    assert s.is_calibrated() and s.scores.shape == (400,)
    thr = s.set_threshold(0.9)
    assert thr.item() == pytest.approx(torch.quantile(s.scores.double(), 0.9).item(), rel=1e-6)
    out = s.select(over[:10])
    assert torch.equal(out["selected"], out["score"] < thr)
    # no labels: no temperature
    assert SoftmaxScore().fit(X=over).temperature is None


def test_logit_version_b_dicts_and_errors():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(50, 3, generator=g), torch.randint(0, 3, (50,), generator=g)
    a = EnergyScore().fit(X=z, Y=y)
    b = EnergyScore().fit(cal={"logit": z, "label": y}, temp_scale=True)
    assert a.temperature == pytest.approx(b.temperature)
    torch.testing.assert_close(a.score(z[:4]), b.score(query={"logit": z[:4]}))
    with pytest.raises(ValueError, match="Must specify"):
        EnergyScore().fit()
    with pytest.raises(ValueError, match="Unknown task"):
        EnergyScore(task="regression")
    with pytest.raises(ValueError, match="same number"):
        EnergyScore().fit(X=z, Y=y[:10])
    with pytest.raises(ValueError, match="NaN"):
        EnergyScore().score(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="multilabel labels"):
        EnergyScore(task="multilabel").fit(X=z, Y=y)
    with pytest.raises(ValueError, match="labels must be provided"):
        EnergyScore().fit(X=z, temp_scale=True)


def test_logits_model_mode(tmp_path):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 3)

        def logits(self, x):
            return self.lin(x)

    torch.manual_seed(0)
    m = M()
    data = [(torch.randn(8, 2), torch.randint(0, 3, (8,))) for _ in range(3)]
    s = SoftmaxScore().fit(model=m, loader=data, outdir=tmp_path, prefix="run")
    cached = torch.load(tmp_path / "run_train.pt", weights_only=True)  # seapig git main's name and layout
    assert set(cached) == {"logits", "labels"} and s.temperature is not None
    with pytest.warns(UserWarning, match="pre-existing logits"):
        s2 = SoftmaxScore().fit(model=m, loader=data, outdir=tmp_path, prefix="run")
    torch.testing.assert_close(s.scores, s2.scores)
    with pytest.raises(TypeError, match="logits"):
        SoftmaxScore().fit(model=torch.nn.Linear(2, 2), loader=data)


def test_tensorpca_matches_sklearn():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 50)) @ rng.standard_normal((50, 50))
    p = TensorPCA(n_components=10).fit(torch.from_numpy(X))
    sk = PCA(n_components=10).fit(X)
    rec_sk = sk.inverse_transform(sk.transform(X)) - sk.mean_
    rec, err = p.reconstruct(torch.from_numpy(X))
    np.testing.assert_allclose(rec.numpy(), rec_sk, atol=1e-8)
    np.testing.assert_allclose(err.numpy(), np.linalg.norm((X - sk.mean_) - rec_sk, axis=1), rtol=1e-8)
    # explained-variance fraction selection
    frac = TensorPCA(n_components=0.8).fit(torch.from_numpy(X))
    ratios = np.cumsum(PCA().fit(X).explained_variance_ratio_)
    assert frac.q == int(np.argmax(ratios >= 0.8)) + 1


def test_tensorpca_low_rank_and_partial_fit():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(300, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 8, generator=g, dtype=torch.float64)
    p = TensorPCA(n_components=3).fit(X)
    assert float(p.reconstruct(X)[1].max()) < 1e-8
    inc = TensorPCA(n_components=3)
    for chunk in X.split(70):
        inc.partial_fit(chunk)
    inc.finalize()
    torch.testing.assert_close(inc.u_q_dot, p.u_q_dot, atol=1e-8, rtol=0)
    torch.testing.assert_close(inc.mu, p.mu)
    with pytest.raises(RuntimeError, match="No data"):
        TensorPCA().finalize()


def test_tensorpca_rff_and_state_dict():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(100, 4, generator=g)
    p = TensorPCA(n_components=0.9, gamma=0.5, M=64, generator=torch.Generator().manual_seed(0)).fit(X)
    assert p.mode == "rff" and p.u_q.shape[0] == 64
    q = TensorPCA(n_components=0.9, gamma=0.5, M=64)
    q.load_state_dict(p.state_dict())
    torch.testing.assert_close(q.transform(X[:5]), p.transform(X[:5]))
    # RFF features approximate the RBF kernel: <φ(x), φ(y)> ≈ exp(-γ||x-y||²), std ~ 1/sqrt(M)
    big = TensorPCA(gamma=0.5, M=20000, generator=torch.Generator().manual_seed(1))
    big._init_rff(4, torch.float64, X.device)
    phi = big._features(X[:6])
    K = phi @ phi.T
    exact = torch.exp(-0.5 * torch.cdist(X[:6].double(), X[:6].double()).pow(2))
    assert float((K - exact).abs().max()) < 6 / math.sqrt(20000)
    with pytest.raises(ValueError, match="M must be greater"):
        TensorPCA(gamma=1.0, M=3).fit(X)


def test_tensorpca_validation():
    with pytest.raises(TypeError, match="n_components"):
        TensorPCA(True)
    with pytest.raises(ValueError, match="positive integer"):
        TensorPCA(0)
    with pytest.raises(ValueError, match="interval"):
        TensorPCA(1.5)
    with pytest.raises(ValueError, match="mode"):
        TensorPCA(mode="kernel")
    with pytest.raises(TypeError, match="mean_center"):
        TensorPCA(mean_center=1)
    with pytest.raises(RuntimeError, match="not fitted"):
        TensorPCA().transform(torch.randn(2, 2))


def test_pca_score():
    g = torch.Generator().manual_seed(3)
    basis = torch.randn(2, 6, generator=g)
    ref = torch.randn(200, 2, generator=g) @ basis
    cal = torch.randn(50, 2, generator=g) @ basis + 0.01 * torch.randn(50, 6, generator=g)
    s = PCAScore(TensorPCA(n_components=2)).fit(X=ref, Y=cal)
    s.set_threshold(0.9)
    inlier = torch.randn(5, 2, generator=g) @ basis
    outlier = inlier + 3.0 * torch.randn(5, 6, generator=g)
    assert s.select(inlier)["selected"].all() and not s.select(outlier)["selected"].any()
    assert s.scores.dtype == torch.float64
    with pytest.raises(TypeError):
        PCAScore()
    assert PCAScore(None).pca.mode == "rff"


def test_pyod_score():
    pyod_knn = pytest.importorskip("pyod.models.knn")  # pyod is an optional extra
    from synthperf.selective import PyODScore

    g = torch.Generator().manual_seed(4)
    ref, cal = torch.randn(200, 3, generator=g), torch.randn(50, 3, generator=g)
    det = pyod_knn.KNN(n_neighbors=3)
    s = PyODScore(det).fit(X=ref, Y=cal)
    assert s.ident == "pyod-KNN" and s.is_calibrated()
    q = torch.tensor([[0.0, 0.0, 0.0], [20.0, 20.0, 20.0]])
    np.testing.assert_allclose(s.score(q).numpy(), det.decision_function(q.double().numpy()), rtol=1e-6)
    s.set_threshold(0.9)
    assert s.select(q)["selected"].tolist() == [True, False]
    with pytest.raises(ValueError, match="calibration"):
        PyODScore(pyod_knn.KNN()).fit(X=ref)
    with pytest.raises(TypeError, match="fit\(X\) and decision_function"):
        PyODScore(object())
