"""ConformalizedQuantileRegressor (MAPIE 1.x signature, issue 16): reference, sklearn
conventions, bad input, coverage simulation (binomial SE) and an optional MAPIE peer test."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, QuantileRegressor
from sklearn.utils.validation import check_is_fitted

from synthperf.conformal import split_conformal_threshold
from synthperf.conformal.thresholds import split_conformal_rank
from synthperf.conformal import ConformalizedQuantileRegressor
from synthperf.conformal.cqr import _with_quantile


def _data(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 2, size=(n, 1))
    y = X[:, 0] + (0.2 + X[:, 0]) * rng.exponential(size=n)  # skewed, heteroscedastic
    return X, y


def test_reference_and_shapes():
    X, y = _data(0, 400)
    cqr = ConformalizedQuantileRegressor(QuantileRegressor(alpha=0.0), confidence_level=0.8)
    with pytest.raises(NotFittedError):
        check_is_fitted(cqr)
    cqr.fit(X[:200], y[:200]).conformalize(X[200:300], y[200:300])
    check_is_fitted(cqr)
    assert [m.quantile for m in cqr.estimators_] == [pytest.approx(0.1), pytest.approx(0.9), 0.5]
    lo, hi = (cqr.estimators_[j].predict(X[200:300]) for j in (0, 1))
    q_lo = split_conformal_threshold(lo - y[200:300], 0.1)
    q_hi = split_conformal_threshold(y[200:300] - hi, 0.1)
    q_sym = split_conformal_threshold(np.maximum(lo - y[200:300], y[200:300] - hi), 0.2)
    np.testing.assert_array_equal(cqr.thresholds_, [q_lo, q_hi])
    assert cqr.symmetric_threshold_ == q_sym
    pred, iv = cqr.predict_interval(X[300:])
    assert pred.shape == (100,) and iv.shape == (100, 2, 1)
    np.testing.assert_allclose(iv[:, 0, 0], cqr.estimators_[0].predict(X[300:]) - q_lo)
    np.testing.assert_allclose(iv[:, 1, 0], cqr.estimators_[1].predict(X[300:]) + q_hi)
    _, iv_s = cqr.predict_interval(X[300:], symmetric_correction=True)
    np.testing.assert_allclose(iv_s[:, 1, 0], cqr.estimators_[1].predict(X[300:]) + q_sym)
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(cqr))
    prefit = ConformalizedQuantileRegressor(cqr.estimators_, confidence_level=0.8, prefit=True)
    np.testing.assert_array_equal(prefit.conformalize(X[200:300], y[200:300]).predict_interval(X[300:])[1], iv)
    gb = _with_quantile(GradientBoostingRegressor(), 0.3)
    assert gb.loss == "quantile" and gb.alpha == 0.3


@pytest.mark.parametrize("make, call, match", [
    (lambda: ConformalizedQuantileRegressor(LinearRegression()), "fit", "no quantile loss"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor(), confidence_level=[0.8, 0.9]), "fit",
     "single float"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor(), confidence_level=1.2), "fit", "confidence_level"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor(), prefit=True), "fit", "prefit=True"),
    (lambda: ConformalizedQuantileRegressor([QuantileRegressor()], prefit=True), "conformalize", "three fitted"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor()), "conformalize", "call fit"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor(alpha=0.0)), "nan_y", "y_conformalize contains NaN"),
    (lambda: ConformalizedQuantileRegressor(QuantileRegressor(alpha=0.0), confidence_level=0.99), "small",
     "allow_infinite_bounds"),
])
def test_bad_input(make, call, match):
    X, y = _data(1, 120)
    est = make()
    with pytest.raises((ValueError, TypeError, NotFittedError), match=match):
        if call == "fit":
            est.fit(X, y)
        elif call == "conformalize":
            est.conformalize(X, y)
        else:
            est.fit(X[:60], y[:60])
            yy = y[60:80].copy()
            if call == "nan_y":
                yy[0] = np.nan
            est.conformalize(X[60:80], yy).predict_interval(X[80:])


def test_coverage_simulation():
    """Fixed fitted quantile models, T fresh conformalization sets (n = 39) and one test point
    each: asymmetric coverage = 1 - 2 (1 - k/(n+1)) with k = ceil((1 - alpha/2)(n+1)) exactly
    (non-empty intervals), symmetric = ceil((1 - alpha)(n+1))/(n+1); 3 binomial SEs. The ranks
    come from the library's exact rank helper for the binary alpha the estimator uses."""
    T, n, alpha = 2000, 39, 0.2
    X, y = _data(2, 300)
    cqr = ConformalizedQuantileRegressor(QuantileRegressor(alpha=0.0), confidence_level=1 - alpha).fit(X, y)
    Xs, ys = _data(3, T * (n + 1))
    Xs, ys = Xs.reshape(T, n + 1, 1), ys.reshape(T, n + 1)
    cov_a = cov_s = 0
    for t in range(T):
        cqr.conformalize(Xs[t, :n], ys[t, :n])
        iv_a = cqr.predict_interval(Xs[t, n:])[1][0, :, 0]
        iv_s = cqr.predict_interval(Xs[t, n:], symmetric_correction=True)[1][0, :, 0]
        cov_a += iv_a[0] <= ys[t, n] <= iv_a[1]
        cov_s += iv_s[0] <= ys[t, n] <= iv_s[1]
    a = 1.0 - cqr.confidence_level  # the estimator's alpha (0.19999999999999996 for level 0.8)
    p_a = 1 - 2 * (1 - split_conformal_rank(n, a / 2) / (n + 1))  # exact rank of the binary a/2: 37, not 36
    p_s = split_conformal_rank(n, a) / (n + 1)
    for cov, p in ((cov_a / T, p_a), (cov_s / T, p_s)):
        assert abs(cov - p) <= 3 * math.sqrt(p * (1 - p) / T), (cov, p)


def test_peer_mapie_cqr():
    mapie_reg = pytest.importorskip("mapie.regression")
    X, y = _data(4, 500)
    kw = {"estimator": QuantileRegressor(alpha=0.0), "confidence_level": 0.8}
    theirs = mapie_reg.ConformalizedQuantileRegressor(**kw).fit(X[:250], y[:250]).conformalize(X[250:400], y[250:400])
    ours = ConformalizedQuantileRegressor(**kw).fit(X[:250], y[:250]).conformalize(X[250:400], y[250:400])
    for sym in (False, True):
        pt, it = theirs.predict_interval(X[400:], symmetric_correction=sym)
        po, io = ours.predict_interval(X[400:], symmetric_correction=sym)
        np.testing.assert_allclose(po, pt, rtol=1e-10)
        assert io.shape == it.shape
        np.testing.assert_allclose(io, it, rtol=1e-10, atol=1e-10)
