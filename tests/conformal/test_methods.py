"""Weighted (covariate-shift) conformal, Mondrian regression and conformal risk control
(issue 16): direct references, bad input, and guarantee simulations with binomial-SE
tolerances (T independent trials, one test point each, so covered counts are binomial)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from synthperf.conformal import (MondrianConformalRegressor, conformal_risk_control, false_negative_losses,
                                 gaussian_shift_likelihood_ratio, selective_error_losses, split_conformal_threshold,
                                 split_conformal_thresholds, weighted_split_conformal_thresholds)


# ----------------------------------------------------------------------------------------
# Weighted conformal (Tibshirani et al. 2019)
# ----------------------------------------------------------------------------------------
def ref_weighted(scores, wc, wt, alpha):
    """Direct definition: quantile of sum_i p_i delta_{S_i} + p_{n+1} delta_{inf}."""
    pts = sorted(zip(scores, wc))
    total = sum(wc) + wt
    acc = 0.0
    for s, w in pts:
        acc += w / total
        if acc >= 1 - alpha:
            return s
    return math.inf


def test_weighted_reference_and_equal_weights():
    rng = np.random.default_rng(0)
    s = rng.normal(size=30)
    wc = rng.exponential(size=30)
    wt = rng.exponential(size=7)
    got = weighted_split_conformal_thresholds(s, wc, wt, [0.1, 0.3])
    assert got.shape == (7, 2)
    for j in range(7):
        for a, alpha in enumerate([0.1, 0.3]):
            ref = ref_weighted(s, wc, wt[j], alpha)
            assert got[j, a] == ref or math.isclose(got[j, a], ref)
    assert weighted_split_conformal_thresholds(s, wc, wt[:1], 0.2).shape == (1,)
    # equal weights reproduce split conformal (alphas away from (1-a)(n+1) integers)
    for alpha in rng.uniform(0.02, 0.5, size=20):
        eq = weighted_split_conformal_thresholds(s, np.ones(30), np.ones(1), float(alpha))[0]
        assert eq == split_conformal_threshold(s, float(alpha))
    huge = weighted_split_conformal_thresholds(s, wc, np.array([1e9]), 0.1)  # test weight dominates: trivial
    assert np.isinf(huge[0])


@pytest.mark.parametrize("args, match", [
    ((np.array([0.0, np.nan]), np.ones(2), np.ones(1), 0.1), "scores contains NaN"),
    ((np.zeros(3), np.ones(2), np.ones(1), 0.1), "calibration_weights has 2 entries"),
    ((np.zeros(2), np.array([1.0, -1.0]), np.ones(1), 0.1), "calibration_weights must be finite"),
    ((np.zeros(2), np.ones(2), np.array([np.inf]), 0.1), "test_weights must be finite"),
    ((np.zeros(2), np.zeros(2), np.ones(1), 0.1), "sum to 0"),
    ((np.zeros(2), np.ones(2), np.ones(1), 1.5), "alpha"),
    ((np.zeros(2), np.ones(2), np.ones(1), 0.0), "alpha"),
])
def test_weighted_bad_input(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        weighted_split_conformal_thresholds(*args)


def test_weighted_covariate_shift_coverage():
    """Calibration X ~ N(0,1), test X ~ N(1,1), noise grows with |x|. Weighted coverage >= 1 - alpha
    within 3 SE; unweighted split conformal undercovers by more than 3 SE (so the weights matter)."""
    T, n, alpha, shift = 3000, 50, 0.1, 1.0
    rng = np.random.default_rng(1)
    xc = rng.normal(size=(T, n))
    xt = rng.normal(loc=shift, size=T)
    sc = np.abs((0.2 + np.abs(xc)) * rng.normal(size=(T, n)))  # |y - f(x)| with the oracle mean
    st = np.abs((0.2 + np.abs(xt)) * rng.normal(size=T))
    wc = gaussian_shift_likelihood_ratio(xc.reshape(-1), 0.0, shift).reshape(T, n)
    wt = gaussian_shift_likelihood_ratio(xt, 0.0, shift)
    q_w = np.array([weighted_split_conformal_thresholds(sc[t], wc[t], wt[t:t + 1], alpha)[0] for t in range(T)])
    q_u = split_conformal_thresholds(sc, [alpha])[:, 0]
    se = math.sqrt(alpha * (1 - alpha) / T)
    cov_w, cov_u = float(np.mean(st <= q_w)), float(np.mean(st <= q_u))
    assert cov_w >= 1 - alpha - 3 * se, cov_w
    assert cov_u < 1 - alpha - 3 * se, cov_u


def test_likelihood_ratio_reference_and_bad_input():
    x = np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(gaussian_shift_likelihood_ratio(x, 0.0, 1.0), np.exp(x - 0.5))
    with pytest.raises(ValueError, match="scale"):
        gaussian_shift_likelihood_ratio(x, 0.0, 1.0, scale=0.0)


# ----------------------------------------------------------------------------------------
# Mondrian regression
# ----------------------------------------------------------------------------------------
def test_mondrian_reference():
    rng = np.random.default_rng(2)
    pred, y = rng.normal(size=60), rng.normal(size=60)
    bins = np.repeat([3, 7, 9], 20)
    est = MondrianConformalRegressor(alpha=[0.1, 0.2], conformity_score="absolute").calibrate(pred, y, bins)
    np.testing.assert_array_equal(est.bins_, [3, 7, 9])
    for g, b in enumerate([3, 7, 9]):
        m = bins == b
        np.testing.assert_array_equal(est.bin_thresholds_[g], split_conformal_threshold(np.abs(pred[m] - y[m]),
                                                                                        [0.1, 0.2]))
    iv = est.predict_intervals(np.zeros(4), np.array([7, 3, 5, 9]))
    assert iv.shape == (2, 4, 2)
    np.testing.assert_array_equal(iv[:, 0, 1], est.bin_thresholds_[1])
    assert np.isinf(iv[:, 2]).all()  # bin 5 never seen: trivial interval
    _, iv2 = est.predict_interval(np.zeros(4), bins=np.array([7, 3, 5, 9]))
    np.testing.assert_array_equal(np.moveaxis(iv, 0, -1), iv2)
    asym = MondrianConformalRegressor(alpha=0.2, conformity_score="cqr_asymmetric").calibrate(
        np.stack([pred - 1, pred + 1], 1), y, bins)
    assert asym.bin_thresholds_.shape == (3, 1, 2)


@pytest.mark.parametrize("bins, match", [
    (None, "bins is required"),
    (np.zeros(5, dtype=int), "bins has 5 entries"),
    (np.zeros(10), "bins must hold integers"),
])
def test_mondrian_bad_input(bins, match):
    with pytest.raises((ValueError, TypeError), match=match):
        MondrianConformalRegressor(alpha=0.1).calibrate(np.zeros(10), np.ones(10), bins)


def test_mondrian_group_coverage():
    """Two bins, noise scales 0.2 and 3: per-bin coverage = k/(n_g+1) exactly (n_g = 19, 0.9);
    one marginal threshold would over-cover bin 0 and under-cover bin 1."""
    T, n_g, alpha = 3000, 19, 0.1
    rng = np.random.default_rng(3)
    scale = np.array([0.2, 3.0])
    cov = np.zeros(2)
    for t in range(T):
        bins = np.repeat([0, 1], n_g)
        y = rng.normal(size=2 * n_g) * scale[bins]
        est = MondrianConformalRegressor(alpha=alpha).calibrate(np.zeros(2 * n_g), y, bins)
        yt = rng.normal(size=2) * scale
        iv = est.predict_intervals(np.zeros(2), np.array([0, 1]))
        cov += (iv[:, 0] <= yt) & (yt <= iv[:, 1])
    cov /= T
    p = math.ceil((1 - alpha) * (n_g + 1)) / (n_g + 1)
    se = math.sqrt(p * (1 - p) / T)
    assert (np.abs(cov - p) <= 3 * se).all(), cov


# ----------------------------------------------------------------------------------------
# Conformal risk control (Angelopoulos et al. 2022)
# ----------------------------------------------------------------------------------------
def test_risk_control_reference():
    rng = np.random.default_rng(4)
    lam = np.linspace(0, 1, 21)
    L = np.sort(rng.uniform(size=(15, 21)), axis=1)[:, ::-1] * (lam < 0.95)  # non-increasing, 0 at the top
    for alpha in (0.2, 0.4):
        ref = next(lam[g] for g in range(21) if 15 / 16 * L[:, g].mean() + 1 / 16 <= alpha)
        assert conformal_risk_control(L, lam, alpha) == ref
    np.testing.assert_array_equal(conformal_risk_control(L, lam, [0.2, 0.4]),
                                  [conformal_risk_control(L, lam, 0.2), conformal_risk_control(L, lam, 0.4)])
    # the miscoverage loss recovers split conformal: lambda_hat = smallest grid q with S_i <= q often enough
    s = rng.uniform(size=19)
    grid = np.sort(s)
    miss = (s[:, None] > grid[None, :]).astype(float)
    assert conformal_risk_control(miss, grid, 0.1) == split_conformal_threshold(s, 0.1)


@pytest.mark.parametrize("args, kw, match", [
    ((np.array([[0.0, 1.0]] * 3), [0.0, 1.0], 0.5), {}, "non-increasing"),
    ((np.zeros((3, 2)), [1.0, 0.0], 0.5), {}, "strictly increasing"),
    ((np.zeros((3, 2)), [0.0, 1.0, 2.0], 0.5), {}, "3 values"),
    ((np.full((3, 2), 2.0), [0.0, 1.0], 0.5), {}, "losses must lie"),
    ((np.full((3, 2), np.nan), [0.0, 1.0], 0.5), {}, "losses contains NaN"),
    ((np.zeros((3, 2)), [0.0, 1.0], 1.0), {}, "alpha"),
    ((np.zeros((3, 2)), [0.0, 1.0], 0.5), {"bound": 0.0}, "bound"),
    ((np.zeros((3, 2)), [0.0, 1.0], 0.1), {}, "no lambda in the grid"),  # B/(n+1) = 0.25 > alpha
])
def test_risk_control_bad_input(args, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        conformal_risk_control(*args, **kw)


def test_loss_builders_reference_and_bad_input():
    p = np.array([[0.9, 0.2, 0.6]])
    y = np.array([[True, True, False]])
    lam = np.array([0.0, 0.5, 0.85])
    np.testing.assert_allclose(false_negative_losses(p, y, lam), [[1.0, 0.5, 0.0]])  # sets {p >= 1, .5, .15}
    np.testing.assert_array_equal(selective_error_losses([0.3, 0.7], np.array([False, True]), [0.2, 0.5]),
                                  [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(TypeError, match="label_matrix"):
        false_negative_losses(p, y.astype(int), lam)
    with pytest.raises(ValueError, match="no true label"):
        false_negative_losses(p, np.zeros((1, 3), bool), lam)
    with pytest.raises(ValueError, match="correct has shape"):
        selective_error_losses([0.3, 0.7], np.array([True]), lam)


def test_risk_control_guarantee_fnr():
    """Multilabel FNR at alpha = 0.2, n = 30: mean test loss <= alpha + 3 SE, with
    SE = sqrt(alpha (1 - alpha) / T) (a [0, 1] loss with mean <= alpha has variance <= that)."""
    T, n, K, alpha = 3000, 30, 5, 0.2
    rng = np.random.default_rng(5)
    lam = np.linspace(0, 1, 101)
    p = rng.uniform(size=(T, n + 1, K))
    y = rng.uniform(size=p.shape) < p
    y[..., 0] |= ~y.any(axis=-1)  # at least one true label
    losses = false_negative_losses(p.reshape(-1, K), y.reshape(-1, K), lam).reshape(T, n + 1, -1)
    test_loss = np.empty(T)
    for t in range(T):
        g = np.searchsorted(lam, conformal_risk_control(losses[t, :n], lam, alpha))
        test_loss[t] = losses[t, n, g]
    se = math.sqrt(alpha * (1 - alpha) / T)
    assert test_loss.mean() <= alpha + 3 * se, test_loss.mean()
    assert test_loss.mean() >= alpha - 2 / (n + 1) - 3 * se, test_loss.mean()  # Theorem 2 (fine grid)


def test_risk_control_guarantee_selective():
    """P(selected and wrong) <= alpha for the selected-error loss (binary: binomial SE)."""
    T, n, alpha = 3000, 40, 0.1
    rng = np.random.default_rng(6)
    conf = rng.uniform(size=(T, n + 1))
    wrong = rng.uniform(size=(T, n + 1)) > conf  # P(correct | conf) = conf
    lam = np.linspace(0, 1, 201)
    losses = selective_error_losses(conf.reshape(-1), ~wrong.reshape(-1), lam).reshape(T, n + 1, -1)
    hits = np.array([losses[t, n, np.searchsorted(lam, conformal_risk_control(losses[t, :n], lam, alpha))]
                     for t in range(T)])
    se = math.sqrt(alpha * (1 - alpha) / T)
    assert hits.mean() <= alpha + 3 * se, hits.mean()


# ----------------------------------------------------------------------------------------
# Weighted estimators
# ----------------------------------------------------------------------------------------
def test_weighted_estimators_reference_and_sklearn():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from synthperf.conformal import WeightedSplitConformalClassifier, WeightedSplitConformalRegressor

    rng = np.random.default_rng(7)
    pred, y, w = rng.normal(size=40), rng.normal(size=40), rng.exponential(size=40)
    reg = WeightedSplitConformalRegressor(alpha=[0.1, 0.3])
    with pytest.raises(NotFittedError):
        check_is_fitted(reg)
    reg.calibrate(pred, y, w)
    check_is_fitted(reg)
    assert "likelihood_ratio" in clone(reg).get_params()
    wt = rng.exponential(size=5)
    q = weighted_split_conformal_thresholds(np.abs(pred - y), w, wt, [0.1, 0.3])
    iv = reg.predict_intervals(np.zeros(5), wt)
    np.testing.assert_array_equal(iv[:, :, 1], q.T)
    _, iv2 = reg.predict_interval(np.zeros(5), test_weight=wt)
    np.testing.assert_array_equal(np.moveaxis(iv, 0, -1), iv2)
    # likelihood_ratio callable on features, through a wrapped model
    from sklearn.linear_model import LogisticRegression, Ridge

    X = rng.normal(size=(200, 2))
    yy = X[:, 0] + rng.normal(size=200)
    lr = (lambda Z: np.exp(Z[:, 0]))
    model = Ridge().fit(X[:100], yy[:100])
    a = WeightedSplitConformalRegressor(estimator=model, likelihood_ratio=lr).conformalize(X[100:180], yy[100:180])
    b = WeightedSplitConformalRegressor(estimator=model).conformalize(X[100:180], yy[100:180],
                                                                     sample_weight=lr(X[100:180]))
    np.testing.assert_array_equal(a.predict_interval(X[180:])[1], b.predict_interval(X[180:], lr(X[180:]))[1])
    # classifier: equal weights reproduce split conformal sets (alpha off the rank grid)
    yc = (X[:, 0] > 0).astype(int)
    clf_model = LogisticRegression().fit(X[:100], yc[:100])
    from synthperf.conformal import SplitConformalClassifier

    eq = WeightedSplitConformalClassifier(estimator=clf_model, confidence_level=0.87).conformalize(
        X[100:180], yc[100:180], sample_weight=np.ones(80))
    sc = SplitConformalClassifier(estimator=clf_model, confidence_level=0.87).conformalize(X[100:180], yc[100:180])
    np.testing.assert_array_equal(eq.predict_set(X[180:], test_weight=np.ones(20))[1], sc.predict_set(X[180:])[1])


@pytest.mark.parametrize("call, match", [
    (lambda W: W(alpha=0.1).calibrate(np.zeros(5), np.ones(5)), "weights is required"),
    (lambda W: W(alpha=0.1).calibrate(np.zeros(5), np.ones(5), np.ones(4)), "weights has 4 entries"),
    (lambda W: W(alpha=0.1).calibrate(np.zeros(5), np.ones(5), -np.ones(5)), "weights must be finite"),
    (lambda W: W(alpha=0.1).calibrate(np.zeros(5), np.ones(5), np.zeros(5)), "sum to 0"),
    (lambda W: W(alpha=0.1, conformity_score="cqr_asymmetric").calibrate(np.zeros((5, 2)), np.ones(5), np.ones(5)),
     "cqr_asymmetric"),
    (lambda W: W(alpha=0.1).calibrate(np.zeros(5), np.ones(5), np.ones(5)).predict_intervals(np.zeros(2)),
     "weights is required"),
    (lambda W: W(alpha=1.1).calibrate(np.zeros(5), np.ones(5), np.ones(5)), "alpha"),
])
def test_weighted_estimator_bad_input(call, match):
    from synthperf.conformal import WeightedSplitConformalRegressor

    with pytest.raises((ValueError, TypeError), match=match):
        call(WeightedSplitConformalRegressor)


def test_weighted_classifier_covariate_shift_coverage():
    """Label noise grows with x; calibration x ~ N(0,1), test x ~ N(1,1). Weighted LAC sets
    cover >= 1 - alpha within 3 binomial SEs (T trials, one test point each)."""
    from synthperf.conformal import WeightedSplitConformalClassifier

    T, n, alpha, shift = 2000, 40, 0.1, 1.0
    rng = np.random.default_rng(8)

    def draw(loc, size):
        x = rng.normal(loc=loc, size=size)
        p1 = 1 / (1 + np.exp(-2 * x))
        probs = np.stack([1 - p1, p1], axis=-1)
        flip = rng.uniform(size=size) < 0.1 + 0.3 * (np.abs(x) > 1)  # labels noisier far from 0
        y = np.where(flip, rng.integers(0, 2, size=size), (rng.uniform(size=size) < p1).astype(int))
        return x, probs, y

    covered = 0
    for _ in range(T):
        xc, pc, yc = draw(0.0, n)
        xt, pt, yt = draw(shift, 1)
        est = WeightedSplitConformalClassifier(alpha=alpha).calibrate(
            pc, yc, gaussian_shift_likelihood_ratio(xc, 0.0, shift))
        covered += bool(est.predict_sets(pt, gaussian_shift_likelihood_ratio(xt, 0.0, shift))[0, yt[0]])
    se = math.sqrt(alpha * (1 - alpha) / T)
    assert covered / T >= 1 - alpha - 3 * se, covered / T
