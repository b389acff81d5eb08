"""synthperf.metrics against direct references and closed forms; bad input named."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from synthperf import metrics as m


def _blobs(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 4)) + np.eye(3, 4)[y] * 4 + shift
    return x, y


def test_shared_layer_imports_no_system():
    code = ("import sys, synthperf.metrics as m; import numpy as np; m.score_distances(np.arange(3.), np.arange(4.)); "
            "bad = [k for k in sys.modules if k.split('.')[1:2] and k.split('.')[1] in "
            "('conformal', 'selective', 'flows', 'guidance', 'gafi', 'experiments')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cas_equals_direct_fit_factory_and_estimator():
    xs, ys = _blobs(300, 0)
    xr, yr = _blobs(200, 1)
    make = lambda s: LogisticRegression(max_iter=200, random_state=s)  # noqa: E731
    r = m.classification_accuracy_score(xs, ys, xr, yr, classifier=make, seeds=(0, 1))
    direct = np.mean(make(0).fit(xs, ys).predict(xr) == yr)
    assert r.scores[0] == pytest.approx(direct) and r.mean == pytest.approx(direct)
    assert r.se == pytest.approx(0.0)  # logistic regression is deterministic
    assert r.n_test == 200 and r.binomial_se == pytest.approx(np.sqrt(direct * (1 - direct) / 200))
    # an estimator instance: cloned per seed with random_state=seed (trees differ by seed)
    tree = DecisionTreeClassifier(max_features=1)
    t = m.classification_accuracy_score(xs, ys, xr, yr, classifier=tree, seeds=(3, 4, 5))
    for s, score in zip((3, 4, 5), t.scores):
        ref = DecisionTreeClassifier(max_features=1, random_state=s).fit(xs, ys)
        assert score == pytest.approx(np.mean(ref.predict(xr) == yr))
    assert not hasattr(tree, "tree_")  # the caller's estimator is never fitted
    assert t.se == pytest.approx(np.std(t.scores, ddof=1) / np.sqrt(3))
    bad = m.classification_accuracy_score(xs, (ys + 1) % 3, xr, yr, classifier=make, seeds=(0,))
    assert bad.mean < 0.2 and np.isnan(bad.se)  # permuted labels: CAS collapses


def test_cas_default_protocol_on_digits():
    x_tr, y_tr, x_te, y_te = m.digits_split()
    assert x_tr.shape == (898, 64) and x_te.shape == (899, 64) and x_te.dtype == np.float32
    assert np.abs(np.bincount(y_te) - np.bincount(y_tr)).max() <= 1 and 0 <= x_tr.min() and x_tr.max() <= 1
    sub = np.concatenate([np.flatnonzero(y_tr == c)[:20] for c in range(10)])  # 200 real images as "synthetic"
    r = m.classification_accuracy_score(x_tr[sub], y_tr[sub], seeds=(0,))  # default: held-out half, MLP
    ref = m.default_cas_classifier(0).fit(x_tr[sub], y_tr[sub])
    assert r.mean == pytest.approx(np.mean(ref.predict(x_te) == y_te)) and r.n_test == 899
    assert r.mean > 0.8  # 20 real digits per class already classify well


def test_digits_split_is_one_split_shared_by_the_demo_and_systems():
    from synthperf.experiments.demo import digits_split as demo_split
    from synthperf.flows.digits import digits_split as flows_split
    from synthperf.guidance.longtail import digits_split as longtail_split

    base = m.digits_split()
    for other in (demo_split(0), flows_split(0), longtail_split()):
        assert all(np.array_equal(a, b) for a, b in zip(base, other))  # same images in the same order
    s3 = m.digits_split(3)
    assert not np.array_equal(s3[1], base[1]) and sorted(s3[1]) == sorted(base[1])  # reshuffled, still stratified
    assert all(np.array_equal(a, b) for a, b in zip(s3, demo_split(3)))
    with pytest.raises(ValueError, match="seed"):
        m.digits_split(-1)


def test_cas_bad_input():
    xs, ys = _blobs(50, 0)
    cases = [((xs, ys, xs[:, :3], ys), {}, ValueError, "x_syn has 4 features but x_real"),
             ((xs, ys[:-1], xs, ys), {}, ValueError, "y_syn has"),
             ((np.where(xs > 5, np.nan, xs), ys, xs, ys), {}, ValueError, "x_syn contains NaN"),
             ((xs[:0], ys[:0], xs, ys), {}, ValueError, "x_syn must not be empty"),
             ((xs, ys, xs, ys), {"seeds": ()}, ValueError, "seeds"),
             ((xs, ys, xs, ys.astype(float)), {}, TypeError, "y_real"),
             ((xs, ys, xs, ys), {"n_classes": 2}, ValueError, "y_syn must be < n_classes"),
             ((xs, ys - 1, xs, ys), {}, ValueError, "y_syn must be >= 0"),
             ((xs, ys, xs, None), {}, ValueError, "x_real and y_real"),
             ((xs, ys, xs, ys), {"classifier": 3}, TypeError, "classifier"),
             ((xs, np.zeros(50, int), xs, ys), {}, ValueError, "two classes")]
    for args, kw, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            m.classification_accuracy_score(*args, **kw)


def test_per_class_and_classifier_accuracy():
    y = np.array([0, 0, 1, 1, 1, 3])
    pred = np.array([0, 1, 1, 1, 0, 3])
    out = m.per_class_accuracy(pred, y, n_classes=4)
    np.testing.assert_allclose(out[[0, 1, 3]], [0.5, 2 / 3, 1.0])
    assert np.isnan(out[2])
    with pytest.raises(ValueError, match="y must be < n_classes"):
        m.per_class_accuracy(pred, y, n_classes=3)
    with pytest.raises(ValueError, match="labels for"):
        m.per_class_accuracy(pred[:-1], y)
    x = np.arange(6, dtype=float)[:, None]
    acc = m.classifier_accuracy(lambda z: pred, x, y, n_classes=4)
    assert acc.overall == pytest.approx(4 / 6) and acc.overall_se == pytest.approx(np.sqrt(4 / 6 * 2 / 6 / 6))
    np.testing.assert_array_equal(acc.counts, [2, 3, 0, 1])
    np.testing.assert_allclose(acc.per_class_se[[0, 1, 3]], [np.sqrt(0.25 / 2), np.sqrt(2 / 9 / 3), 0.0])
    fitted = LogisticRegression(max_iter=200).fit(*_blobs(200, 0))
    xb, yb = _blobs(100, 2)
    assert m.classifier_accuracy(fitted, xb, yb).overall == pytest.approx(np.mean(fitted.predict(xb) == yb))
    with pytest.raises(ValueError, match="predictions of shape"):
        m.classifier_accuracy(lambda z: pred[:3], x, y)
    with pytest.raises(TypeError, match="classifier"):
        m.classifier_accuracy(object(), x, y)
    with pytest.raises(ValueError, match="n_classes"):
        m.classifier_accuracy(fitted, xb, yb, n_classes=0)


def _cvm_closed_form(a, b):
    """Anderson (1962): T = U / (n m (n + m)) - (4 n m - 1) / (6 (n + m)), ranks in the pooled sample."""
    n, m_ = len(a), len(b)
    ranks = stats.rankdata(np.concatenate([a, b]))
    r, s = np.sort(ranks[:n]), np.sort(ranks[n:])
    u = n * np.sum((r - np.arange(1, n + 1)) ** 2) + m_ * np.sum((s - np.arange(1, m_ + 1)) ** 2)
    return u / (n * m_ * (n + m_)) - (4 * n * m_ - 1) / (6 * (n + m_))


def test_score_distances_closed_forms_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    b = rng.random(300) ** 2
    d = m.score_distances(a, a + 0.25)
    assert d.wasserstein == pytest.approx(0.25)  # W1 of a shift is the shift
    assert m.score_distances(a, a + 2.0).ks == 1.0  # disjoint supports
    same = m.score_distances(a, a.copy())
    assert same.ks == 0.0 and same.wasserstein == 0.0 and same.ks_pvalue == pytest.approx(1.0)
    e = m.score_distances(a, b)
    grid = np.sort(np.concatenate([a, b]))
    fa, fb = np.searchsorted(np.sort(a), grid, "right") / 400, np.searchsorted(np.sort(b), grid, "right") / 300
    assert e.ks == pytest.approx(np.abs(fa - fb).max())  # sup |F_a - F_b| over the pooled jumps
    assert e.wasserstein == pytest.approx(np.sum(np.abs(fa - fb)[:-1] * np.diff(grid)))  # integral |F_a - F_b|
    assert e.cvm == pytest.approx(_cvm_closed_form(a, b))
    assert e.ks_pvalue == pytest.approx(stats.ks_2samp(a, b).pvalue)
    assert e.cvm_pvalue == pytest.approx(stats.cramervonmises_2samp(a, b).pvalue)
    assert (e.n_real, e.n_synth, e.per_class) == (400, 300, None)


def test_score_distances_per_class():
    rng = np.random.default_rng(1)
    a, b = rng.random(90), rng.random(60)
    la, lb = np.arange(90) % 3, np.arange(60) % 3
    lb[lb == 2] = 1  # class 2 has no synthetic score
    d = m.score_distances(a, b, real_labels=la, synth_labels=lb, n_classes=4)
    assert sorted(d.per_class) == [0, 1, 2, 3]
    for c in (0, 1):
        ref = m.score_distances(a[la == c], b[lb == c])
        assert d.per_class[c].ks == ref.ks and d.per_class[c].cvm == pytest.approx(ref.cvm)
        assert (d.per_class[c].n_real, d.per_class[c].n_synth) == ((la == c).sum(), (lb == c).sum())
    assert np.isnan(d.per_class[2].ks) and d.per_class[2].n_synth == 0 and d.per_class[3].n_real == 0
    assert d.ks == m.score_distances(a, b).ks  # the pooled result is unchanged


def test_score_distances_bad_input():
    a = np.linspace(0, 1, 10)
    for bad, exc, msg in ((np.array([0.1, np.nan, 0.3]), ValueError, "real_scores contains NaN"),
                          (np.array([0.1, np.inf]), ValueError, "real_scores contains NaN or inf"),
                          (np.zeros((3, 2)), ValueError, "real_scores must be 1-D"),
                          (np.array([1.0]), ValueError, "at least 2"), (np.array([]), ValueError, "at least 2"),
                          (np.array(["a", "b"]), TypeError, "real_scores must be a numeric")):
        with pytest.raises(exc, match=msg):
            m.score_distances(bad, a)
    with pytest.raises(ValueError, match="synth_scores"):
        m.score_distances(a, a[:1])
    lab = np.arange(10) % 2
    with pytest.raises(ValueError, match="together"):
        m.score_distances(a, a, real_labels=lab)
    with pytest.raises(ValueError, match="synth_labels has 9 labels"):
        m.score_distances(a, a, real_labels=lab, synth_labels=lab[:9])
    with pytest.raises(ValueError, match="real_labels must be < n_classes"):
        m.score_distances(a, a, real_labels=lab + 1, synth_labels=lab, n_classes=2)
    with pytest.raises(ValueError, match="synth_labels must be >= 0"):
        m.score_distances(a, a, real_labels=lab, synth_labels=lab - 1)


def test_gaussian_frechet_closed_form():
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 ; diagonal: sum over dimensions
    assert m.gaussian_frechet(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == \
        pytest.approx(4.0 + 1.0)
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    fd = m.gaussian_frechet(np.zeros(3), np.diag(va), np.ones(3), np.diag(vb))
    assert fd == pytest.approx(3.0 + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2))
    # rotation invariance: a rotated pair of Gaussians has the same distance
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rot = m.gaussian_frechet(np.zeros(3), q @ np.diag(va) @ q.T, q @ np.ones(3), q @ np.diag(vb) @ q.T)
    assert rot == pytest.approx(fd)
    with pytest.raises(ValueError, match="do not match"):
        m.gaussian_frechet(np.zeros(2), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="cov_b contains NaN"):
        m.gaussian_frechet(np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.nan))


def test_frechet_distance_orders_noise_and_custom_extractor(tmp_path):
    x_tr, _, x_te, _ = m.digits_split()
    a, b = x_te[::2], x_te[1::2]
    noisy = np.clip(b + np.random.default_rng(0).normal(0, 0.3, b.shape), 0, 1)
    net = m.digits_feature_extractor(folder=tmp_path / "fx")  # trains (cached per process) and saves
    assert net.meta["test_accuracy"] > 0.9 and net(a[:3]).shape == (3, 64)
    assert m.frechet_distance(a, b) < m.frechet_distance(a, noisy)
    ident = m.frechet_distance(a, b, feature_extractor=lambda z: z)
    direct = m.gaussian_frechet(a.mean(0), np.cov(a, rowvar=False, dtype=float), b.mean(0),
                                np.cov(b, rowvar=False, dtype=float))
    assert ident == pytest.approx(direct)
    seen = []
    img = m.frechet_distance(a.reshape(-1, 8, 8), b.reshape(-1, 8, 8),
                             feature_extractor=lambda z: seen.append(z.shape) or z.reshape(len(z), -1))
    assert img == pytest.approx(direct) and seen[0][1:] == (8, 8)  # the extractor sees the given shape
    again = m.digits_feature_extractor(folder=tmp_path / "fx")  # loads
    np.testing.assert_allclose(net(a[:5]), again(a[:5]), rtol=1e-6)
    assert m.frechet_distance(a, b, feature_extractor=again) == pytest.approx(m.frechet_distance(a, b))
    with pytest.raises(ValueError, match="seed, epochs"):
        m.digits_feature_extractor(seed=1, folder=tmp_path / "fx")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "feature_net.json").write_text("{}")
    (tmp_path / "bad" / "feature_net.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable feature network"):
        m.digits_feature_extractor(folder=tmp_path / "bad")


def test_frechet_bad_input():
    x = np.random.default_rng(0).random((10, 64))
    with pytest.raises(ValueError, match="at least 2"):
        m.frechet_distance(x[:1], x)
    with pytest.raises(ValueError, match="x_b contains NaN"):
        m.frechet_distance(x, np.where(x > 0.9, np.nan, x))
    with pytest.raises(ValueError, match="x_a has samples of shape"):
        m.frechet_distance(x, x[:, :32])
    with pytest.raises(ValueError, match="x_a must not be empty"):
        m.frechet_distance(x[:0], x)
    with pytest.raises(TypeError, match="feature_extractor must be callable"):
        m.frechet_distance(x, x, feature_extractor=3)
    with pytest.raises(ValueError, match="one row per sample"):
        m.frechet_distance(x, x, feature_extractor=lambda z: z[:2])
    with pytest.raises(ValueError, match="feature_extractor\\(x_a\\) contains NaN"):
        m.frechet_distance(x, x, feature_extractor=lambda z: z * np.nan)
    with pytest.raises(ValueError, match="64 features"):
        m.digits_feature_extractor()(x[:, :10])
    for kw, msg in (({"seed": -1}, "seed"), ({"epochs": 0}, "epochs")):
        with pytest.raises(ValueError, match=msg):
            m.digits_feature_extractor(**kw)
