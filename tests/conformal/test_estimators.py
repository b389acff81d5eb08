"""MAPIE/sklearn-style estimators (specs/sppi.md §1-§4) agree with the functional API."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from synthperf.conformal.data import generate_imagenet_like
from synthperf.conformal.estimators import (SplitConformalClassifier, SplitConformalRegressor, SPPIClassifier,
                                            SPPIRegressor)
from synthperf.conformal.scores import aps_scores, cqr_scores
from synthperf.conformal.subset import sppi_subset_select
from synthperf.conformal.thresholds import split_conformal_threshold, sppi_threshold
from synthperf.conformal.windows import coverage_bounds


@pytest.fixture(scope="module")
def cls_data():
    real = generate_imagenet_like(n_classes=5, n_per_class=30, n_labels=40, seed=1)
    synth = generate_imagenet_like(n_classes=5, n_per_class=60, n_labels=40, seed=2, shift=0.3)
    rng = np.random.default_rng(3)
    cal = rng.choice(len(real), 20, replace=False)
    test = np.setdiff1d(np.arange(len(real)), cal)
    return real, synth, cal, test


def test_sppi_classifier_marginal(cls_data):
    real, synth, cal, test = cls_data
    ur, us = np.random.default_rng(0).uniform(size=20), np.random.default_rng(1).uniform(size=len(synth))
    est = SPPIClassifier(0.1).calibrate(real.probs[cal], real.labels[cal], synth.probs, synth.labels,
                                        real_u=ur, synth_u=us)
    rs = aps_scores(real.probs[cal], real.labels[cal], u=ur)
    ss = aps_scores(synth.probs, synth.labels, u=us)
    assert est.thresholds_.shape == (1,)
    assert est.thresholds_[0] == sppi_threshold(rs, ss, 0.1, 0.4, top=1.0)
    assert est.coverage_bounds_ == tuple(np.atleast_1d(b) for b in coverage_bounds(20, len(synth), [0.1], 0.4))
    u = np.random.default_rng(5).uniform(size=test.size)
    sets = est.predict_sets(real.probs[test], u=u)
    all_scores = aps_scores(real.probs[test], np.broadcast_to(np.arange(40), (test.size, 40)), u=u)
    assert sets.shape == (test.size, 40) and sets.dtype == bool
    np.testing.assert_array_equal(sets, all_scores <= est.thresholds_[0])
    multi = SPPIClassifier([0.05, 0.2]).calibrate(real.probs[cal], real.labels[cal], synth.probs, synth.labels,
                                                  real_u=ur, synth_u=us)
    assert multi.predict_sets(real.probs[test], u=u).shape == (2, test.size, 40)
    assert multi.thresholds_[0] >= multi.thresholds_[1]


def test_sppi_classifier_class_conditional_and_subset(cls_data):
    real, synth, _, _ = cls_data
    idx = np.concatenate([np.flatnonzero(real.labels == c)[:6] for c in (0, 1, 3)])  # class 2 and 4 absent
    ur, us = np.full(idx.size, 0.5), np.full(len(synth), 0.5)
    est = SPPIClassifier([0.1, 0.2], class_conditional=True).calibrate(
        real.probs[idx], real.labels[idx], synth.probs, synth.labels, real_u=ur, synth_u=us)
    rs = aps_scores(real.probs[idx], real.labels[idx], u=ur)
    ss = aps_scores(synth.probs, synth.labels, u=us)
    assert est.thresholds_.shape == (2, 40)
    for c in (0, 1, 3):
        expect = sppi_threshold(rs[real.labels[idx] == c], ss[synth.labels == c], [0.1, 0.2], 0.4, top=1.0)
        np.testing.assert_array_equal(est.thresholds_[:, c], expect)
    assert np.isneginf(est.thresholds_[:, [2, 4]]).all()
    assert not est.predict_sets(real.probs[:5], u=np.zeros(5))[:, :, [2, 4]].any()
    pooled = SPPIClassifier(0.1, class_conditional=True, synth_pool="pooled", subset_k=2).calibrate(
        real.probs[idx], real.labels[idx], synth.probs, synth.labels, real_u=ur, synth_u=us)
    r0 = rs[real.labels[idx] == 0]
    chosen = sppi_subset_select(r0, ss, synth.labels, k=2)
    np.testing.assert_array_equal(pooled.subset_classes_[0], chosen)
    assert pooled.thresholds_[0, 0] == sppi_threshold(r0, ss[np.isin(synth.labels, chosen)], 0.1, 0.4, top=1.0)


def test_split_conformal_classifier(cls_data):
    real, synth, cal, _ = cls_data
    u = np.linspace(0, 1, 20)
    est = SplitConformalClassifier(alpha=0.1, conformity_score="aps").calibrate(real.probs[cal], real.labels[cal], u=u)
    assert est.thresholds_[0] == split_conformal_threshold(aps_scores(real.probs[cal], real.labels[cal], u=u), 0.1, 1.0)
    trivial = SplitConformalClassifier(alpha=0.01, conformity_score="aps").calibrate(real.probs[cal], real.labels[cal],
                                                                                     u=u)
    assert trivial.thresholds_[0] == 1.0  # APS top (pitfall P3): alpha < 1/(n+1)
    lac = SplitConformalClassifier(alpha=0.01, conformity_score="lac", source="synthetic").calibrate(
        synth.probs[:10], synth.labels[:10])
    assert np.isinf(lac.thresholds_[0]) and lac.predict_sets(real.probs[:3]).all()


def test_regressors():
    rng = np.random.default_rng(0)
    iv = np.sort(rng.normal(size=(30, 2)), axis=1)
    y = rng.normal(size=30)
    ivs, ys = np.sort(rng.normal(size=(200, 2)), axis=1), rng.normal(size=200)
    est = SPPIRegressor([0.1, 0.2]).calibrate(iv, y, ivs, ys)
    expect = sppi_threshold(cqr_scores(iv, y), cqr_scores(ivs, ys), [0.1, 0.2], 0.4)
    np.testing.assert_array_equal(est.thresholds_, expect)
    out = est.predict_intervals(iv[:4])
    assert out.shape == (2, 4, 2)
    np.testing.assert_array_equal(out[1, :, 0], iv[:4, 0] - expect[1])
    sc = SplitConformalRegressor(alpha=0.01, conformity_score="abs").calibrate(iv[:, 0], y)
    assert np.isinf(sc.thresholds_[0])
    assert np.array_equal(sc.predict_intervals(np.zeros(2)), np.array([[-np.inf, np.inf]] * 2))
    pt = SPPIRegressor(0.2, score="abs").calibrate(iv[:, 0], y, ivs[:, 0], ys)
    assert pt.predict_intervals(np.zeros(3)).shape == (3, 2)


def test_sklearn_conventions(cls_data):
    real, synth, cal, _ = cls_data
    est = SPPIClassifier(0.1, beta=0.3, random_state=0)
    assert clone(est).get_params()["beta"] == 0.3
    with pytest.raises(NotFittedError):
        est.predict_sets(real.probs[:2])
    est.calibrate(real.probs[cal], real.labels[cal], synth.probs, synth.labels)
    again = clone(est).calibrate(real.probs[cal], real.labels[cal], synth.probs, synth.labels)
    np.testing.assert_array_equal(est.thresholds_, again.thresholds_)  # random_state fixes the eps


@pytest.mark.parametrize("kwargs, fit, match", [
    ({"alpha": 1.2}, "cls", "alpha"),
    ({"alpha": 0.1, "beta": 0.0}, "cls", "beta"),
    ({"alpha": 0.1, "score": "ranked"}, "cls", "score"),
    ({"alpha": 0.1, "synth_pool": "all"}, "cls", "synth_pool"),
    ({"alpha": 0.1}, "nan", "NaN"),
    ({"alpha": 0.1}, "labels", "out of range"),
    ({"alpha": 0.1}, "columns", "columns"),
    ({"alpha": 0.1}, "few_synth", "n_synth"),
])
def test_bad_input(cls_data, kwargs, fit, match):
    real, synth, cal, _ = cls_data
    rp, rl, sp, sl = real.probs[cal], real.labels[cal], synth.probs, synth.labels
    if fit == "nan":
        rp = rp.copy()
        rp[0, 0] = np.nan
    elif fit == "labels":
        rl = rl.copy()
        rl[0] = 40
    elif fit == "columns":
        sp = sp[:, :30] / sp[:, :30].sum(axis=1, keepdims=True)  # valid probabilities, wrong class count
    elif fit == "few_synth":
        sp, sl = sp[:21], sl[:21]
    with pytest.raises((ValueError, TypeError), match=match):
        SPPIClassifier(**kwargs).calibrate(rp, rl, sp, sl)


def test_top_parameter(cls_data):
    real, _, cal, _ = cls_data
    est = SplitConformalClassifier(alpha=0.01, conformity_score="aps", top=np.inf).calibrate(
        real.probs[cal], real.labels[cal], u=np.zeros(20))
    assert np.isinf(est.thresholds_[0]) and est.predict_sets(real.probs[:4], u=np.zeros(4)).all()
    with pytest.raises(ValueError, match="top"):
        SplitConformalClassifier(alpha=0.01, top=float("nan")).calibrate(real.probs[cal], real.labels[cal])
