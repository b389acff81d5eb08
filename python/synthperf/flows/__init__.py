"""Inflationary flows (de Albuquerque & Pearson, NeurIPS 2024): specs/inflationary_flows.md.

- :mod:`.schedules` - PR-preserving / PR-reducing schedules, PCA eigenbasis (§1.2);
- :mod:`.pfode` - time grids, discrete-score and network flows, Euler/Heun, simulations (§1.4, §5);
- :mod:`.toy_data` - toy generators (§4);
- :mod:`.networks`, :mod:`.training` - EDM-style preconditioning, toy MLP, small UNet, training (§2);
- :mod:`.metrics`, :mod:`.calibration` - roundtrip MSE, Frechet distance, coverage, residual
  correlations, calibrated credible regions (§6);
- :mod:`.dataset_tool` - ZIP-of-PNG datasets (§7);
- :mod:`.cli` - ``synthperf flows ...``.

The hot kernel is :func:`synthperf.ops.discrete_score.discrete_score` (and
:func:`~synthperf.ops.discrete_score.integrate_discrete`).
"""
from __future__ import annotations

from .pfode import (DenoiserFlow, DiscreteFlow, Trajectory, from_latent, ifs_times, melt, run_simulations,
                    sample_latent, time_grid, vp_ode_times)
from .schedules import InflationSchedule, g_vector, pca_eigenbasis
from .toy_data import TOY_DATASETS, make_toy

__all__ = [
    "DenoiserFlow", "DiscreteFlow", "InflationSchedule", "TOY_DATASETS", "Trajectory", "from_latent",
    "g_vector", "ifs_times", "make_toy", "melt", "pca_eigenbasis", "run_simulations", "sample_latent",
    "time_grid", "vp_ode_times",
]
