"""Conformal metrics (MAPIE-shaped) and optional peer tests against MAPIE 1.x (issue 16).

The peer tests run only when ``mapie`` is installed (``pytest.importorskip``); they compare
our sets / intervals / metrics with MAPIE's on the same fitted model and data."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split

from synthperf.conformal import (SplitConformalClassifier, SplitConformalRegressor, class_conditional_coverage,
                                 classification_coverage_score, classification_mean_width_score, group_coverage,
                                 regression_coverage_score, regression_mean_width_score)


def test_metrics_reference():
    sets = np.zeros((4, 3, 2), bool)
    sets[0, [0, 1], 0] = True
    sets[1, 2, 0] = True
    sets[2, :, :] = True
    sets[3, 0, 1] = True
    y = np.array([1, 0, 2, 0])
    np.testing.assert_allclose(classification_coverage_score(y, sets), [2 / 4, 2 / 4])
    np.testing.assert_allclose(classification_mean_width_score(sets), [6 / 4, 4 / 4])
    np.testing.assert_allclose(classification_coverage_score(y, sets[:, :, 0]), [0.5])
    cc = class_conditional_coverage(y, sets)
    np.testing.assert_allclose(cc, [[0.0, 0.5], [1.0, 0.0], [1.0, 1.0]])
    assert np.isnan(class_conditional_coverage(np.array([0, 0, 0, 0]), sets)[1:]).all()
    iv = np.array([[[0.0], [1.0]], [[2.0], [3.0]], [[-np.inf], [np.inf]]])
    yr = np.array([1.0, 1.0, 5.0])
    np.testing.assert_allclose(regression_coverage_score(yr, iv), [2 / 3])  # closed intervals
    np.testing.assert_allclose(regression_mean_width_score(iv[:2]), [1.0])
    values, cov = group_coverage(yr, iv, np.array([4, 4, 2]))
    np.testing.assert_array_equal(values, [2, 4])
    np.testing.assert_allclose(cov, [[1.0], [0.5]])


@pytest.mark.parametrize("call, match", [
    (lambda: classification_coverage_score([0, 1], np.zeros((3, 2), bool)), "3 rows"),
    (lambda: classification_coverage_score([0, 2], np.zeros((2, 2), bool)), "y_true holds labels outside"),
    (lambda: classification_coverage_score([0, 1], np.zeros((2, 2))), "y_pred_set must be a bool"),
    (lambda: classification_mean_width_score(np.zeros((2,), bool)), "y_pred_set must be"),
    (lambda: regression_coverage_score([0.0, np.nan], np.zeros((2, 2))), "y_true contains NaN"),
    (lambda: regression_coverage_score([0.0, 1.0], np.zeros((2, 3))), "y_intervals must be"),
    (lambda: regression_mean_width_score(np.zeros((2, 2, 1)) * np.nan), "NaN"),
    (lambda: group_coverage([0.0, 1.0], np.zeros((2, 2)), [0]), "groups has 1 entries"),
])
def test_metrics_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def _split(X, y, seed=0):
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.4, random_state=seed)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, train_size=0.5, random_state=seed)
    return X_tr, X_cal, X_te, y_tr, y_cal, y_te


@pytest.mark.parametrize("score", ["lac", "top_k"])
def test_peer_mapie_classifier(score):
    mapie_cls = pytest.importorskip("mapie.classification")
    mapie_metrics = pytest.importorskip("mapie.metrics.classification")
    X, y = make_classification(n_samples=900, n_features=8, n_informative=5, n_classes=4, random_state=1)
    X_tr, X_cal, X_te, y_tr, y_cal, y_te = _split(X, y)
    model = LogisticRegression(max_iter=500).fit(X_tr, y_tr)
    levels = [0.8, 0.9, 0.95]
    theirs = mapie_cls.SplitConformalClassifier(estimator=model, confidence_level=levels, conformity_score=score,
                                                prefit=True).conformalize(X_cal, y_cal)
    ours = SplitConformalClassifier(estimator=model, confidence_level=levels, conformity_score=score,
                                    prefit=True).conformalize(X_cal, y_cal)
    (lt, st), (lo, so) = theirs.predict_set(X_te), ours.predict_set(X_te)
    np.testing.assert_array_equal(lo, lt)
    assert so.shape == st.shape
    np.testing.assert_array_equal(so, st)
    np.testing.assert_allclose(classification_coverage_score(y_te, so),
                               mapie_metrics.classification_coverage_score(y_te, st))
    np.testing.assert_allclose(classification_mean_width_score(so), mapie_metrics.classification_mean_width_score(st))


def test_peer_mapie_regressor():
    mapie_reg = pytest.importorskip("mapie.regression")
    mapie_metrics = pytest.importorskip("mapie.metrics.regression")
    X, y = make_regression(n_samples=900, n_features=4, noise=10.0, random_state=2)
    X_tr, X_cal, X_te, y_tr, y_cal, y_te = _split(X, y)
    model = Ridge().fit(X_tr, y_tr)
    levels = [0.8, 0.9]
    pt, it = mapie_reg.SplitConformalRegressor(estimator=model, confidence_level=levels, prefit=True).conformalize(
        X_cal, y_cal).predict_interval(X_te)
    po, io = SplitConformalRegressor(estimator=model, confidence_level=levels, prefit=True).conformalize(
        X_cal, y_cal).predict_interval(X_te)
    np.testing.assert_allclose(po, pt)
    assert io.shape == it.shape
    np.testing.assert_allclose(io, it, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(regression_coverage_score(y_te, io), mapie_metrics.regression_coverage_score(y_te, it))
    np.testing.assert_allclose(regression_mean_width_score(io), mapie_metrics.regression_mean_width_score(it))

