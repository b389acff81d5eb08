"""Issue 16: one rank helper for thresholds, bounds, the C++ core and the GPU host math.

The coverage bounds must describe the ranks the threshold actually uses, on a dense
(n, N, alpha, beta) grid, for every CPU-side backend; the ranks are exact (checked against
``fractions.Fraction``), and upstream's double expressions live only behind ``upstream=True``.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from synthperf.conformal import coverage_bounds, sppi_threshold, sppi_thresholds, transport_windows
from synthperf.conformal.thresholds import (
    conformal_rank_table,
    sppi_K,
    sppi_rank_arrays,
    sppi_ranks,
    split_conformal_rank,
)

BACKENDS = ["reference", "cpu", "gpu-host-math"]


def _exact_ceil(alpha: float, M: int) -> int:
    """ceil((1 - alpha) M) with alpha taken as the exact rational its double holds."""
    return math.ceil((1 - Fraction(alpha)) * M)


def _dense_alphas(N: int) -> np.ndarray:
    """A dense grid plus the levels where (1-alpha)(N+1) is (nearly) an integer: the float quirk."""
    grid = np.linspace(0.004, 0.996, 125)
    near_int = np.array([1.0 - k / (N + 1) for k in range(1, N + 1)])
    common = np.array([0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
    a = np.concatenate([grid, near_int, common, np.nextafter(common, 0), np.nextafter(common, 1)])
    return np.unique(a[(a > 0) & (a < 1)])


def test_issue_example_bounds_match_threshold_ranks():
    # n=15, N=24, beta=0.2, alpha=0.2: the threshold's ranks (exact K = 20) give the bounds
    L, U = transport_windows(15, 24, 0.2)
    _, r_plus, r_minus = sppi_ranks(15, 24, 0.2, L, U)
    assert coverage_bounds(15, 24, 0.2, 0.2) == (r_plus / 16, r_minus / 16)
    # upstream's threshold K (double) is 21, its get_wc_bounds K is 20, rounded: kept only on request
    assert sppi_K(24, 0.2) == 20 and sppi_K(24, 0.2, upstream=True) == 21
    assert coverage_bounds(15, 24, 0.2, 0.2, upstream=True) == (0.625, 0.938)
    assert (r_plus, r_minus) == (10, 15) and coverage_bounds(15, 24, 0.2, 0.2) == (10 / 16, 15 / 16)
    # the issue's numbers: upstream's threshold uses ranks (11, 16), i.e. [0.6875, 1.0]
    assert sppi_ranks(15, 24, 0.2, L, U, upstream=True)[1:] == (11, 16)


def test_rank_helper_is_exact_on_a_dense_grid():
    rng = np.random.default_rng(0)
    sizes = np.unique(np.concatenate([np.arange(1, 400), rng.integers(400, 10**6, 200), [2**40, 2**53 + 1, 2**61]]))
    alphas = np.unique(np.concatenate([_dense_alphas(24), rng.uniform(0, 1, 100), [5e-324, 1e-300, 1e-17,
                                                                                    1 - 2**-53, 0.5]]))
    alphas = alphas[(alphas > 0) & (alphas < 1)]
    K = conformal_rank_table("sppi_K", sizes, alphas)
    syn = conformal_rank_table("sppi_synth", sizes, alphas)
    split = conformal_rank_table("split", sizes, alphas)
    for i in rng.choice(sizes.size, 120, replace=False).tolist() + [sizes.size - 1]:
        N = int(sizes[i])
        for j, a in enumerate(alphas.tolist()):
            k = _exact_ceil(a, N + 1)
            assert K[i, j] == k, (N, a)
            assert syn[i, j] == (k + 1 if k + 1 <= N else 0), (N, a)
            assert split[i, j] == (k if k <= N else 0), (N, a)


def test_upstream_rank_expressions_are_upstream_doubles():
    N = np.arange(3, 3001)
    alphas = np.array([0.02, 0.03, 0.05, 0.1, 0.15, 0.2])
    K = conformal_rank_table("sppi_K", N, alphas, upstream=True)
    syn = conformal_rank_table("sppi_synth", N, alphas, upstream=True)
    split = conformal_rank_table("split", N, alphas, upstream=True)
    Kx = conformal_rank_table("sppi_K", N, alphas)
    differ = 0
    for i, n in enumerate(N.tolist()):
        for j, a in enumerate(alphas.tolist()):
            la = (1.0 - a) * (1.0 + 1.0 / n)
            la_plus = (1.0 - a) * (1.0 + 1.0 / n + 1.0 / (n * (1.0 - a)))
            assert K[i, j] == math.ceil(n * la)
            assert syn[i, j] == (0 if la_plus > 1.0 else math.ceil(n * la_plus))
            assert split[i, j] == (0 if la > 1.0 else math.ceil(la * n))
            differ += int(K[i, j] != Kx[i, j] or syn[i, j] != (0 if Kx[i, j] + 1 > n else Kx[i, j] + 1))
    assert differ > 0  # the spec's quirk exists (N=24, alpha=0.2 among them) and upstream=True keeps it
    assert split_conformal_rank(24, 0.2) == 20 and split_conformal_rank(24, 0.2, upstream=True) == 21


@pytest.mark.parametrize("backend", BACKENDS)
def test_bounds_are_the_ranks_the_threshold_uses_dense_grid(backend):
    """Extreme synthetic scores push q onto S_(r-) (synthetic far above) or S_(r+) (far below):
    the rank q lands on must be what coverage_bounds reports, for every grid point."""
    from synthperf.conformal import thresholds as th

    def run(real, synth, alphas, beta, top, n, N, upstream):
        if backend == "gpu-host-math":  # the cuda/triton path's host rank math, selection by numpy
            return th._sppi_thresholds_by_selection(real, synth, alphas, n, N, beta, top, "reference", upstream)
        return sppi_thresholds(real, synth, alphas, beta, top, n, N, backend=backend, upstream=upstream)

    sizes = [(n, N) for n in (1, 2, 3, 5, 8, 15) for N in sorted({n + 2, n + 3, n + 7, 24, 25, 40, 61, 99, 120})
             if N >= n + 2]
    n_max, N_max = max(n for n, _ in sizes), max(N for _, N in sizes)
    checked = 0
    for beta in (0.1, 0.2, 0.4, 0.6):
        for upstream in (False, True):
            alphas = np.unique(np.concatenate([_dense_alphas(24)[::3], _dense_alphas(40)[::5]]))
            real = np.tile(np.arange(1.0, n_max + 1.0), (len(sizes), 1))  # S_(r) = r
            lens_n = np.array([n for n, _ in sizes])
            lens_N = np.array([N for _, N in sizes])
            high = run(real, np.full((len(sizes), N_max), 1e6), alphas, beta, math.inf, lens_n, lens_N, upstream)
            low = run(real, np.full((len(sizes), N_max), -1e6), alphas, beta, math.inf, lens_n, lens_N, upstream)
            syn, r_plus, r_minus = sppi_rank_arrays(lens_n, lens_N, alphas, beta, upstream=upstream)
            for b, (n, N) in enumerate(sizes):
                # q = S_(r-) with S_(r) = r; 1e6 (q_syn) when r- = n+1; -inf when r- = 0
                implied_minus = np.where(high[b] > n, n + 1, np.where(high[b] < 0, 0, high[b])).astype(int)
                np.testing.assert_array_equal(implied_minus, r_minus[b])
                has_syn = syn[b] > 0
                implied_plus = np.where(low[b] > n, n + 1, np.where(low[b] < 0, 0, low[b])).astype(int)
                np.testing.assert_array_equal(implied_plus[has_syn], r_plus[b][has_syn])
                if not upstream:
                    lo, hi = coverage_bounds(n, N, alphas, beta)
                    np.testing.assert_array_equal(lo, r_plus[b] / (n + 1))
                    np.testing.assert_array_equal(hi, r_minus[b] / (n + 1))
                    checked += alphas.size
    assert checked > 15000


def test_single_group_threshold_uses_same_ranks_as_bounds():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 20))
        N = int(rng.integers(n + 2, 200))
        beta = float(rng.choice([0.1, 0.2, 0.4]))
        alpha = float(rng.choice(_dense_alphas(N)))
        real = np.sort(rng.random(n))
        q_hi = sppi_threshold(real, np.full(N, 5.0), alpha, beta)
        lo, hi = coverage_bounds(n, N, alpha, beta)
        r_minus = int(round(hi * (n + 1)))
        q_syn = math.inf if conformal_rank_table("sppi_synth", [N], [alpha])[0, 0] == 0 else 5.0
        want = q_syn if r_minus == n + 1 else (-math.inf if r_minus == 0 else real[r_minus - 1])
        assert q_hi == want, (n, N, beta, alpha)


def test_upstream_flag_validated():
    with pytest.raises(TypeError, match="upstream"):
        coverage_bounds(15, 1000, 0.1, upstream="yes")
    with pytest.raises(TypeError, match="upstream"):
        sppi_thresholds(np.zeros((1, 5)), np.zeros((1, 20)), 0.1, upstream=1)
