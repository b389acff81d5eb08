"""Issue 16 acceptance: sklearn's ``check_is_fitted`` and ``clone`` work on *every* conformal
estimator the package exports (discovered from ``synthperf.conformal.__all__``, so a new
estimator without a case here fails the test), plus the optional MAPIE peer test of the
symmetric gamma score (ours is MAPIE's ``GammaConformityScore(sym=True)``)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, QuantileRegressor, Ridge
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

import synthperf.conformal as sc


def _split(X, y, seed=0):
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.5, random_state=seed)
    X_cal, X_te, y_cal, y_te = train_test_split(X_rest, y_rest, train_size=0.5, random_state=seed)
    return X_tr, X_cal, X_te, y_tr, y_cal, y_te


def _cls():
    return _split(*make_classification(n_samples=400, n_features=5, n_informative=3, n_classes=3, random_state=1))


def _reg():
    return _split(*make_regression(n_samples=400, n_features=3, noise=5.0, random_state=2))


def _conformalize_plain(est, X, y):
    return est.conformalize(X, y)


def _conformalize_sppi(est, X, y):
    return est.conformalize(X[:20], y[:20], X[20:], y[20:])  # real calibration, then synthetic


def _conformalize_mondrian(est, X, y):
    return est.conformalize(X, y, bins=(X[:, 0] > 0).astype(int))


def _conformalize_weighted(est, X, y):
    return est.conformalize(X, y, sample_weight=np.exp(0.3 * X[:, 0]))


# name -> (constructor of an unfitted estimator that wraps an unfitted model, data, conformalize)
CASES = {
    "SplitConformalClassifier": (lambda: sc.SplitConformalClassifier(estimator=LogisticRegression(), prefit=False),
                                 _cls, _conformalize_plain),
    "SplitConformalRegressor": (lambda: sc.SplitConformalRegressor(estimator=Ridge(), prefit=False),
                                _reg, _conformalize_plain),
    "MondrianConformalRegressor": (lambda: sc.MondrianConformalRegressor(estimator=Ridge(), prefit=False),
                                   _reg, _conformalize_mondrian),
    "SPPIClassifier": (lambda: sc.SPPIClassifier(0.2, estimator=LogisticRegression(), prefit=False, score="lac"),
                       _cls, _conformalize_sppi),
    "SPPIRegressor": (lambda: sc.SPPIRegressor(0.2, estimator=Ridge(), prefit=False, score="absolute"),
                      _reg, _conformalize_sppi),
    "WeightedSplitConformalClassifier": (
        lambda: sc.WeightedSplitConformalClassifier(estimator=LogisticRegression(), prefit=False),
        _cls, _conformalize_weighted),
    "WeightedSplitConformalRegressor": (
        lambda: sc.WeightedSplitConformalRegressor(estimator=Ridge(), prefit=False),
        _reg, _conformalize_weighted),
    "ConformalizedQuantileRegressor": (
        lambda: sc.ConformalizedQuantileRegressor(QuantileRegressor(alpha=0.0), confidence_level=0.8),
        _reg, _conformalize_plain),
}


def test_every_exported_estimator_has_a_case():
    exported = {name for name in sc.__all__
                if isinstance(getattr(sc, name), type) and issubclass(getattr(sc, name), BaseEstimator)}
    assert exported == set(CASES), (sorted(exported - set(CASES)), sorted(set(CASES) - exported))


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_is_fitted_and_clone(name):
    make, data, conformalize = CASES[name]
    est = make()
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    twin = clone(est)
    assert type(twin) is type(est) and twin.get_params().keys() == est.get_params().keys()
    assert all(not k.startswith("_") for k in est.get_params())
    X_tr, X_cal, X_te, y_tr, y_cal, _ = data()
    est.fit(X_tr, y_tr)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)  # model fitted, not yet conformalized: no sets or intervals yet
    assert conformalize(est, X_cal, y_cal) is est
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))  # clone keeps the parameters, drops the fitted state
    # the clone refits to the same result (same data, deterministic models)
    again = conformalize(clone(est).fit(X_tr, y_tr), X_cal, y_cal)
    extra = ({"test_weight": np.exp(0.3 * X_te[:, 0])} if name.startswith("Weighted")
             else {"bins": (X_te[:, 0] > 0).astype(int)} if name.startswith("Mondrian") else {})
    if hasattr(est, "predict_set"):
        np.testing.assert_array_equal(est.predict_set(X_te, **extra)[1], again.predict_set(X_te, **extra)[1])
    else:
        np.testing.assert_array_equal(est.predict_interval(X_te, **extra)[1],
                                      again.predict_interval(X_te, **extra)[1])


def test_peer_mapie_gamma_symmetric():
    """Optional peer test: our symmetric "gamma" equals MAPIE's GammaConformityScore(sym=True)."""
    mapie_reg = pytest.importorskip("mapie.regression")
    mapie_scores = pytest.importorskip("mapie.conformity_scores")
    X, y = make_regression(n_samples=900, n_features=4, noise=10.0, random_state=2)
    y = np.abs(y) + 50.0  # positive targets, positive predictions
    X_tr, X_cal, X_te, y_tr, y_cal, _ = _split(X, y)
    model = Ridge().fit(X_tr, y_tr)
    assert (model.predict(X_cal) > 0).all() and (model.predict(X_te) > 0).all()
    levels = [0.8, 0.9]
    pt, it = mapie_reg.SplitConformalRegressor(
        estimator=model, confidence_level=levels, conformity_score=mapie_scores.GammaConformityScore(sym=True),
        prefit=True).conformalize(X_cal, y_cal).predict_interval(X_te)
    po, io = sc.SplitConformalRegressor(estimator=model, confidence_level=levels, conformity_score="gamma",
                                        prefit=True).conformalize(X_cal, y_cal).predict_interval(X_te)
    np.testing.assert_allclose(po, pt)
    assert io.shape == it.shape == (X_te.shape[0], 2, 2)
    np.testing.assert_allclose(io, it, rtol=1e-12, atol=1e-9)


def test_peer_mapie_conformal_risk_control_multilabel_fnr():
    """Optional peer test: conformal risk control of the multilabel false-negative rate equals
    MAPIE's MultiLabelClassificationController(risk="recall", method="crc"). MAPIE's sets are
    {k : p_k > t} on its grid t; ours {k : p_k >= 1 - lambda}, so lambda = 1 - t (reversed grid).
    Probabilities are continuous, so no p_k lies on a grid point and > / >= agree."""
    mapie_rc = pytest.importorskip("mapie.risk_control")
    rng = np.random.default_rng(11)
    n, n_te, K = 300, 200, 6
    X = rng.uniform(size=(n + n_te, K))
    Y = rng.uniform(size=X.shape) < X          # label k present with probability p_k = X[:, k]
    Y[Y.sum(axis=1) == 0, 0] = True            # both sides require at least one true label
    probs = lambda Z: Z                        # noqa: E731 - the "model" returns the label probabilities
    t_grid = np.arange(0, 1, 0.01)
    lam = 1.0 - t_grid[::-1]                   # ours: increasing lambda, C = {p >= 1 - lambda}
    alphas = [0.137, 0.213, 0.31]              # off the grid of attainable risks
    theirs = mapie_rc.MultiLabelClassificationController(
        predict_function=probs, risk="recall", method="crc", target_level=[1 - a for a in alphas],
        predict_params=t_grid).calibrate(X[:n], Y[:n].astype(int))
    ours = sc.conformal_risk_control(sc.false_negative_losses(X[:n], Y[:n], lam), lam, alphas)
    assert len(set(ours.tolist())) == 3 and 0 < ours.min() and ours.max() < 1  # three interior thresholds
    np.testing.assert_allclose(1.0 - ours, theirs.best_predict_param, atol=1e-12)
    sets_theirs = theirs.predict(X[n:])                               # [n_te, K, A]
    sets_ours = X[n:, :, None] >= (1.0 - ours)[None, None, :]
    np.testing.assert_array_equal(sets_ours, sets_theirs.astype(bool))


def test_peer_mapie_aps_calibration_scores():
    """Optional peer test: randomized APS calibration scores equal MAPIE's when given MAPIE's
    uniforms (its APS draws u from RandomState(random_state) over the calibration points).
    Tolerance 1e-6: our scores are float32 (a few float32 roundings of values in [0, 1]).
    The prediction sets are not compared: MAPIE's include_last_label draws a second stream."""
    mapie_cls = pytest.importorskip("mapie.classification")
    X, y = make_classification(n_samples=900, n_features=8, n_informative=5, n_classes=4, random_state=1)
    X_tr, X_cal, _, y_tr, y_cal, _ = _split(X, y)
    model = LogisticRegression(max_iter=500).fit(X_tr, y_tr)
    theirs = mapie_cls.SplitConformalClassifier(estimator=model, confidence_level=[0.8, 0.9], conformity_score="aps",
                                                prefit=True, random_state=7).conformalize(X_cal, y_cal)
    u = np.random.RandomState(7).uniform(size=len(y_cal))
    ours = sc.SplitConformalClassifier(estimator=model, confidence_level=[0.8, 0.9], conformity_score="aps",
                                       prefit=True).conformalize(X_cal, y_cal, u=u)
    inner = getattr(theirs, "_mapie_classifier", None)  # MAPIE 1.x keeps the scores on its inner classifier
    if not hasattr(inner, "conformity_scores_"):
        pytest.skip("this MAPIE version does not expose its calibration scores where 1.x does")
    want = np.asarray(inner.conformity_scores_, dtype=np.float64).ravel()
    got = np.asarray(ours.conformity_scores_, dtype=np.float64)
    assert got.shape == want.shape == (len(y_cal),)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.abs(got - np.asarray(sc.aps_scores(model.predict_proba(X_cal), y_cal, u=np.zeros(len(y_cal))),
                                   dtype=np.float64)).max() > 1e-3  # u matters: the comparison is not vacuous
