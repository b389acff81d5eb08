"""Calibrated inference with inflationary flows (the paper's point; specs §6 "Coverage").

A Gaussian credible region in latent space, {z : ||z_kept / std|| <= r}, maps back to data
space through the (invertible) flow. Because the flow is a bijection, a data point lies in
the mapped region exactly when its melted latent lies in the latent region, so the coverage
of held-out points can be measured in latent space (:func:`latent_coverage`) and compared
with the nominal chi-square level of the kept dimensions (k = d for PRP, k = dims_to_keep
for PRR, whose compressed dimensions shrink towards 0 and carry no probability mass).

:func:`credible_region_boundary` maps the boundary shell itself into data space (generation
T -> 0), e.g. to draw the region or to use it with
:func:`synthperf.flows.metrics.alpha_shape_contains`.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
from numpy.typing import ArrayLike

from .metrics import chi2_coverage, shell_points
from .pfode import PfodeFlow, from_latent, melt
from .schedules import InflationSchedule


def latent_radius(schedule: InflationSchedule, z_es: np.ndarray) -> np.ndarray:
    """Mahalanobis radius of latents [n, d] over the kept dimensions (std A0 each)."""
    k = schedule.dims_to_keep
    return np.linalg.norm(np.asarray(z_es)[:, :k] / schedule.end_vars, axis=1)


def latent_coverage(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray,
                    x_heldout: ArrayLike, times: np.ndarray, *,
                    radii: Iterable[float] = (0.5, 1.0, 1.5, 2.0, 2.5), solver: str = "euler") -> dict[str, np.ndarray]:
    """Melt held-out points [n, d] (data space) and compare the fraction inside each latent
    credible ball with the nominal chi2_k(r^2). Returns radii, nominal, observed, n and the
    binomial standard error of each nominal level."""
    traj = melt(flow, schedule, W, x_heldout, times, solver=solver, save_every=len(times))
    rad = latent_radius(schedule, traj.final_es)
    r = np.asarray(list(radii), np.float64)
    nominal = chi2_coverage(r, schedule.dims_to_keep)
    observed = (rad[:, None] <= r[None, :]).mean(0)
    n = rad.shape[0]
    return {"radii": r, "nominal": nominal, "observed": observed, "n": np.array(n),
            "stderr": np.sqrt(nominal * (1 - nominal) / n), "latent": traj.final_es}


def credible_region_boundary(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray,
                             radius: float, times_gen: np.ndarray, *, n_points: int = 200, eps: float = 1e-2,
                             seed: int = 0, solver: str = "euler") -> np.ndarray:
    """Data-space image [n_points, d] of the latent shell at Mahalanobis ``radius``."""
    std = schedule.latent_std(1.0 if schedule.is_prp else eps)
    z = shell_points(std, float(radius), n_points, np.random.default_rng(seed))
    return from_latent(flow, schedule, W, z, times_gen, solver=solver, save_every=len(times_gen)).tilde_xs[-1]
