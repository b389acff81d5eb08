"""Discrete (empirical) score of Gaussian-smoothed data, and fused pfODE integration with it.

specs/inflationary_flows.md §3. For queries ``x`` [M, d], reference points ``data`` [N, d]
(eigen-space) and per-dimension noise variances ``gamma`` [d] (or a scalar),

    l_ij  = -1/2 sum_c (x_ic - y_jc)^2 / gamma_c
    pi_ij = softmax_j(l_ij)                      (mode="stable": streaming log-sum-exp)
          = w_ij / sum_j w_ij, w = max(exp l, 1e-30)   (mode="clamp": upstream's clamp)
    D_i   = sum_j pi_ij y_j,   score_i = (D_i - x_i) / gamma = grad log (p_data * N(0, diag gamma))(x_i)

The two modes differ only where every weight underflows (far-away queries at small gamma):
``stable`` stays exact (nearest-neighbour-like), ``clamp`` falls back to the uniform mean of
the data, as upstream does.

Backends: ``reference`` (torch, chunked direct differences; float64 when given float64),
``cpu`` (C++ ``csrc/cpu/discrete_score.cpp``: OpenMP over queries, data streamed in tiles,
O((M+N)d) memory; the hot loop is compiled for AVX-512 / AVX2 / baseline and picked by CPUID,
``SYNTHPERF_FLOWS_ISA=base|avx2`` caps it), ``triton`` (``kernels/triton/discrete_score.py``: fused distances +
online softmax + weighted mean [+ Euler/Heun update]). There is no CUDA backend; on a GPU,
``auto`` picks triton.

:func:`integrate_discrete` runs whole pfODE trajectories (§1.2 "Flow", §1.4): one C++ call
on the cpu backend (each thread carries its particles through every step), one kernel
launch per Euler step (two per Heun step) on triton. Inputs and outputs follow the caller's
array type (numpy in, numpy out; torch in, torch out on the caller's device).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import _native
from .._arrays import array_kind, like_input, to_torch
from .._validation import float_array
from ..backend import cuda_device_count, resolve_backend

SUPPORTED_BACKENDS = ("reference", "cpu", "triton")
MODES = ("stable", "clamp")
SOLVERS = ("euler", "heun")
CLAMP_WEIGHT = 1e-30
TABLE_KEYS = ("s", "r", "a", "gamma")


# ----------------------------------------------------------------------------- validation
def _check_mode(mode: Any) -> bool:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {MODES}")
    return mode == "clamp"


def _gamma_vector(gamma: Any, d: int, dtype: np.dtype, name: str = "gamma") -> np.ndarray:
    g = float_array(gamma, name, ndim=(0, 1))
    if g.ndim == 0:
        g = np.full(d, float(g))
    if g.shape[0] != d:
        raise ValueError(f"{name} has {g.shape[0]} entries but the data have d = {d} dimensions")
    if not np.isfinite(g).all() or (g <= 0).any():
        raise ValueError(f"{name} must be finite and > 0 (noise variances), got min {g.min()!r}")
    cast = np.ascontiguousarray(g.astype(dtype))
    _check_variances_in_dtype(g, cast, name)
    return cast


def _check_variances_in_dtype(g: np.ndarray, cast: np.ndarray, name: str) -> None:
    """The kernels compute in the scores' dtype: a variance that under/overflows there (e.g.
    1e-50 in float32 becomes 0 and gives NaN) is rejected after the cast, naming it."""
    bad = ~np.isfinite(cast) | (cast <= 0)
    if bad.any():
        i = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), g.shape)
        raise ValueError(f"{name} = {float(g[i])!r} (entry {tuple(int(v) for v in i)}) is not representable as a "
                         f"positive finite {cast.dtype} (it becomes {float(cast[i])!r}); use float64 inputs or "
                         f"a variance within the {cast.dtype} range")


def _validate_pair(x: Any, data: Any, x_name: str = "x") -> tuple[np.ndarray, np.ndarray]:
    x_np = float_array(x, x_name, ndim=2, allow_empty=True)
    y_np = float_array(data, "data", ndim=2)
    if x_np.shape[1] != y_np.shape[1]:
        raise ValueError(f"dimension mismatch: {x_name} has d = {x_np.shape[1]} but data has d = {y_np.shape[1]}")
    if not np.isfinite(x_np).all():
        raise ValueError(f"{x_name} must be finite")
    if not np.isfinite(y_np).all():
        raise ValueError("data must be finite")
    dtype = np.result_type(x_np.dtype, y_np.dtype)
    return x_np.astype(dtype, copy=False), y_np.astype(dtype, copy=False)


def _device_for(x: Any):
    """The device a torch backend computes on: a CUDA input's own device, else the current
    CUDA device when there is one, else the CPU (Triton interpreter)."""
    import torch

    kind = array_kind(x)
    if kind.is_torch and x.device.type == "cuda":
        return x.device
    return torch.device("cuda", torch.cuda.current_device()) if cuda_device_count() > 0 else torch.device("cpu")


def _device_guard(device: Any):
    """Make ``device`` current while Triton launches (it launches on the current device)."""
    import contextlib

    import torch

    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# ----------------------------------------------------------------------------- reference
def discrete_score_reference(x: Any, data: Any, gamma: Any, *, mode: str = "stable",
                             chunk_elems: int = 1 << 22) -> tuple[Any, Any]:
    """Ground truth in torch (float64 when given float64): returns ``(D, score)``, each [M, d].

    Direct differences per query chunk of at most ``chunk_elems`` M*N*d elements.
    """
    import torch

    clamp = _check_mode(mode)
    u = torch.as_tensor(x)
    y = torch.as_tensor(data).to(u.dtype)
    g = torch.as_tensor(gamma).to(u.dtype).expand(u.shape[1])
    dbar = torch.empty_like(u)
    score = torch.empty_like(u)
    step = max(1, chunk_elems // max(1, y.shape[0] * u.shape[1]))
    for i0 in range(0, u.shape[0], step):
        ui = u[i0:i0 + step]
        diff = y[None, :, :] - ui[:, None, :]
        logit = -0.5 * (diff * diff / g).sum(dim=2)
        if clamp:
            w = torch.exp(logit).clamp_min(CLAMP_WEIGHT)
            pi = w / w.sum(dim=1, keepdim=True)
        else:
            pi = torch.softmax(logit, dim=1)
        off = torch.einsum("mn,mnd->md", pi, diff)
        dbar[i0:i0 + step] = ui + off
        score[i0:i0 + step] = off / g
    return dbar, score


# ----------------------------------------------------------------------------- entry points
def discrete_score(x: Any, data: Any, gamma: Any, *, mode: str = "stable", backend: str | None = None,
                   return_denoiser: bool = False) -> Any:
    """Score of the Gaussian-smoothed empirical distribution of ``data`` at ``x``.

    Parameters
    ----------
    x : [M, d] queries (float32/float64; numpy or torch).
    data : [N, d] reference points, N >= 1.
    gamma : [d] or scalar, noise variances (> 0).
    mode : "stable" (streaming log-sum-exp, default) or "clamp" (upstream 1e-30 weight clamp).
    backend : "auto" | "reference" | "cpu" | "triton" | None.
    return_denoiser : also return the ideal denoiser D [M, d].

    Returns
    -------
    score [M, d] (or ``(score, D)``) in x's dtype (promoted with data's) and array type.
    """
    kind = array_kind(x)
    clamp = _check_mode(mode)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="discrete_score", data=x)
    x_np, y_np = _validate_pair(x, data)
    g_np = _gamma_vector(gamma, x_np.shape[1], x_np.dtype)
    M, d = x_np.shape
    if M == 0:
        empty = np.empty((0, d), dtype=x_np.dtype)
        return (like_input(empty, kind), like_input(empty, kind)) if return_denoiser else like_input(empty, kind)
    if name == "reference":
        import torch

        dbar, score = discrete_score_reference(torch.from_numpy(np.ascontiguousarray(x_np)),
                                               torch.from_numpy(np.ascontiguousarray(y_np)),
                                               torch.from_numpy(g_np), mode=mode)
    elif name == "cpu":
        dbar = np.empty(x_np.shape, dtype=x_np.dtype, order="C")  # not empty_like: that keeps F order
        score = np.empty(x_np.shape, dtype=x_np.dtype, order="C")
        fn = _native.discrete_score_f32 if x_np.dtype == np.float32 else _native.discrete_score_f64
        fn(np.ascontiguousarray(x_np), np.ascontiguousarray(y_np.T), g_np, clamp, dbar, score)
    else:
        from synthperf.kernels.triton.discrete_score import discrete_score_triton

        device = _device_for(x)
        u_t = to_torch(x_np, device)
        dbar = u_t.new_empty(u_t.shape)
        score = u_t.new_empty(u_t.shape)
        with _device_guard(device):
            discrete_score_triton(u_t, to_torch(y_np, device), to_torch(g_np, device), clamp, dbar, score)
    if return_denoiser:
        return like_input(score, kind), like_input(dbar, kind)
    return like_input(score, kind)


def _validate_tables(tables: Any, times: Any, d: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    t = float_array(times, "times", ndim=1).astype(np.float64)
    if t.shape[0] < 2:
        raise ValueError(f"times needs at least 2 points, got {t.shape[0]}")
    if not np.isfinite(t).all():
        raise ValueError("times must be finite")
    if not isinstance(tables, dict):
        raise TypeError(f"tables must be a dict with keys {TABLE_KEYS}, got {type(tables).__name__}")
    unknown = set(tables) - set(TABLE_KEYS)
    missing = set(TABLE_KEYS) - set(tables)
    if unknown or missing:
        raise ValueError(f"tables must have exactly the keys {TABLE_KEYS}; unknown {sorted(unknown)}, missing {sorted(missing)}")
    out = {}
    for key in TABLE_KEYS:
        arr = float_array(tables[key], f"tables[{key!r}]", ndim=2).astype(np.float64)
        if arr.shape != (t.shape[0], d):
            raise ValueError(f"tables[{key!r}] has shape {arr.shape}, expected [len(times), d] = {(t.shape[0], d)}")
        if not np.isfinite(arr).all():
            raise ValueError(f"tables[{key!r}] must be finite")
        out[key] = np.ascontiguousarray(arr)
    if (out["gamma"] <= 0).any():
        raise ValueError("tables['gamma'] must be > 0")
    if (out["s"] == 0).any():
        raise ValueError("tables['s'] must be non-zero")
    return out, t


def save_steps(n_steps: int, save_every: int) -> np.ndarray:
    """Slot per step (-1 = not saved): steps with index % save_every == 0 and the last (§5.1)."""
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every}")
    keep = (np.arange(n_steps) % save_every == 0)
    keep[-1] = True
    slots = np.full(n_steps, -1, dtype=np.int64)
    slots[keep] = np.arange(int(keep.sum()))
    return slots


def pfode_discrete_step(z: Any, data: Any, coef: dict, coef_next: dict, dt: float, *, solver: str = "euler",
                        mode: str = "stable", backend: str | None = None) -> Any:
    """One pfODE step z(t) -> z(t + dt) with the discrete score (§1.2 flow, §1.4 solvers).

    ``coef``/``coef_next``: dicts of [d] vectors ``s, r = s'/s, a = gamma'/(2 gamma), gamma`` at
    t and t + dt (from :meth:`InflationSchedule.tables`). Returns z_next [M, d].
    """
    kind = array_kind(z)
    d = float_array(z, "z", ndim=2).shape[1]
    tabs = {k: np.stack([np.broadcast_to(np.asarray(coef[k], dtype=np.float64), (d,)),
                         np.broadcast_to(np.asarray(coef_next[k], dtype=np.float64), (d,))]) for k in TABLE_KEYS}
    res = integrate_discrete(z, data, tabs, np.array([0.0, float(dt)]), solver=solver, mode=mode,
                             backend=backend, save_every=1)
    return like_input(res["z"][-1], kind)


def integrate_discrete(z0: Any, data: Any, tables: dict, times: Any, *, solver: str = "euler",
                       mode: str = "stable", backend: str | None = None, save_every: int = 1) -> dict[str, Any]:
    """Integrate the scaled pfODE dz/dt = r z + a (z - s D(z/s; gamma)) over the grid ``times``.

    Parameters
    ----------
    z0 : [M, d] initial scaled state (eigen-space).
    data : [N, d] reference points (eigen-space).
    tables : dict of [n, d] arrays ``s, r, a, gamma`` at each time (``InflationSchedule.tables``).
    times : [n] time grid (ascending for melt, descending for generation).
    solver : "euler" or "heun" (predictor + corrector on every step, §1.4).
    save_every : snapshot stride; steps with index % save_every == 0 and the last one are saved.

    Returns
    -------
    dict with ``z`` [S+1, M, d] (initial state, then after each saved step), ``denoiser`` and
    ``score`` [S, M, d] (evaluated at the pre-update state and time) and ``dz`` [S, M, d]
    (the increments), in z0's dtype and array type.
    """
    kind = array_kind(z0)
    clamp = _check_mode(mode)
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: expected one of {SOLVERS}")
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="integrate_discrete", data=z0)
    z_np, y_np = _validate_pair(z0, data, "z0")
    M, d = z_np.shape
    tabs, t = _validate_tables(tables, times, d)
    for key in ("gamma", "s"):  # the torch paths compute in z0's dtype: check after that cast
        cast = tabs[key].astype(z_np.dtype)
        if key == "gamma":
            _check_variances_in_dtype(tabs[key], cast, "tables['gamma']")
        elif (cast == 0).any() or not np.isfinite(cast).all():
            raise ValueError(f"tables['s'] is not representable as a non-zero finite {z_np.dtype}")
    slots = save_steps(t.shape[0] - 1, int(save_every))
    S = int((slots >= 0).sum())
    heun = solver == "heun"
    if name == "cpu":
        out = {"z": np.empty((S + 1, M, d), z_np.dtype)}
        for key in ("denoiser", "score", "dz"):
            out[key] = np.empty((S, M, d), z_np.dtype)
        fn = _native.integrate_discrete_f32 if z_np.dtype == np.float32 else _native.integrate_discrete_f64
        fn(np.ascontiguousarray(z_np), np.ascontiguousarray(y_np.T), tabs["s"], tabs["r"], tabs["a"],
           tabs["gamma"], t, heun, clamp, slots, out["z"], out["denoiser"], out["score"], out["dz"])
        return {k: like_input(v, kind) for k, v in out.items()}
    return {k: like_input(v, kind) for k, v in _integrate_torch(z0, z_np, y_np, tabs, t, slots, heun, mode, name).items()}


def _integrate_torch(z_src: Any, z_np: np.ndarray, y_np: np.ndarray, tabs: dict, t: np.ndarray,
                     slots: np.ndarray, heun: bool, mode: str, name: str) -> dict[str, Any]:
    """reference (torch loop over steps) and triton (one/two launches per step) integrators."""
    import torch

    device = _device_for(z_src) if name == "triton" else torch.device("cpu")
    # A private copy: the triton loop ping-pongs between two state buffers, and to_torch
    # returns the caller's own memory when it is already on the device (a CPU tensor under
    # the interpreter, a CUDA tensor, or a numpy array viewed by torch.from_numpy).
    z = to_torch(z_np, device).clone()
    y = to_torch(y_np, device)
    M, d = z.shape
    S = int((slots >= 0).sum())
    out = {"z": z.new_empty((S + 1, M, d))}
    for key in ("denoiser", "score", "dz"):
        out[key] = z.new_empty((S, M, d))
    out["z"][0] = z
    coefs = [{k: torch.as_tensor(tabs[k][i], dtype=z.dtype, device=device).contiguous() for k in TABLE_KEYS}
             for i in range(t.shape[0])]
    with _device_guard(device):
        _step_loop(z, y, out, coefs, t, slots, heun, mode, name)
    return out


def _step_loop(z: Any, y: Any, out: dict, coefs: list, t: np.ndarray, slots: np.ndarray, heun: bool,
               mode: str, name: str) -> None:
    """The time-step loop of :func:`_integrate_torch`: fills ``out`` in place. ``z`` [M, d] is
    the integrator's own state buffer (never the caller's array); triton alternates it with
    one more buffer of the same shape."""
    import torch

    if name == "triton":
        from synthperf.kernels.triton.discrete_score import pfode_step_triton

        f_buf, zp_buf, z_next = torch.empty_like(z), torch.empty_like(z), torch.empty_like(z)
    for k in range(t.shape[0] - 1):
        dt = float(t[k + 1] - t[k])
        slot = int(slots[k])
        c0, c1 = coefs[k], coefs[k + 1]
        if name == "triton":
            pfode_step_triton(z, y, c0, c1, dt, heun, mode == "clamp", z_next, f_buf, zp_buf,
                              out["denoiser"][slot] if slot >= 0 else None,
                              out["score"][slot] if slot >= 0 else None)
        else:
            dbar, score = discrete_score_reference(z / c0["s"], y, c0["gamma"], mode=mode)
            f0 = c0["r"] * z + c0["a"] * (z - c0["s"] * dbar)
            z_next = z + dt * f0
            if heun:
                dbar1, _ = discrete_score_reference(z_next / c1["s"], y, c1["gamma"], mode=mode)
                f1 = c1["r"] * z_next + c1["a"] * (z_next - c1["s"] * dbar1)
                z_next = z + 0.5 * dt * (f0 + f1)
            if slot >= 0:
                out["denoiser"][slot], out["score"][slot] = dbar, score
        if slot >= 0:
            out["dz"][slot] = z_next - z
            out["z"][slot + 1] = z_next
        if name == "triton":
            z, z_next = z_next, z
        else:
            z = z_next
