"""MAPIE 1.x verbs on the conformal estimators (issue 16): lifecycle, shapes, sklearn
conventions, bad input, and a MAPIE snippet that runs with only the import changed."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from synthperf.conformal import (MondrianConformalRegressor, SplitConformalClassifier, SplitConformalRegressor,
                                 SPPIClassifier, SPPIRegressor, split_conformal_threshold)
from synthperf.conformal.scores import abs_residual_scores, lac_scores, raps_scores


def _cls_split(seed=0, n=600):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=3, random_state=seed)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.5, random_state=seed)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, train_size=0.5, random_state=seed)
    return X_tr, X_cal, X_te, y_tr, y_cal, y_te


def _reg_split(seed=0, n=600):
    X, y = make_regression(n_samples=n, n_features=3, noise=5.0, random_state=seed)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.5, random_state=seed)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, train_size=0.5, random_state=seed)
    return X_tr, X_cal, X_te, y_tr, y_cal, y_te


SNIPPET = """
X_train, X_conformalize, X_test, y_train, y_conformalize, y_test = data
mapie_classifier = SplitConformalClassifier(
    estimator=LogisticRegression(),
    confidence_level=[0.8, 0.95],
    prefit=False,
).fit(X_train, y_train).conformalize(X_conformalize, y_conformalize)
predicted_labels, predicted_sets = mapie_classifier.predict_set(X_test)
"""


def _run_snippet(import_line: str, data):
    ns = {"data": data, "LogisticRegression": LogisticRegression}
    exec(import_line + SNIPPET, ns)  # noqa: S102 - the snippet is a test constant
    return ns["predicted_labels"], ns["predicted_sets"]


def test_mapie_snippet_runs_with_only_the_import_changed():
    X_tr, X_cal, X_te, y_tr, y_cal, y_te = _cls_split()
    labels, sets = _run_snippet("from synthperf.conformal import SplitConformalClassifier\n",
                                (X_tr, X_cal, X_te, y_tr, y_cal, y_te))
    assert labels.shape == (X_te.shape[0],) and sets.shape == (X_te.shape[0], 3, 2) and sets.dtype == bool
    model = LogisticRegression().fit(X_tr, y_tr)
    np.testing.assert_array_equal(labels, model.predict(X_te))
    scores = lac_scores(model.predict_proba(X_cal), y_cal)
    q = split_conformal_threshold(scores, [0.2, 0.05])
    test_scores = 1 - model.predict_proba(X_te)
    for a in range(2):
        np.testing.assert_array_equal(sets[:, :, a], test_scores <= q[a])
    assert (sets[:, :, 1] >= sets[:, :, 0]).all()  # higher confidence level, larger sets


def test_peer_mapie_snippet_same_output():
    """Optional peer test: with only the import line changed, the snippet gives MAPIE's output."""
    pytest.importorskip("mapie")
    data = _cls_split(7)
    ours = _run_snippet("from synthperf.conformal import SplitConformalClassifier\n", data)
    theirs = _run_snippet("from mapie.classification import SplitConformalClassifier\n", data)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_regressor_verbs_and_level_axis():
    X_tr, X_cal, X_te, y_tr, y_cal, y_te = _reg_split()
    reg = SplitConformalRegressor(estimator=Ridge(), confidence_level=[0.9, 0.5], prefit=False)
    pred, iv = reg.fit(X_tr, y_tr).conformalize(X_cal, y_cal).predict_interval(X_te)
    model = Ridge().fit(X_tr, y_tr)
    np.testing.assert_allclose(pred, model.predict(X_te))
    q = split_conformal_threshold(abs_residual_scores(model.predict(X_cal), y_cal), [0.1, 0.5])
    assert iv.shape == (X_te.shape[0], 2, 2)
    np.testing.assert_allclose(iv[:, 0, :], model.predict(X_te)[:, None] - q[None, :])
    np.testing.assert_allclose(iv[:, 1, :], model.predict(X_te)[:, None] + q[None, :])
    one = SplitConformalRegressor(estimator=model, confidence_level=0.9).conformalize(X_cal, y_cal)
    assert one.predict_interval(X_te)[1].shape == (X_te.shape[0], 2, 1)  # prefit default; level axis kept
    np.testing.assert_allclose(one.predict(X_te), model.predict(X_te))


def test_prefit_classifier_and_label_mapping():
    X_tr, X_cal, X_te, y_tr, y_cal, _ = _cls_split(1)
    names = np.array(["cat", "dog", "emu"])
    model = LogisticRegression().fit(X_tr, names[y_tr])
    clf = SplitConformalClassifier(estimator=model, confidence_level=0.9, conformity_score="raps",
                                   score_params={"penalty": 0.1, "kreg": 1}, random_state=3)
    clf.conformalize(X_cal, names[y_cal], u=np.full(len(y_cal), 0.5))
    expect = raps_scores(model.predict_proba(X_cal), y_cal, np.full(len(y_cal), 0.5), penalty=0.1, kreg=1)
    np.testing.assert_array_equal(clf.conformity_scores_, expect)
    labels, sets = clf.predict_set(X_te)
    assert labels.dtype.kind == "U" and set(labels) <= set(names) and sets.shape == (X_te.shape[0], 3, 1)
    with pytest.raises(ValueError, match="y holds label 'fox'"):
        clf.conformalize(X_cal[:3], np.array(["cat", "fox", "dog"]))


@pytest.mark.parametrize("make", [
    lambda: SplitConformalClassifier(estimator=LogisticRegression(), prefit=False),
    lambda: SplitConformalRegressor(estimator=Ridge(), prefit=False),
    lambda: MondrianConformalRegressor(estimator=Ridge(), prefit=False),
    lambda: SPPIClassifier(0.2, estimator=LogisticRegression(), prefit=False, score="lac"),
    lambda: SPPIRegressor(0.2, estimator=Ridge(), prefit=False, score="absolute"),
])
def test_check_is_fitted_and_clone_on_every_estimator(make):
    est = make()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    twin = clone(est)
    assert twin.get_params().keys() == est.get_params().keys()
    is_cls = isinstance(est, (SplitConformalClassifier, SPPIClassifier))
    X_tr, X_cal, X_te, y_tr, y_cal, _ = _cls_split(2) if is_cls else _reg_split(2)
    est.fit(X_tr, y_tr)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)  # fitted model, not yet conformalized: cannot predict sets
    if isinstance(est, (SPPIClassifier, SPPIRegressor)):
        est.conformalize(X_cal[:20], y_cal[:20], X_cal[20:], y_cal[20:])
    elif isinstance(est, MondrianConformalRegressor):
        est.conformalize(X_cal, y_cal, bins=(X_cal[:, 0] > 0).astype(int))
    else:
        est.conformalize(X_cal, y_cal)
    check_is_fitted(est)
    assert all(not k.startswith("_") for k in est.get_params())
    fitted = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert "thresholds_" in fitted and "estimator_" in fitted
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))  # clone drops the fitted state


def test_lifecycle_guards():
    X_tr, X_cal, _, y_tr, y_cal, _ = _reg_split(3)
    with pytest.raises(ValueError, match="prefit=True"):
        SplitConformalRegressor(estimator=Ridge()).fit(X_tr, y_tr)
    with pytest.raises(NotFittedError, match="prefit=True but the estimator is not fitted"):
        SplitConformalRegressor(estimator=Ridge()).conformalize(X_cal, y_cal)
    with pytest.raises(NotFittedError, match="call fit"):
        SplitConformalRegressor(estimator=Ridge(), prefit=False).conformalize(X_cal, y_cal)
    with pytest.raises(NotFittedError, match="not conformalized"):
        SplitConformalRegressor(estimator=Ridge(), prefit=False).fit(X_tr, y_tr).predict_interval(X_cal)
    with pytest.raises(ValueError, match="estimator is None"):
        SplitConformalRegressor(prefit=False).fit(X_tr, y_tr)
    with pytest.raises(TypeError, match="unsupported"):
        SplitConformalRegressor(estimator=Ridge().fit(X_tr, y_tr)).conformalize(X_cal, y_cal).predict_interval(
            X_cal, allow_infinite_bounds=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"confidence_level": 1.0}, "confidence_level"),
    ({"confidence_level": [0.9, np.nan]}, "confidence_level"),
    ({"alpha": -0.1}, "alpha"),
    ({"conformity_score": "cqr"}, "conformity_score"),
    ({"conformity_score": "raps", "score_params": {"lam": 1}}, "score_params"),
    ({"conformity_score": "saps", "score_params": {"weight": -1.0}}, "weight"),
    ({"conformity_score": "raps", "score_params": {"kreg": -1}}, "kreg"),
    ({"class_conditional": "yes"}, "class_conditional"),
    ({"backend": "gpu"}, "backend"),
])
def test_classifier_bad_parameters(kwargs, match):
    p = np.full((30, 3), 1 / 3)
    with pytest.raises((ValueError, TypeError), match=match):
        SplitConformalClassifier(**kwargs).conformalize(p, np.arange(30) % 3)


@pytest.mark.parametrize("score, pred, match", [
    ("absolute", np.zeros((10, 2)), "X_conformalize must be \\[n\\]"),
    ("cqr", np.zeros(10), "X_conformalize must be \\[n, 2\\]"),
    ("gamma", -np.ones(10), "pred must be finite and > 0"),
    ("residual_normalized", np.column_stack([np.zeros(10), np.zeros(10)]), "sigma must be finite and > 0"),
    ("absolute", np.full(10, np.nan), "NaN"),
    ("absolute", np.zeros(9), "9 rows"),
])
def test_regressor_bad_inputs(score, pred, match):
    with pytest.raises(ValueError, match=match):
        SplitConformalRegressor(conformity_score=score).conformalize(pred, np.ones(10))


def test_score_level_api_kept():
    """calibrate / predict_sets / predict_intervals with alpha= keep the leading level axis."""
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(4), size=40)
    y = rng.integers(0, 4, 40)
    clf = SplitConformalClassifier(alpha=[0.1, 0.3], conformity_score="lac").calibrate(p, y)
    assert clf.predict_sets(p[:5]).shape == (2, 5, 4)
    np.testing.assert_array_equal(np.moveaxis(clf.predict_sets(p[:5]), 0, -1), clf.predict_set(p[:5])[1])
    reg = SplitConformalRegressor(alpha=0.2, conformity_score="abs").calibrate(rng.normal(size=40), rng.normal(size=40))
    assert reg.predict_intervals(np.zeros(3)).shape == (3, 2)
    np.testing.assert_array_equal(reg.predict_intervals(np.zeros(3)), reg.predict_interval(np.zeros(3))[1][:, :, 0])


def test_residual_normalized_with_sigma_estimator():
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(600, 1))
    y = X[:, 0] + (0.2 + np.abs(X[:, 0])) * rng.normal(size=600)
    reg = SplitConformalRegressor(estimator=Ridge(), conformity_score="residual_normalized", prefit=False,
                                  sigma_estimator=Ridge(), confidence_level=0.8)
    with pytest.raises(ValueError, match="sigma_estimator"):
        SplitConformalRegressor(estimator=Ridge(), conformity_score="residual_normalized", prefit=False).fit(
            X[:300], y[:300]).conformalize(X[300:], y[300:])
    reg.fit(X[:300], y[:300]).conformalize(X[300:450], y[300:450])
    pred, iv = reg.predict_interval(X[450:])
    sigma = reg.sigma_estimator_.predict(X[450:])
    np.testing.assert_allclose(iv[:, 1, 0] - iv[:, 0, 0], 2 * reg.thresholds_[0] * sigma)
    np.testing.assert_allclose(pred, reg.estimator_.predict(X[450:]))


def test_sppi_verbs_match_score_level():
    X_tr, X_cal, X_te, y_tr, y_cal, _ = _cls_split(6)
    model = LogisticRegression().fit(X_tr, y_tr)
    a = SPPIClassifier([0.1, 0.2], estimator=model, score="lac").conformalize(X_cal[:15], y_cal[:15], X_cal[15:],
                                                                              y_cal[15:])
    b = SPPIClassifier([0.1, 0.2], score="lac").calibrate(model.predict_proba(X_cal[:15]), y_cal[:15],
                                                          model.predict_proba(X_cal[15:]), y_cal[15:])
    np.testing.assert_array_equal(a.thresholds_, b.thresholds_)
    labels, sets = a.predict_set(X_te)
    np.testing.assert_array_equal(np.moveaxis(sets, -1, 0), b.predict_sets(model.predict_proba(X_te)))
    with pytest.raises(ValueError, match="cqr_asymmetric"):
        SPPIRegressor(0.1, score="cqr_asymmetric").calibrate(np.zeros((5, 2)), np.zeros(5), np.zeros((9, 2)),
                                                             np.zeros(9))


def test_confidence_level_means_its_decimal_alpha():
    """confidence_level=0.8 gives the same ranks as alpha=0.2 (not alpha = 0.19999999999999996)."""
    from synthperf.conformal.mapie_api import _levels

    for c in (0.8, 0.9, 0.95, 0.7):
        a, _ = _levels(None, c)
        b, _ = _levels(round(1 - c, 10), None)
        assert a[0] == b[0], (c, a, b)
