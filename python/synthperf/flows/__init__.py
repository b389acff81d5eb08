"""Inflationary flows (de Albuquerque & Pearson, NeurIPS 2024): specs/inflationary_flows.md.

- :mod:`.schedules` - PR-preserving / PR-reducing schedules, PCA eigenbasis (§1.2);
- :mod:`.solvers` - the solver policy: Euler/Heun, time grids, saving rule, one discrete-score step (§1.4, §5.1);
- :mod:`.pfode` - discrete-score and network flows, simulations (§1.2, §5);
- :mod:`.toy_data` - toy generators (§4);
- :mod:`.networks`, :mod:`.training` - EDM-style preconditioning, toy MLP, small UNet, training (§2);
- :mod:`.metrics`, :mod:`.calibration` - roundtrip MSE, Frechet distance, coverage, residual
  correlations, calibrated credible regions (§6);
- :mod:`.dataset_tool` - ZIP-of-PNG datasets (§7);
- :mod:`.api` - :func:`train` and :func:`simulate`, the library calls behind the CLI and the
  experiments task; :mod:`.digits` - class-conditional digits generator (demo contract) and the
  trajectory figure (:mod:`.plots`);
- :mod:`.cli` - ``synthperf flows ...``.

The hot kernel is :func:`synthperf.ops.discrete_score.discrete_score` (and
:func:`~synthperf.ops.discrete_score.integrate_discrete`); the kernels implement the update
rules, :mod:`.solvers` chooses among them.
"""
from __future__ import annotations

from .api import SimulationResult, TrainResult, simulate, train
from .pfode import (DenoiserFlow, DiscreteFlow, Trajectory, from_latent, ifs_times, melt, run_simulations,
                    sample_latent, time_grid, vp_ode_times)
from .schedules import InflationSchedule, g_vector, pca_eigenbasis
from .toy_data import TOY_DATASETS, make_toy

__all__ = [
    "DenoiserFlow", "DiscreteFlow", "InflationSchedule", "SimulationResult", "TOY_DATASETS", "TrainResult",
    "Trajectory", "from_latent", "g_vector", "ifs_times", "make_toy", "melt", "pca_eigenbasis", "run_simulations",
    "sample_latent", "simulate", "time_grid", "train", "vp_ode_times",
]
