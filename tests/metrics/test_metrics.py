"""synthperf.metrics against direct references and closed forms; bad input named."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from synthperf import metrics as m


def _blobs(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 4)) + np.eye(3, 4)[y] * 4 + shift
    return x, y


def test_cas_equals_direct_fit():
    xs, ys = _blobs(300, 0)
    xr, yr = _blobs(200, 1)
    make = lambda s: LogisticRegression(max_iter=200, random_state=s)  # noqa: E731
    r = m.classification_accuracy_score(xs, ys, xr, yr, classifier=make, seeds=(0, 1))
    direct = np.mean(make(0).fit(xs, ys).predict(xr) == yr)
    assert r.scores[0] == pytest.approx(direct) and r.mean == pytest.approx(direct)
    assert r.se == pytest.approx(0.0)  # logistic regression is deterministic
    bad = m.classification_accuracy_score(xs, (ys + 1) % 3, xr, yr, classifier=make, seeds=(0,))
    assert bad.mean < 0.2 and np.isnan(bad.se)  # permuted labels: CAS collapses


def test_cas_bad_input():
    xs, ys = _blobs(50, 0)
    with pytest.raises(ValueError, match="features"):
        m.classification_accuracy_score(xs, ys, xs[:, :3], ys)
    with pytest.raises(ValueError, match="y_syn has"):
        m.classification_accuracy_score(xs, ys[:-1], xs, ys)
    with pytest.raises(ValueError, match="NaN"):
        m.classification_accuracy_score(np.where(xs > 5, np.nan, xs), ys, xs, ys)
    with pytest.raises(ValueError, match="empty"):
        m.classification_accuracy_score(xs[:0], ys[:0], xs, ys)
    with pytest.raises(ValueError, match="seeds"):
        m.classification_accuracy_score(xs, ys, xs, ys, seeds=())
    with pytest.raises(TypeError, match="y_real"):
        m.classification_accuracy_score(xs, ys, xs, ys.astype(float))


def test_per_class_accuracy():
    y = np.array([0, 0, 1, 1, 1, 3])
    pred = np.array([0, 1, 1, 1, 0, 3])
    out = m.per_class_accuracy(pred, y, n_classes=4)
    np.testing.assert_allclose(out[[0, 1, 3]], [0.5, 2 / 3, 1.0])
    assert np.isnan(out[2])
    with pytest.raises(ValueError, match="n_classes"):
        m.per_class_accuracy(pred, y, n_classes=3)
    with pytest.raises(ValueError, match="labels for"):
        m.per_class_accuracy(pred[:-1], y)


def test_score_distances_closed_forms_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    d = m.score_distances(a, a + 0.25)
    assert d.wasserstein == pytest.approx(0.25)
    assert d.ks == pytest.approx(stats.ks_2samp(a, a + 0.25).statistic)
    assert m.score_distances(a, a + 2.0).ks == 1.0  # disjoint supports
    same = m.score_distances(a, a.copy())
    assert same.ks == 0.0 and same.wasserstein == 0.0 and same.ks_pvalue == pytest.approx(1.0)
    for bad, msg in ((np.array([0.1, np.nan, 0.3]), "NaN"), (np.zeros((3, 2)), "1-D"), (np.array([1.0]), "at least 2"),
                     (np.array(["a", "b"]), "numeric")):
        with pytest.raises((ValueError, TypeError), match=msg):
            m.score_distances(bad, a)


def test_gaussian_frechet_closed_form():
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 ; diagonal: sum over dimensions
    assert m.gaussian_frechet(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == \
        pytest.approx(4.0 + 1.0)
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    fd = m.gaussian_frechet(np.zeros(3), np.diag(va), np.ones(3), np.diag(vb))
    assert fd == pytest.approx(3.0 + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2))
    with pytest.raises(ValueError, match="do not match"):
        m.gaussian_frechet(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))


def test_frechet_distance_orders_noise_and_custom_extractor(tmp_path):
    from sklearn.datasets import load_digits

    x = load_digits().images.reshape(-1, 64) / 16.0
    a, b = x[::2], x[1::2]
    noisy = np.clip(b + np.random.default_rng(0).normal(0, 0.3, b.shape), 0, 1)
    assert m.frechet_distance(a, b) < m.frechet_distance(a, noisy)
    ident = m.frechet_distance(a, b, feature_extractor=lambda z: z)
    direct = m.gaussian_frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert ident == pytest.approx(direct)
    net = m.digits_feature_extractor(folder=tmp_path / "fx")  # trains (cached) and saves
    again = m.digits_feature_extractor(folder=tmp_path / "fx")  # loads
    np.testing.assert_allclose(net(a[:5]), again(a[:5]), rtol=1e-6)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "feature_net.json").write_text("{}")
    (tmp_path / "bad" / "feature_net.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable feature network"):
        m.digits_feature_extractor(folder=tmp_path / "bad")
    with pytest.raises(ValueError, match="at least 2"):
        m.frechet_distance(a[:1], b)
