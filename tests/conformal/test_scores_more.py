"""RAPS, SAPS, top-k, non-randomized APS, normalized / gamma residuals and asymmetric CQR
(issue 16): direct numpy references, bad input, and split-conformal coverage simulations.

Coverage simulations: T independent trials, each with n fresh calibration points and one
test point, so the covered count is Binomial(T, p). For continuous scores split conformal
gives p = k/(n+1), k = ceil((1-alpha)(n+1)) exactly; for discrete scores (top-k, ties)
only p >= k/(n+1). Tolerance: 3 binomial SEs, sqrt(p(1-p)/T).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from synthperf.conformal.scores import (aps_scores, cqr_asymmetric_scores, gamma_scores, normalized_residual_scores,
                                        raps_scores, saps_scores, topk_scores)
from synthperf.conformal.thresholds import split_conformal_thresholds

T, N_CAL, ALPHA = 4000, 19, 0.1
K = math.ceil((1 - ALPHA) * (N_CAL + 1))  # 18: exact coverage 18/20 = 0.9 for continuous scores
P_EXACT = K / (N_CAL + 1)
SE = math.sqrt(P_EXACT * (1 - P_EXACT) / T)


def _ranked(p_row):
    order = sorted(range(len(p_row)), key=lambda j: (-p_row[j], j))  # descending, ties by index
    return order


def ref_raps(p_row, y, u, penalty, kreg):
    order = _ranked(p_row)
    o = order.index(y) + 1
    return sum(p_row[j] for j in order[:o]) - u * p_row[y] + penalty * max(0, o - kreg)


def ref_saps(p_row, y, u, weight):
    order = _ranked(p_row)
    o = order.index(y) + 1
    p_max = p_row[order[0]]
    return u * p_max if o == 1 else p_max + (o - 2 + u) * weight


def _probs(rng, n, C=6):
    return rng.dirichlet(np.full(C, 0.7), size=n)


def test_classification_references():
    rng = np.random.default_rng(0)
    p = _probs(rng, 40)
    p[0, :3] = p[0, 0]  # ties: lower index ranks first
    p[0] /= p[0].sum()
    y = rng.integers(0, 6, 40)
    u = rng.uniform(size=40)
    np.testing.assert_allclose(raps_scores(p, y, u, penalty=0.3, kreg=2),
                               [ref_raps(p[i], y[i], u[i], 0.3, 2) for i in range(40)], rtol=1e-12)
    np.testing.assert_allclose(saps_scores(p, y, u, weight=0.25),
                               [ref_saps(p[i], y[i], u[i], 0.25) for i in range(40)], rtol=1e-12)
    np.testing.assert_allclose(saps_scores(p, y, randomized=False, weight=0.25),
                               [ref_saps(p[i], y[i], 1.0, 0.25) for i in range(40)], rtol=1e-12)
    np.testing.assert_array_equal(topk_scores(p, y), [_ranked(p[i]).index(y[i]) + 1 for i in range(40)])
    np.testing.assert_allclose(raps_scores(p, y, randomized=False, penalty=0.0, kreg=0),
                               [ref_raps(p[i], y[i], 0.0, 0.0, 0) for i in range(40)], rtol=1e-12)
    # non-randomized APS (eps = 0): the cumulative mass up to and including y
    nr = aps_scores(p.astype(np.float32), y, randomized=False)
    np.testing.assert_allclose(nr, [ref_raps(p[i], y[i], 0.0, 0.0, 0) for i in range(40)], atol=1e-6)
    lab2 = np.broadcast_to(np.arange(6), (40, 6))
    np.testing.assert_allclose(raps_scores(p, lab2, u, penalty=0.3, kreg=2)[np.arange(40), y],
                               raps_scores(p, y, u, penalty=0.3, kreg=2))
    np.testing.assert_allclose(saps_scores(p, lab2, u)[np.arange(40), y], saps_scores(p, y, u))


def test_regression_references():
    pred = np.array([1.0, 2.0, 4.0])
    y = np.array([1.5, 1.0, 6.0])
    sigma = np.array([0.5, 2.0, 1.0])
    np.testing.assert_allclose(normalized_residual_scores(pred, sigma, y), [1.0, 0.5, 2.0])
    np.testing.assert_allclose(gamma_scores(pred, y), [0.5, 0.5, 0.5])
    iv = np.array([[0.0, 1.0], [2.0, 3.0]])
    np.testing.assert_array_equal(cqr_asymmetric_scores(iv, np.array([1.5, 2.5])), [[-1.5, 0.5], [-0.5, -0.5]])


@pytest.mark.parametrize("call, match", [
    (lambda: raps_scores(np.full((2, 3), np.nan), [0, 1]), "probs contains NaN"),
    (lambda: raps_scores(np.full((2, 3), 1 / 3), [0, 1], penalty=-1.0), "penalty"),
    (lambda: raps_scores(np.full((2, 3), 1 / 3), [0, 1], kreg=1.5), "kreg"),
    (lambda: raps_scores(np.full((2, 3), 1 / 3), [0, 1, 2]), "labels has 3 rows"),
    (lambda: raps_scores(np.full((2, 3), 1 / 3), [0, 1], u=[0.5]), "u has shape"),
    (lambda: saps_scores(np.full((2, 3), 1 / 3), [0, 1], weight=0.0), "weight"),
    (lambda: saps_scores(np.full((2, 3), 1 / 3), [0, 1], u=[0.5, 1.5]), "u must lie"),
    (lambda: saps_scores(np.full((2, 3), 0.5), [0, 1]), "sums to"),
    (lambda: topk_scores(np.full((2, 3), 1 / 3), [0, 3]), "labels out of range"),
    (lambda: topk_scores(np.full((2, 3), 1 / 3), [0.0, 1.0]), "labels must hold integers"),
    (lambda: normalized_residual_scores([1.0, 2.0], [1.0, 0.0], [0.0, 0.0]), "sigma"),
    (lambda: normalized_residual_scores([1.0, 2.0], [1.0], [0.0, 0.0]), "sigma has shape"),
    (lambda: normalized_residual_scores([1.0, np.nan], [1.0, 1.0], [0.0, 0.0]), "pred contains NaN"),
    (lambda: gamma_scores([1.0, 0.0], [1.0, 1.0]), "pred must be finite and > 0"),
    (lambda: gamma_scores([1.0, 2.0], [1.0]), "pred has shape"),
    (lambda: cqr_asymmetric_scores(np.zeros((3, 3)), np.zeros(3)), "last axis of size 2"),
    (lambda: cqr_asymmetric_scores(np.zeros((3, 2)), np.zeros(2)), "must match"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def _coverage(scores_all: np.ndarray) -> float:
    """scores_all [T, n+1] (last column = test point) -> fraction covered by split conformal."""
    q = split_conformal_thresholds(np.ascontiguousarray(scores_all[:, :N_CAL]), [ALPHA], math.inf)[:, 0]
    return float(np.mean(scores_all[:, N_CAL] <= q))


def _cls_data(seed):
    rng = np.random.default_rng(seed)
    p = _probs(rng, T * (N_CAL + 1), C=8)
    y = (rng.uniform(size=p.shape[0])[:, None] > np.cumsum(p, axis=1)).sum(axis=1)  # y ~ p
    return p, np.minimum(y, 7), rng


@pytest.mark.parametrize("name", ["raps", "saps", "aps_randomized"])
def test_randomized_classification_coverage_is_exact(name):
    p, y, rng = _cls_data(1)
    u = rng.uniform(size=p.shape[0])
    s = {"raps": lambda: raps_scores(p, y, u, penalty=0.1, kreg=2),
         "saps": lambda: saps_scores(p, y, u, weight=0.2),
         "aps_randomized": lambda: aps_scores(p, y, u=u).astype(np.float64)}[name]().reshape(T, N_CAL + 1)
    cov = _coverage(s)
    assert abs(cov - P_EXACT) <= 3 * SE, (name, cov, P_EXACT, SE)


@pytest.mark.parametrize("name", ["top_k", "aps_nonrandomized", "saps_nonrandomized"])
def test_discrete_classification_coverage_lower_bound(name):
    p, y, _ = _cls_data(2)
    s = {"top_k": lambda: topk_scores(p, y),
         "aps_nonrandomized": lambda: aps_scores(p, y, randomized=False).astype(np.float64),
         "saps_nonrandomized": lambda: saps_scores(p, y, randomized=False, weight=0.2)}[name]()
    cov = _coverage(s.reshape(T, N_CAL + 1))
    assert cov >= P_EXACT - 3 * SE, (name, cov, P_EXACT, SE)


@pytest.mark.parametrize("name", ["normalized", "gamma"])
def test_regression_coverage_is_exact(name):
    rng = np.random.default_rng(3)
    m = T * (N_CAL + 1)
    x = rng.uniform(0.5, 3.0, size=m)
    if name == "normalized":
        sigma = 0.1 + x
        y = x + sigma * rng.standard_t(4, size=m)
        s = normalized_residual_scores(x, sigma, y)
    else:
        y = x * np.exp(0.3 * rng.normal(size=m))
        s = gamma_scores(x, y)
    cov = _coverage(s.reshape(T, N_CAL + 1))
    assert abs(cov - P_EXACT) <= 3 * SE, (name, cov)


def test_asymmetric_cqr_coverage():
    """Each side at alpha/2 (rank ceil((1-alpha/2)(n+1))): per-side miss k'/(n+1) exactly, and
    with non-empty intervals the two misses are disjoint, so coverage = 1 - 2 (1 - k'/(n+1))."""
    n = 39
    rng = np.random.default_rng(4)
    m = T * (n + 1)
    x = rng.uniform(0, 2, size=m)
    y = x + (0.2 + x) * rng.exponential(size=m)  # skewed noise
    iv = np.stack([x + 0.1, x + 1.0 + x], axis=1)  # crude, mis-centred quantile guesses
    s = cqr_asymmetric_scores(iv, y).reshape(T, n + 1, 2)
    q = np.stack([split_conformal_thresholds(np.ascontiguousarray(s[:, :n, j]), [ALPHA / 2])[:, 0] for j in (0, 1)], 1)
    lo, hi = iv.reshape(T, n + 1, 2)[:, n, 0] - q[:, 0], iv.reshape(T, n + 1, 2)[:, n, 1] + q[:, 1]
    yt = y.reshape(T, n + 1)[:, n]
    assert (lo <= hi).all()
    cov = float(np.mean((lo <= yt) & (yt <= hi)))
    k_side = math.ceil((1 - ALPHA / 2) * (n + 1))
    p = 1 - 2 * (1 - k_side / (n + 1))
    assert abs(cov - p) <= 3 * math.sqrt(p * (1 - p) / T), (cov, p)
