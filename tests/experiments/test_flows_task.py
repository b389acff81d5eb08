"""Regression (issue 13): the experiments ``flows`` task reported the roundtrip MSE of the scaled
state z = s(0) u against the data (25.3 on one config where the true value was 6.8e-13); it must
compare u(0) (data units) with the simulated points. The task now calls
``synthperf.flows.simulate`` instead of the typer commands.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthperf.experiments import load_results, run_experiment
from synthperf.flows import make_toy

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.filterwarnings("ignore:.*the latent will not be Gaussian:RuntimeWarning")


def test_flows_task_roundtrip_mse_in_data_units(tmp_path):
    out = tmp_path / "flows"
    overrides = ["simulate.steps=41", "simulate.total_samples=96", "simulate.save_freq=10", "seed=2"]
    run_experiment(CONFIGS / "flows" / "toy_circles.yaml", out, overrides, report=False)
    df = load_results(out)
    row = df[df["simulation"] == "rdtrp"].iloc[0]
    sim = out / "points" / "p0000" / "simulations"
    x = make_toy("circles", 96, seed=2)
    with np.load(sim / row["file"], allow_pickle=False) as z:
        true = float(np.mean((z["tilde_xs"][-1] - x) ** 2))
        scaled = float(np.mean((z["xs"][-1] - x) ** 2))
    assert row["roundtrip_mse"] == pytest.approx(true, rel=1e-9, abs=1e-15)
    # the discrete-score roundtrip is exact up to round-off (measured 4.9e-11); the old scaled-state
    # number is dominated by (1 - s(0))^2 E[x^2] with s(0) = 1/sqrt(xi* + gamma0) (measured 5.1e-5)
    assert true < 1e-8 and scaled > 1e3 * true
