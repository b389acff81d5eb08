"""Batched SPPI thresholds for 3000 groups (n=15 real, N=1000 synthetic, 6 alphas).

Groups: the `cpu` backend (fused rank math + histogram selection, OpenMP over groups) vs a
vectorised numpy implementation that sorts every row once and gathers the order statistics
(ranks from the same window tables), and the split-conformal thresholds on the same data (the
real sets, n = 15, and the synthetic pools, N = 1000).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from synthperf.conformal import sppi_thresholds, split_conformal_thresholds, transport_windows

B, n, N = 3000, 15, 1000
ALPHAS = np.array([0.02, 0.03, 0.05, 0.1, 0.15, 0.2])
BETA = 0.4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((B, n)), rng.random((B, N))


def numpy_sppi_thresholds(R, S, alphas, beta, top=math.inf):
    """Vectorised numpy: sort rows once, gather order statistics with precomputed ranks."""
    L, U = transport_windows(R.shape[1], S.shape[1], beta)
    Rs, Ss = np.sort(R, axis=1), np.sort(S, axis=1)
    n_, N_ = R.shape[1], S.shape[1]
    out = np.empty((R.shape[0], alphas.shape[0]))
    for i, a in enumerate(alphas):
        K = math.ceil(N_ * ((1.0 - a) * (1.0 + 1.0 / N_)))
        la_plus = (1.0 - a) * (1.0 + 1.0 / N_ + 1.0 / (N_ * (1.0 - a)))
        q_syn = np.full(R.shape[0], top) if la_plus > 1 else Ss[:, math.ceil(N_ * la_plus) - 1]
        rp = int(np.flatnonzero((U <= K) | (U < 0))[-1]) + 1 if ((U <= K) | (U < 0)).any() else 0
        rm = int(np.flatnonzero((L <= K) | (L < 0))[-1]) + 1 if ((L <= K) | (L < 0)).any() else 0

        def stat(r):
            return np.full(R.shape[0], -np.inf) if r == 0 else (Rs[:, r - 1] if r <= n_ else np.full(R.shape[0], top))

        out[:, i] = np.maximum(np.minimum(q_syn, stat(rm)), stat(rp))
    return out


@pytest.mark.benchmark(group="sppi_thresholds_3000")
def test_cpu_backend(benchmark, data):
    R, S = data
    got = benchmark(sppi_thresholds, R, S, ALPHAS, BETA, backend="cpu")
    np.testing.assert_array_equal(got, numpy_sppi_thresholds(R, S, ALPHAS, BETA))


@pytest.mark.benchmark(group="sppi_thresholds_3000")
def test_numpy_sort_and_gather(benchmark, data):
    R, S = data
    benchmark(numpy_sppi_thresholds, R, S, ALPHAS, BETA)


def numpy_split_conformal(x, alphas=ALPHAS):
    """Vectorised numpy: sort rows once, gather the k-th smallest, k = ceil((1-a)(1+1/n) n)."""
    xs = np.sort(x, axis=1)
    k = [math.ceil(((1.0 - a) * (1.0 + 1.0 / x.shape[1])) * x.shape[1]) for a in alphas]
    return np.stack([xs[:, kk - 1] if kk <= x.shape[1] else np.full(x.shape[0], np.inf) for kk in k], axis=1)


# Split conformal on the real calibration sets (SC-real: 3000 groups of n = 15) ...
@pytest.mark.benchmark(group="split_conformal_3000")
def test_split_conformal_cpu(benchmark, data):
    R, _ = data
    got = benchmark(split_conformal_thresholds, R, ALPHAS, backend="cpu")
    np.testing.assert_array_equal(got, numpy_split_conformal(R))


@pytest.mark.benchmark(group="split_conformal_3000")
def test_split_conformal_numpy_sort(benchmark, data):
    R, _ = data
    benchmark(numpy_split_conformal, R)


# ... and on the synthetic pools (SC-synth: 3000 groups of N = 1000).
@pytest.mark.benchmark(group="split_conformal_synth_3000")
def test_split_conformal_synth_cpu(benchmark, data):
    _, S = data
    got = benchmark(split_conformal_thresholds, S, ALPHAS, backend="cpu")
    np.testing.assert_array_equal(got, numpy_split_conformal(S))


@pytest.mark.benchmark(group="split_conformal_synth_3000")
def test_split_conformal_synth_numpy_sort(benchmark, data):
    _, S = data
    benchmark(numpy_split_conformal, S)
