"""Statistical guarantee (issue acceptance): whatever the synthetic scores, SPPI coverage on real
data stays inside the worst-case bounds [r+/(n+1), r-/(n+1)] (specs/sppi.md §1c).

Real and test scores are U(0, 1), so a threshold q covers a fresh test point with probability
clip(q, 0, 1) exactly; averaging it over T trials estimates coverage with a standard error at
most the binomial one, sqrt(b (1 - b) / T). Tolerance: 4 of those.
"""
from __future__ import annotations

import numpy as np
import pytest

from synthperf.conformal.data import generate_imagenet_like
from synthperf.conformal.thresholds import sppi_thresholds
from synthperf.conformal.trials import run_sppi_trials
from synthperf.conformal.windows import coverage_bounds

T, n, N = 2000, 15, 1000
ALPHAS = np.array([0.05, 0.1, 0.2])


def _synthetic(kind: str, rng) -> np.ndarray:
    if kind == "shift_up":
        return rng.random((T, N)) + 0.5
    if kind == "shift_down":
        return rng.random((T, N)) - 0.5
    if kind == "heavy_tailed":
        return 0.5 + 0.05 * rng.standard_cauchy((T, N))
    if kind == "identical":  # every synthetic score equal: maximal ties
        return np.full((T, N), 0.5)
    if kind == "matched":
        return rng.random((T, N))
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["shift_up", "shift_down", "heavy_tailed", "identical", "matched"])
def test_coverage_within_worst_case_bounds(kind):
    rng = np.random.default_rng(["shift_up", "shift_down", "heavy_tailed", "identical", "matched"].index(kind))
    real = rng.random((T, n))
    q = sppi_thresholds(real, _synthetic(kind, rng), ALPHAS, beta=0.4)
    coverage = np.clip(q, 0.0, 1.0).mean(axis=0)  # exact conditional coverage, averaged over trials
    lower, upper = coverage_bounds(n, N, ALPHAS, 0.4)
    se_lo = np.sqrt(lower * (1 - lower) / T)
    se_up = np.sqrt(np.maximum(upper * (1 - upper), 1e-12) / T)
    assert (coverage >= lower - 4 * se_lo).all(), (kind, coverage, lower)
    assert (coverage <= upper + 4 * se_up).all(), (kind, coverage, upper)
    # the adversarial shifts drive SPPI onto the bound they push towards (the clip is active)
    if kind == "shift_up":
        np.testing.assert_array_less(np.abs(coverage - upper), 4 * se_up + 1e-12)
    if kind == "shift_down":
        np.testing.assert_array_less(np.abs(coverage - lower), 4 * se_lo)


def test_matched_synthetic_gives_smaller_sets_than_split_conformal():
    real = generate_imagenet_like(n_classes=10, n_per_class=80, n_labels=100, seed=11)
    synth = generate_imagenet_like(n_classes=10, n_per_class=150, n_labels=100, seed=12)  # same distribution
    df = run_sppi_trials(dict(real=real, synth=synth, alpha=[0.05], methods=["SC", "SPI"], n_seeds=30, n_cal=15,
                              n_test=500, n_cal_maj=1000, dataset="matched"))
    size = df.groupby("Method")["Length"].mean()
    cov = df.groupby("Method")["Coverage"].mean()
    assert size["SC"] > 9.9  # n = 15 < 1/alpha - 1: split conformal is trivial (all 10 classes)
    assert size["SPI"] < 0.5 * size["SC"]
    lower, upper = coverage_bounds(15, 1000, 0.05, 0.4)
    se = np.sqrt(lower * (1 - lower) / 30)  # per-trial coverage varies at most like one Bernoulli
    assert lower - 4 * se <= cov["SPI"] <= upper
