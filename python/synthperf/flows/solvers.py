"""Solver policy of the inflationary pfODE (specs/inflationary_flows.md §1.4, §5.1): which
solver, which time grid, how many steps, which steps are saved. The kernels in
:mod:`synthperf.ops.discrete_score` only implement the update rules; this module chooses.

Solvers (:data:`SOLVERS`): ``euler`` (one evaluation per step) and ``heun`` (predictor +
corrector on every step, including the last). Grids (:data:`GRIDS`): ``ifs_times(n, h)``
t_k = k T/(n-1), T = n h (toys; melt ascending from 0, generation descending to 0);
``vp_ode_times(n, end_time, eps_s)`` t_k = T + k/(n-1) (eps_s - T) (images; generation
T -> eps_s, melt reversed). Saving (:func:`save_steps`): every ``save_every``-th step and the
last (701 time points with save_every 10: 71 saved steps, 72 states).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .._typing import ArrayOrTensor
from .._validation import positive_int, real_scalar
from ..ops.discrete_score import pfode_step, snapshot_slots
from ._sizes import check_alloc

#: Solver names; each is one of the kernels' update rules (``ops.discrete_score.UPDATE_RULES``).
SOLVERS: tuple[str, ...] = ("euler", "heun")
GRIDS: tuple[str, ...] = ("ifs", "vp_ode")


def check_solver(solver: object) -> str:
    """``solver`` if it is one of :data:`SOLVERS`; ValueError naming it otherwise."""
    if not isinstance(solver, str) or solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: expected one of {SOLVERS}")
    return solver


def save_steps(n_steps: int, save_every: int) -> np.ndarray:
    """Slot per step, int64 [n_steps] (-1 = not saved): steps with index % save_every == 0 and
    the last (§5.1). The kernels store exactly these (:func:`~synthperf.ops.discrete_score.snapshot_slots`)."""
    return snapshot_slots(n_steps, save_every)


def ifs_times(n: int, h: float) -> np.ndarray:
    """'ifs' grid [n], ascending: t_k = k T/(n-1) with T = n h (§1.4)."""
    n = check_alloc(positive_int(n, "n", minimum=2), "n")
    h = real_scalar(h, "h", allow_inf=False)
    if h <= 0:
        raise ValueError(f"h must be > 0, got {h}")
    return np.linspace(0.0, n * h, n)


def vp_ode_times(n: int, end_time: float = 15.01, eps_s: float = 1e-2) -> np.ndarray:
    """'vp_ode' grid [n], descending T -> eps_s (generation order; melt uses it reversed).

    ``0 <= eps_s < end_time``: the grid t_k = T + k/(n-1) (eps_s - T) is linear in eps_s
    (spec §1.4 'vp_ode': no log or ratio of eps_s), and gamma(t) = gamma0 exp(rho (1+g) t) > 0
    at t = 0 (§1.2), so eps_s = 0 is a valid grid ending at t = 0 (as the 'ifs' grid does).
    """
    n = check_alloc(positive_int(n, "n", minimum=2), "n")
    T = real_scalar(end_time, "end_time", allow_inf=False)
    e = real_scalar(eps_s, "eps_s", allow_inf=False)
    if not 0 <= e < T:
        raise ValueError(f"need 0 <= eps_s < end_time, got eps_s={e}, end_time={T}")
    return T + np.arange(n) / (n - 1) * (e - T)


def time_grid(grid: str, direction: str, n: int, *, h: float = 1e-2, end_time: float = 15.01,
              eps_s: float = 1e-2) -> np.ndarray:
    """The grid for ``direction`` "melt" (ascending) or "gen" (descending)."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}: expected one of {GRIDS}")
    if direction not in ("melt", "gen"):
        raise ValueError(f"direction must be 'melt' or 'gen', got {direction!r}")
    t = ifs_times(n, h) if grid == "ifs" else vp_ode_times(n, end_time, eps_s)[::-1].copy()
    return t if direction == "melt" else t[::-1].copy()


def pfode_discrete_step(z: ArrayOrTensor, data: ArrayOrTensor, coef: dict[str, ArrayLike | ArrayOrTensor],
                        coef_next: dict[str, ArrayLike | ArrayOrTensor], dt: float, *, solver: str = "euler",
                        mode: str = "stable", backend: str | None = None) -> ArrayOrTensor:
    """One pfODE step z(t) -> z(t + dt) with the discrete score and ``solver`` (§1.2, §1.4).

    ``coef``/``coef_next``: dicts of [d] vectors ``s, r = s'/s, a = gamma'/(2 gamma), gamma`` at
    t and t + dt (from :meth:`InflationSchedule.tables`). Returns z_next [M, d] in z's dtype
    and array type (:func:`synthperf.ops.discrete_score.pfode_step`).
    """
    return pfode_step(z, data, coef, coef_next, dt, heun=check_solver(solver) == "heun", mode=mode,
                      backend=backend)
