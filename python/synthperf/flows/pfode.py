"""The inflationary pfODE: flows (discrete score or network), simulations; the solver policy
(time grids, solvers, saving rule) is :mod:`.solvers` (re-exported here).

specs/inflationary_flows.md §1.2 (flow), §1.4 (time grids, solvers), §5.1 (simulations).
All integration happens in eigen-space (ES) on the scaled state z = s(t) u:

    score form     dz/dt = (s'/s) z - 1/2 s gamma' * score_t(z/s)
    denoiser form  dz/dt = (s'/s + a) z - a s D(z/s, t),   a = gamma'/(2 gamma)

(identical, with score = (D - u)/gamma). Euler uses one evaluation per step; Heun
(predictor + corrector, applied on every step including the last) two. After every step
u = z / s(t_next). Grids and solvers: :mod:`.solvers`.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .. import _io
from .._typing import ArrayOrTensor
from .._validation import float_array, positive_int
from ..ops.discrete_score import TABLE_KEYS, integrate_discrete
from ..progress import progress_task
from ._sizes import check_alloc
from .schedules import InflationSchedule
from .solvers import GRIDS, SOLVERS, check_solver, ifs_times, save_steps, time_grid, vp_ode_times

if TYPE_CHECKING:  # torch is imported lazily; "torch.*" annotations resolve with torch in localns (_typing)
    import torch

__all__ = ["GRIDS", "SOLVERS", "DenoiserFlow", "DiscreteFlow", "PfodeFlow", "Trajectory", "flow_fingerprint",
           "from_latent", "ifs_times", "integrate_resumable", "melt", "run_simulations", "sample_latent", "time_grid",
           "vp_ode_times"]


# ----------------------------------------------------------------------------- flows
class PfodeFlow(Protocol):
    """What the simulations need of a flow: :class:`DiscreteFlow`, :class:`DenoiserFlow`, or any
    object with this ``integrate`` (it may also define ``fingerprint() -> str``, see
    :func:`flow_fingerprint`).

    ``integrate(z0 [M, d] float64 (ES), schedule, times [n] float64)`` returns float64 arrays
    ``z`` [S+1, M, d] and ``denoiser``, ``score``, ``dz`` [S, M, d], S the steps saved by
    :func:`~synthperf.flows.solvers.save_steps`.
    """

    def integrate(self, z0: np.ndarray, schedule: InflationSchedule, times: np.ndarray, *,
                  solver: str = "euler", save_every: int = 1) -> dict[str, np.ndarray]: ...


class DiscreteFlow:
    """pfODE driven by the exact score of the Gaussian-smoothed empirical data (§3).

    data_es : [N, d] reference points in eigen-space (numpy array, torch tensor or nested list;
    stored as a float32/float64 numpy array). mode/backend: see
    :func:`synthperf.ops.discrete_score.discrete_score`.
    """

    is_net = False

    def __init__(self, data_es: ArrayLike | ArrayOrTensor, *, mode: str = "stable", backend: str | None = None) -> None:
        self.data_es = float_array(data_es, "data_es", ndim=2)
        self.mode = mode
        self.backend = backend

    def integrate(self, z0: np.ndarray, schedule: InflationSchedule, times: np.ndarray, *,
                  solver: str = "euler", save_every: int = 1) -> dict[str, np.ndarray]:
        check_solver(solver)
        return integrate_discrete(z0, self.data_es, schedule.tables(times), times, solver=solver,
                                  mode=self.mode, backend=self.backend, save_every=save_every)


class DenoiserFlow:
    """pfODE driven by a denoiser ``D(u_es [M, d], t [M]) -> [M, d]`` (e.g. a trained net, §2.1).

    ``form="denoiser"`` (default) uses f = (s'/s + a) z - a s D; ``form="score"`` first forms
    score = (D - u)/gamma and uses f = (s'/s) z - 1/2 s gamma' score (same flow, §1.2).
    Runs in torch (float64 unless ``dtype`` says otherwise), batched over ``batch`` particles.
    ``labels`` (int [M], one per particle) are passed on as ``denoiser(u, t, labels)`` for a
    class-conditional network; the particles of :meth:`integrate` must then number M.

    ``denoiser`` is called with torch tensors ``(u [m, d], t [m])`` (plus ``labels`` int64 [m])
    in ``dtype`` on ``device`` and returns [m, d] (a tensor, or anything ``torch.as_tensor``
    takes). ``dtype``: a floating ``torch.dtype`` (None = float64); ``device``: a torch device
    or its name.
    """

    is_net = True

    def __init__(self, denoiser: Callable[..., ArrayOrTensor], *, form: str = "denoiser",
                 dtype: torch.dtype | None = None, device: str | torch.device = "cpu", batch: int = 65536,
                 labels: ArrayLike | None = None) -> None:
        if form not in ("denoiser", "score"):
            raise ValueError(f"form must be 'denoiser' or 'score', got {form!r}")
        self.denoiser, self.form, self.device, self.batch = denoiser, form, device, batch
        import torch

        self.labels = None
        if labels is not None:
            lab = np.asarray(labels)
            if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
                raise TypeError(f"labels must be a 1-D integer array, got dtype {lab.dtype} and shape {lab.shape}")
            self.labels = torch.as_tensor(lab.astype(np.int64), device=device)

        self.dtype = torch.float64 if dtype is None else dtype

    def _rhs(self, z, k: int, tabs: dict, t: float):
        import torch

        s, r, a, g = (tabs[key][k] for key in TABLE_KEYS)
        u = z / s
        with torch.no_grad():
            parts = []
            for i in range(0, u.shape[0], self.batch):
                ub = u[i:i + self.batch]
                tb = torch.full((ub.shape[0],), t, dtype=z.dtype, device=z.device)
                extra = () if self.labels is None else (self.labels[i:i + self.batch],)
                parts.append(torch.as_tensor(self.denoiser(ub, tb, *extra)).to(dtype=z.dtype, device=z.device))
            D = torch.cat(parts)
        if self.form == "denoiser":
            return (r + a) * z - a * s * D, D, (D - u) / g
        score = (D - u) / g
        return r * z - a * g * s * score, D, score  # 1/2 gamma' = a gamma

    def integrate(self, z0: np.ndarray, schedule: InflationSchedule, times: np.ndarray, *,
                  solver: str = "euler", save_every: int = 1) -> dict[str, np.ndarray]:
        import torch

        check_solver(solver)
        tabs = {k: torch.as_tensor(v, dtype=self.dtype, device=self.device) for k, v in schedule.tables(times).items()}
        z = torch.as_tensor(np.asarray(z0), dtype=self.dtype, device=self.device)
        if self.labels is not None and self.labels.shape[0] != z.shape[0]:
            raise ValueError(f"labels has {self.labels.shape[0]} entries but there are {z.shape[0]} particles")
        slots = save_steps(len(times) - 1, save_every)
        out = {"z": [z.cpu().numpy()], "denoiser": [], "score": [], "dz": []}
        with progress_task("pfODE", len(times) - 1) as advance:
            for k in range(len(times) - 1):
                dt = float(times[k + 1] - times[k])
                f0, D, score = self._rhs(z, k, tabs, float(times[k]))
                z1 = z + dt * f0
                if solver == "heun":
                    f1, _, _ = self._rhs(z1, k + 1, tabs, float(times[k + 1]))
                    z1 = z + 0.5 * dt * (f0 + f1)
                if slots[k] >= 0:
                    out["denoiser"].append(D.cpu().numpy())
                    out["score"].append(score.cpu().numpy())
                    out["dz"].append((z1 - z).cpu().numpy())
                    out["z"].append(z1.cpu().numpy())
                z = z1
                advance()
        return {k: np.stack(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- simulations
@dataclass
class Trajectory:
    """One simulation in the upstream npz layout (§5.1). ES/IS arrays [S+1, N, d] / [S, N, d]."""

    times: np.ndarray       # [S+1] time of each saved state
    xs_es: np.ndarray       # z in ES
    tilde_xs_es: np.ndarray  # u = z/s in ES
    xs: np.ndarray          # z in IS
    tilde_xs: np.ndarray    # u in IS
    unscaled_scores: np.ndarray  # [S, N, d] (ES)
    gt_netout: np.ndarray   # [S, N, d] denoiser D (ES)
    dxs_es: np.ndarray      # [S, N, d]
    dxs: np.ndarray         # [S, N, d]

    def save(self, path: str | Path) -> None:
        """Write the upstream ``.npz`` layout atomically (:func:`synthperf._io.atomic_write`)."""
        arrays = {k: getattr(self, k) for k in self.__dataclass_fields__}
        _io.atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @property
    def final_es(self) -> np.ndarray:
        return self.xs_es[-1]


def _trajectory(res: dict, schedule: InflationSchedule, W: np.ndarray, times: np.ndarray, save_every: int) -> Trajectory:
    slots = save_steps(len(times) - 1, save_every)
    t_saved = np.concatenate([[times[0]], times[1:][slots >= 0]])
    s = schedule.s(t_saved)[:, None, :]
    z = np.asarray(res["z"], dtype=np.float64)
    u = z / s
    dz = np.asarray(res["dz"], dtype=np.float64)
    return Trajectory(times=t_saved, xs_es=z, tilde_xs_es=u, xs=z @ W.T, tilde_xs=u @ W.T,
                      unscaled_scores=np.asarray(res["score"]), gt_netout=np.asarray(res["denoiser"]),
                      dxs_es=dz, dxs=dz @ W.T)


def melt(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray, x_is: ArrayLike | ArrayOrTensor,
         times: np.ndarray, *, solver: str = "euler", save_every: int = 10) -> Trajectory:
    """Inflation: u = W^T x, z = s(t_0) u, integrate along ascending ``times`` (§5.1 step 1)."""
    x = float_array(x_is, "x_is", ndim=2).astype(np.float64)
    _check_dims(schedule, W, x.shape[1])
    if not np.all(np.diff(times) > 0):
        raise ValueError("melt needs ascending times")
    schedule.check_reaches_gaussian(float(times[-1]))
    z0 = (x @ W) * schedule.s(times[0])
    return _trajectory(flow.integrate(z0, schedule, times, solver=solver, save_every=save_every), schedule, W, times, save_every)


def from_latent(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray, z_T: ArrayLike | ArrayOrTensor,
                times: np.ndarray, *, solver: str = "euler", save_every: int = 10) -> Trajectory:
    """Integrate from a latent z(T) (ES) along descending ``times`` (roundtrip / generation)."""
    z = float_array(z_T, "z_T", ndim=2).astype(np.float64)
    _check_dims(schedule, W, z.shape[1])
    if not np.all(np.diff(times) < 0):
        raise ValueError("generation/roundtrip needs descending times")
    return _trajectory(flow.integrate(z, schedule, times, solver=solver, save_every=save_every), schedule, W, times, save_every)


def sample_latent(schedule: InflationSchedule, n: int, *, eps: float | None = None, seed: int = 0,
                  t_end: float | None = None) -> np.ndarray:
    """z(T) ~ N(0, diag(std^2)) in ES, float64 [n, d]; std from
    :meth:`InflationSchedule.generation_latent_std` (PRP: A0 I).

    ``eps=None``: PRR compressed dims get the melt-matched variance at ``t_end`` (required then).
    A float ``eps`` is upstream's diag([A0^2]*k + [A0^2 eps]*(d-k)); with ``t_end`` given it is
    checked against the melt and warns when generation would explode.
    """
    n = check_alloc(positive_int(n, "n"), "n", bytes_per=8 * schedule.data_dim)  # before any allocation
    if t_end is None:
        if eps is None and not schedule.is_prp:
            raise ValueError("eps=None (melt-matched PRR latent) needs t_end, the end time of the melt")
        std = schedule.latent_std(1.0 if schedule.is_prp else eps)
    else:
        std = schedule.generation_latent_std(eps, t_end)
    return np.random.default_rng(seed).normal(size=(n, schedule.data_dim)) * std


def _check_dims(schedule: InflationSchedule, W: np.ndarray, d: int) -> None:
    if W.shape != (schedule.data_dim, schedule.data_dim):
        raise ValueError(f"W has shape {W.shape}, expected [data_dim, data_dim] = {(schedule.data_dim,) * 2}")
    if d != schedule.data_dim:
        raise ValueError(f"dimension mismatch: points have d = {d} but the schedule has data_dim = {schedule.data_dim}")


def _array_digest(h: Any, a: ArrayLike) -> None:  # h: a hashlib object
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())


def flow_fingerprint(flow: PfodeFlow) -> str | None:
    """A digest identifying what ``flow`` computes, or None when it cannot be identified (then
    no integration checkpoint is trusted). DiscreteFlow: reference points and mode; DenoiserFlow
    over a module's bound method (e.g. ``net.denoise``): the module's parameters and buffers,
    form, dtype and labels; a flow may also define ``fingerprint()``."""
    custom = getattr(flow, "fingerprint", None)
    if callable(custom):
        return str(custom())
    h = hashlib.sha256()
    if isinstance(flow, DiscreteFlow):
        h.update(f"discrete:{flow.mode}".encode())
        _array_digest(h, flow.data_es)
        return h.hexdigest()
    if isinstance(flow, DenoiserFlow):
        owner = getattr(flow.denoiser, "__self__", None)
        state = getattr(owner, "state_dict", None)
        if not callable(state):
            return None
        h.update(f"denoiser:{flow.form}:{flow.dtype}:{type(owner).__qualname__}.{flow.denoiser.__name__}".encode())
        for key, val in state().items():
            h.update(key.encode())
            _array_digest(h, val.detach().cpu().numpy())
        if flow.labels is not None:
            _array_digest(h, flow.labels.cpu().numpy())
        return h.hexdigest()
    return None


def _part_key(flow_fp: str, schedule: InflationSchedule, z0: np.ndarray, times: np.ndarray, solver: str,
              save_every: int) -> str:
    h = hashlib.sha256(f"{flow_fp}:{solver}:{save_every}:".encode())
    h.update(json.dumps(schedule.to_dict(), sort_keys=True).encode())
    _array_digest(h, np.asarray(z0, dtype=np.float64))
    _array_digest(h, np.asarray(times, dtype=np.float64))
    return h.hexdigest()


_PART_ARRAYS = ("z", "denoiser", "score", "dz", "z_end")


def _load_part(path: Path, key: str, lo: int, hi: int, z_shape: tuple) -> dict | None:
    """A verified segment file, or None if absent; a corrupt or foreign one warns once and is None."""
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # own handle: closed even if np.load fails
            seg = {k: np.array(f[k]) for k in (*_PART_ARRAYS, "key", "range")}
        ok = (str(seg["key"]) == key and seg["range"].tolist() == [lo, hi] and seg["z_end"].shape == z_shape
              and all(seg[k].shape[1:] == z_shape for k in ("z", "denoiser", "score", "dz"))
              and len({seg[k].shape[0] for k in ("z", "denoiser", "score", "dz")}) == 1)
        reason = "it belongs to another simulation (different inputs or flow)"
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        ok, reason = False, f"it is unreadable ({type(exc).__name__}: {exc})"
    if ok:
        return seg
    warnings.warn(f"ignoring integration checkpoint {str(path)!r}: {reason}; recomputing steps {lo}..{hi - 1}",
                  RuntimeWarning, stacklevel=4)
    return None


def integrate_resumable(flow: PfodeFlow, schedule: InflationSchedule, z0: np.ndarray, times: np.ndarray, *,
                        solver: str, save_every: int, part_dir: str | Path | None = None, label: str = "sim",
                        checkpoint_every: int = 0) -> dict[str, np.ndarray]:
    """``flow.integrate(z0, schedule, times, ...)`` in segments of ``checkpoint_every`` steps
    (rounded up to a multiple of ``save_every``), each written atomically to
    ``part_dir/{label}.{end_step:09d}.npz``; an existing verified segment is loaded instead of
    recomputed. The result equals the unsegmented call (same saved steps, the state handed on
    exactly). ``checkpoint_every = 0``, no ``part_dir`` or a flow without a
    :func:`flow_fingerprint` integrate in one piece."""
    n = len(times) - 1
    fp = None if part_dir is None or checkpoint_every <= 0 else flow_fingerprint(flow)
    if fp is None or checkpoint_every >= n:
        return flow.integrate(z0, schedule, times, solver=solver, save_every=save_every)
    every = math.ceil(checkpoint_every / save_every) * save_every
    key = _part_key(fp, schedule, z0, times, solver, save_every)
    folder = Path(part_dir)
    z = np.asarray(z0, dtype=np.float64)
    out: dict[str, list] = {"z": [z[None]], "denoiser": [], "score": [], "dz": []}
    for lo in range(0, n, every):
        hi = min(n, lo + every)
        path = folder / f"{label}.{hi:09d}.npz"
        seg = _load_part(path, key, lo, hi, z.shape)
        if seg is None:
            res = flow.integrate(z, schedule, times[lo:hi + 1], solver=solver, save_every=save_every)
            j = np.flatnonzero(save_steps(hi - lo, save_every) >= 0)
            keep = ((lo + j) % save_every == 0) | (lo + j == n - 1)  # the global saving rule of save_steps
            seg = {"z": np.asarray(res["z"])[1:][keep], "denoiser": np.asarray(res["denoiser"])[keep],
                   "score": np.asarray(res["score"])[keep], "dz": np.asarray(res["dz"])[keep],
                   "z_end": np.asarray(res["z"])[-1], "key": np.array(key), "range": np.array([lo, hi])}
            _io.atomic_write(path, lambda fh, seg=seg: np.savez(fh, **seg))
        for k in ("z", "denoiser", "score", "dz"):
            out[k].append(seg[k])
        z = seg["z_end"]
    return {k: np.concatenate(v) for k, v in out.items()}


def run_simulations(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray, x_is: ArrayLike | ArrayOrTensor,
                    *, data_name: str, save_dir: str | Path | None = None, steps: int = 1501, h: float = 1e-2,
                    grid: str = "ifs", end_time: float = 15.01, eps_s: float = 1e-2, solver: str = "euler",
                    eps: float | None = None,
                    save_freq: int = 10, seed: int = 0, extra_params: Mapping[str, object] | None = None,
                    checkpoint_every: int | None = None) -> dict[str, Trajectory]:
    """melt, roundtrip (from the melt's z(T), compressed dims kept as they are) and gen (§5.1).

    ``eps=None`` (default): PRR generation starts from the melt-matched latent
    (:meth:`InflationSchedule.generation_latent_std`); a float is upstream's ``--eps``.

    Writes ``{data}_{sched}[_net]_{melt|rdtrp|gen}_results.npz`` and
    ``{data}_{sched}[_net]_sim_params.json`` into ``save_dir`` when given, each atomically.
    With ``save_dir``, the integration is checkpointed every ``checkpoint_every`` steps (None:
    every max(100, save_freq) steps; 0: never) into ``save_dir/.{tag}.partial/``; a killed
    run started again with the same inputs resumes from the last complete segment (corrupt or
    foreign segments are recomputed, with one warning each) and gives the same files. The
    partial folder is removed once every file is written.
    """
    if checkpoint_every is None:
        checkpoint_every = max(100, int(save_freq))
    checkpoint_every = positive_int(checkpoint_every, "checkpoint_every", minimum=0)
    t_melt = time_grid(grid, "melt", steps, h=h, end_time=end_time, eps_s=eps_s)
    t_gen = t_melt[::-1].copy()
    folder = None if save_dir is None else Path(save_dir)
    tag = f"{data_name}_{schedule.name}" + ("_net" if getattr(flow, "is_net", False) else "")
    part_dir = None if folder is None else folder / f".{tag}.partial"
    seg = dict(solver=solver, save_every=save_freq, part_dir=part_dir, checkpoint_every=checkpoint_every)

    x = float_array(x_is, "x_is", ndim=2).astype(np.float64)
    _check_dims(schedule, W, x.shape[1])
    schedule.check_reaches_gaussian(float(t_melt[-1]))
    z0 = (x @ W) * schedule.s(t_melt[0])
    out = {"melt": _trajectory(integrate_resumable(flow, schedule, z0, t_melt, label="melt", **seg), schedule, W,
                               t_melt, save_freq)}
    z_T = out["melt"].final_es
    out["rdtrp"] = _trajectory(integrate_resumable(flow, schedule, z_T, t_gen, label="rdtrp", **seg), schedule, W,
                               t_gen, save_freq)
    n = out["melt"].xs_es.shape[1]
    z_gen = sample_latent(schedule, n, eps=eps, seed=seed, t_end=float(t_gen[0]))
    out["gen"] = _trajectory(integrate_resumable(flow, schedule, z_gen, t_gen, label="gen", **seg), schedule, W,
                             t_gen, save_freq)
    if folder is not None:
        for key, traj in out.items():
            traj.save(folder / f"{tag}_{key}_results.npz")
        params = {"num_steps": steps, "h": h, "grid": grid, "end_time": end_time, "eps_s": eps_s, "solver": solver,
                  "end_vars": schedule.end_vars, "eps": eps, "save_freq": save_freq, "data_dim": schedule.data_dim,
                  "dims_to_keep": schedule.dims_to_keep, "rho": schedule.rho, "gamma0": schedule.gamma0,
                  "g_type": schedule.g_type, "inflation_gap": schedule.inflation_gap, "seed": seed,
                  "save_dir": str(folder), "data_name": data_name, "total_samples": n,
                  "schedule": schedule.to_dict(), "W": W.tolist(), **(extra_params or {})}
        _io.atomic_write_text(folder / f"{tag}_sim_params.json", json.dumps(params, indent=2))
        shutil.rmtree(part_dir, ignore_errors=True)
    return out
