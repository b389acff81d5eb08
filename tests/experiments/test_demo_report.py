"""The demo's findings say what the numbers support (issue 13 item 4): differences only beyond
3 paired SE, SC at alpha < 1/(n+1) called the full set, coverage checked against the bounds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthperf.conformal import coverage_bounds
from synthperf.experiments import demo_report
from synthperf.experiments.demo import _conformal_rank


def _frame(gain: float, noise: float, n_trials: int = 200, alphas=(0.05, 0.1, 0.2), cov_spi: float | None = None,
           seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(n_trials):
        for a in alphas:
            base = 3.0 + rng.normal(0, noise)
            cov = 1 - a + rng.normal(0, 0.01)
            for m, size in (("SC", base), ("SPI", base - gain + rng.normal(0, noise)), ("SC (synth)", base)):
                c = cov if (m != "SPI" or cov_spi is None) else cov_spi
                rows.append({"trial": t, "Method": m, "alpha": a, "Length": size, "Coverage": c})
    return pd.DataFrame(rows)


def test_paired_gain_matches_direct_computation():
    df = _frame(0.3, 0.5)
    m, se, n = demo_report.paired_gain(df, 0.1)
    sub = df[df.alpha == 0.1]
    d = sub[sub.Method == "SC"].Length.to_numpy() - sub[sub.Method == "SPI"].Length.to_numpy()
    assert n == 200 and m == pytest.approx(d.mean()) and se == pytest.approx(d.std(ddof=1) / np.sqrt(200))
    with pytest.raises(ValueError, match="methods"):
        demo_report.paired_gain(df, 0.1, a="nope")


def test_significant_gain_is_reported_with_its_se():
    rows, text = demo_report.sppi_findings(_frame(0.5, 0.3), 15, 1000, 0.4)
    t = {r["alpha"]: line for r, line in zip(rows, text)}
    assert "smaller than SC's by" in t[0.1] and "SE, paired" in t[0.1]
    assert all(r["z"] > 3 for r in rows if not r["sc_trivial"])


def test_noise_level_difference_is_called_noise():
    rows, text = demo_report.sppi_findings(_frame(0.0, 0.5, seed=3), 15, 1000, 0.4)
    for r, line in zip(rows, text):
        if not r["sc_trivial"]:
            assert abs(r["z"]) <= 3 and "within the noise" in line and "smaller than" not in line


def test_trivial_sc_is_named_and_no_bare_no():
    rows, text = demo_report.sppi_findings(_frame(0.5, 0.3), 15, 1000, 0.4)
    by_alpha = {r["alpha"]: (r, line) for r, line in zip(rows, text)}
    assert by_alpha[0.05][0]["sc_trivial"] and "full label set by construction" in by_alpha[0.05][1]
    assert not by_alpha[0.1][0]["sc_trivial"]  # 0.1 >= 1/16
    assert not any(line.startswith("No:") for line in text)


def test_coverage_checked_against_bounds():
    lo, hi = coverage_bounds(15, 1000, 0.1, 0.4)
    rows, text = demo_report.sppi_findings(_frame(0.5, 0.3, alphas=(0.1,), cov_spi=(lo + hi) / 2), 15, 1000, 0.4)
    assert rows[0]["inside"] and "is inside its worst-case bounds" in text[0]
    rows, text = demo_report.sppi_findings(_frame(0.5, 0.3, alphas=(0.1,), cov_spi=lo - 0.1), 15, 1000, 0.4)
    assert not rows[0]["inside"] and "OUTSIDE" in text[0]


@pytest.mark.parametrize("n,q,k", [(15, 0.8, 13), (15, 0.9, 15), (15, 0.95, 16), (9, 0.9, 9), (15, 0.5, 8)])
def test_conformal_rank(n, q, k):
    assert _conformal_rank(n, q) == k
