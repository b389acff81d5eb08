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

:func:`integrate_discrete` runs whole pfODE trajectories (§1.2 "Flow", §1.4) with one of the
kernels' update rules (:data:`UPDATE_RULES`): one C++ call on the cpu backend (each thread
carries its particles through every step), one kernel launch per Euler step (two per Heun
step) on triton; :func:`pfode_step` is one step. Which solver, time grid, step count and
saving rule a simulation uses is the flows system's policy (:mod:`synthperf.flows.solvers`).

Arrays: inputs and outputs follow the caller's array type (numpy in, numpy out; torch in, torch
out on the caller's device, in the promoted dtype). Torch inputs on the ``reference`` and
``triton`` backends are validated and computed on their own device: a CUDA tensor is never
copied to the host (shapes from metadata, finiteness by one device reduction; the [n, d]
schedule tables are host arrays). The ``cpu`` backend computes on the host: a CUDA tensor is
copied there and the result copied back. The C++ and Triton kernels are also registered as
``torch.library`` custom ops (``torch.ops.synthperf.discrete_score`` / ``pfode_step``, with
fake implementations, :mod:`synthperf.ops._torch_ops`) so ``torch.compile`` can trace them;
torch inputs on the cpu backend, and CUDA tensors on triton, go through those ops.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._typing import ArrayOrTensor
from .. import _native
from .._arrays import array_kind, like_input
from .._validation import float_array, float_tensor, real_scalar
from ..backend import cuda_device_count, resolve_backend

SUPPORTED_BACKENDS = ("reference", "cpu", "triton")
MODES = ("stable", "clamp")
#: The pfODE update rules the kernels implement (§1.4); flows picks one (``flows.solvers``).
UPDATE_RULES = ("euler", "heun")
CLAMP_WEIGHT = 1e-30
TABLE_KEYS = ("s", "r", "a", "gamma")


# ----------------------------------------------------------------------------- validation
def _check_mode(mode: object) -> bool:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}: expected one of {MODES}")
    return mode == "clamp"


def _gamma_vector(gamma: ArrayOrTensor, d: int, dtype: np.dtype, name: str = "gamma") -> np.ndarray:
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
    1e-50 in float32 becomes 0 and gives NaN) is rejected after the cast, naming it. So is a
    subnormal one (float64 1e-320 < finfo.tiny): its reciprocal 1/gamma overflows to inf in
    the logits and the score, giving NaN (issue 17); finfo.tiny (2.2e-308 float64, 1.2e-38
    float32) is the smallest variance whose reciprocal stays finite."""
    bad = ~np.isfinite(cast) | ~(cast >= np.finfo(cast.dtype).tiny)
    if bad.any():
        i = np.unravel_index(int(np.flatnonzero(bad.reshape(-1))[0]), g.shape)
        raise ValueError(f"{name} = {float(g[i])!r} (entry {tuple(int(v) for v in i)}) is not representable as a "
                         f"positive finite normal {cast.dtype} >= {float(np.finfo(cast.dtype).tiny):.3g} (it becomes "
                         f"{float(cast[i])!r}, and 1/{name} overflows); use float64 inputs or a variance within "
                         f"the {cast.dtype} range")


def _validate_pair(x: ArrayOrTensor, data: ArrayOrTensor, x_name: str = "x") -> tuple[np.ndarray, np.ndarray]:
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


def _np_dtype(dtype: object) -> np.dtype:
    import torch

    return np.dtype(np.float32) if dtype == torch.float32 else np.dtype(np.float64)


def _as_device_tensor(v: ArrayOrTensor, name: str, device: object, allow_empty: bool) -> ArrayOrTensor:
    """``v`` [*, d] as a contiguous float32/float64 tensor on ``device``: a tensor is checked
    from metadata on its own device (never via the host), a numpy array converted once."""
    import torch

    if array_kind(v).is_torch:
        return float_tensor(v, name, ndim=2, allow_empty=allow_empty).to(device)
    return torch.from_numpy(np.ascontiguousarray(float_array(v, name, ndim=2, allow_empty=allow_empty))).to(device)


def _validate_pair_torch(x: ArrayOrTensor, data: ArrayOrTensor, device: object, x_name: str = "x") -> tuple[ArrayOrTensor, ArrayOrTensor]:
    """The device twin of :func:`_validate_pair`: same checks and messages, one host sync
    (a two-flag device reduction) in the good case."""
    import torch

    u = _as_device_tensor(x, x_name, device, allow_empty=True)
    y = _as_device_tensor(data, "data", device, allow_empty=False)
    if u.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x_name} has d = {u.shape[1]} but data has d = {y.shape[1]}")
    finite = torch.stack([torch.isfinite(u).all(), torch.isfinite(y).all()]).tolist()
    for ok, t, name in zip(finite, (u, y), (x_name, "data")):
        if not ok:
            if bool(torch.isnan(t).any()):
                raise ValueError(f"{name} contains NaN; remove or impute NaN values first")
            raise ValueError(f"{name} must be finite")
    dtype = torch.promote_types(u.dtype, y.dtype)
    return u.to(dtype).contiguous(), y.to(dtype).contiguous()


def _gamma_tensor(gamma: ArrayOrTensor, d: int, dtype: object, device: object) -> ArrayOrTensor:
    """gamma [d] (or a scalar) as a ``dtype`` tensor on ``device``; a tensor gamma is checked
    on its device, and only a failing one is copied to the host to name the bad entry."""
    import torch

    if not array_kind(gamma).is_torch:
        return torch.from_numpy(_gamma_vector(gamma, d, _np_dtype(dtype))).to(device)
    g = float_tensor(gamma, "gamma", ndim=(0, 1)).to(device)
    if g.ndim == 0:
        g = g.reshape(1).expand(d)
    if g.shape[0] != d:
        raise ValueError(f"gamma has {g.shape[0]} entries but the data have d = {d} dimensions")
    cast = g.to(dtype)
    tiny = torch.finfo(cast.dtype).tiny  # subnormal variances overflow 1/gamma (see _check_variances_in_dtype)
    if not bool((torch.isfinite(g) & (g > 0) & torch.isfinite(cast) & (cast >= tiny)).all()):
        _gamma_vector(g.detach().cpu().numpy(), d, _np_dtype(dtype))  # raises the host message
    return cast.contiguous()


def _torch_ops():
    """:mod:`._torch_ops` (imports torch and registers the custom ops on first use)."""
    from . import _torch_ops

    return _torch_ops


def _device_for(x: ArrayOrTensor):
    """The device a torch backend computes on: a CUDA input's own device, else the current
    CUDA device when there is one, else the CPU (Triton interpreter)."""
    import torch

    kind = array_kind(x)
    if kind.is_torch and x.device.type == "cuda":
        return x.device
    return torch.device("cuda", torch.cuda.current_device()) if cuda_device_count() > 0 else torch.device("cpu")


def _device_guard(device: object):
    """Make ``device`` current while Triton launches (it launches on the current device)."""
    import contextlib

    import torch

    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


# ----------------------------------------------------------------------------- reference
def discrete_score_reference(x: ArrayOrTensor, data: ArrayOrTensor, gamma: ArrayOrTensor, *, mode: str = "stable",
                             chunk_elems: int = 1 << 22) -> tuple[ArrayOrTensor, ArrayOrTensor]:
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
def discrete_score(x: ArrayOrTensor, data: ArrayOrTensor, gamma: ArrayOrTensor, *, mode: str = "stable", backend: str | None = None,
                   return_denoiser: bool = False) -> ArrayOrTensor | tuple[ArrayOrTensor, ArrayOrTensor]:
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
    score [M, d] (or ``(score, D)``) in x's dtype (promoted with data's) and array type; for a
    tensor ``x``, on x's device (a CUDA tensor is computed there on the reference and triton
    backends, never copied to the host; module docstring).
    """
    kind = array_kind(x)
    clamp = _check_mode(mode)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="discrete_score", data=x)
    if name == "cpu" and not kind.is_torch:
        x_np, y_np = _validate_pair(x, data)
        g_np = _gamma_vector(gamma, x_np.shape[1], x_np.dtype)
        dbar = np.empty(x_np.shape, dtype=x_np.dtype, order="C")  # not empty_like: that keeps F order
        score = np.empty(x_np.shape, dtype=x_np.dtype, order="C")
        if x_np.shape[0]:
            fn = _native.discrete_score_f32 if x_np.dtype == np.float32 else _native.discrete_score_f64
            fn(np.ascontiguousarray(x_np), np.ascontiguousarray(y_np.T), g_np, clamp, dbar, score)
    else:
        dbar, score = _discrete_score_torch(x, data, gamma, mode, clamp, name)
    if return_denoiser:
        return like_input(score, kind), like_input(dbar, kind)
    return like_input(score, kind)


def _compute_device(x: ArrayOrTensor, name: str):
    """Where a torch-path backend computes: cpu (the C++ core) on the host; reference on a
    tensor's own device (the host for numpy); triton on :func:`_device_for`."""
    import torch

    if name == "triton":
        return _device_for(x)
    if name == "reference" and array_kind(x).is_torch:
        return x.device
    return torch.device("cpu")


def _discrete_score_torch(x: ArrayOrTensor, data: ArrayOrTensor, gamma: ArrayOrTensor, mode: str, clamp: bool, name: str) -> tuple[ArrayOrTensor, ArrayOrTensor]:
    """(D, score) as tensors on the compute device (:func:`_compute_device`)."""
    device = _compute_device(x, name)
    u, y = _validate_pair_torch(x, data, device)
    g = _gamma_tensor(gamma, u.shape[1], u.dtype, device)
    if u.shape[0] == 0:
        return u.new_empty(u.shape), u.new_empty(u.shape)
    if name == "reference":
        return discrete_score_reference(u, y, g, mode=mode)
    if name == "cpu" or device.type == "cuda":
        _torch_ops()
        import torch

        return torch.ops.synthperf.discrete_score(u, y, g, clamp)
    from synthperf.kernels.triton.discrete_score import discrete_score_triton  # interpreter, CPU tensors

    dbar, score = u.new_empty(u.shape), u.new_empty(u.shape)
    discrete_score_triton(u, y, g, clamp, dbar, score)
    return dbar, score


def _validate_tables(tables: dict, times: ArrayOrTensor, d: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
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


def snapshot_slots(n_steps: int, save_every: int) -> np.ndarray:
    """int64 [n_steps]: the output slot each step writes, -1 = not stored. The kernels store
    the steps with index % save_every == 0 and the last one (the saving rule of §5.1, which
    ``flows.solvers.save_steps`` names for the simulations)."""
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)):
        raise TypeError(f"save_every must be an integer, got {type(save_every).__name__}")
    if save_every < 1:
        raise ValueError(f"save_every must be >= 1, got {save_every}")
    keep = (np.arange(n_steps) % save_every == 0)
    keep[-1] = True
    slots = np.full(n_steps, -1, dtype=np.int64)
    slots[keep] = np.arange(int(keep.sum()))
    return slots


def _step_tables(coef: dict, coef_next: dict, d: int) -> dict[str, np.ndarray]:
    if not isinstance(coef, dict) or not isinstance(coef_next, dict):
        raise TypeError(f"coef and coef_next must be dicts with keys {TABLE_KEYS}")
    out = {}
    for k in TABLE_KEYS:
        if k not in coef or k not in coef_next:
            raise ValueError(f"coef and coef_next need the keys {TABLE_KEYS}; {k!r} is missing")
        rows = []
        for name, c in (("coef", coef), ("coef_next", coef_next)):
            v = float_array(c[k], f"{name}[{k!r}]", ndim=(0, 1)).astype(np.float64)
            if v.ndim == 1 and v.shape[0] != d:
                raise ValueError(f"{name}[{k!r}] has {v.shape[0]} entries, expected d = {d}")
            rows.append(np.broadcast_to(v, (d,)))
        out[k] = np.stack(rows)
    return out


def pfode_step(z: ArrayOrTensor, data: ArrayOrTensor, coef: dict, coef_next: dict, dt: float, *, heun: bool = False,
               mode: str = "stable", backend: str | None = None) -> ArrayOrTensor:
    """One scaled-pfODE step z(t) -> z(t + dt) with the discrete score (§1.2, §1.4): Euler, or
    Heun when ``heun`` (the solver name is flows' choice: ``flows.solvers.pfode_discrete_step``).

    z : [M, d]; data : [N, d]; ``coef``/``coef_next``: dicts of [d] vectors (or scalars)
    ``s, r, a = gamma'/(2 gamma), gamma`` at t and t + dt; dt : finite float. Returns z_next
    [M, d] in z's dtype and array type. Torch inputs on the cpu backend, and CUDA tensors on
    triton, run the custom op ``torch.ops.synthperf.pfode_step``; others the integrator.
    """
    if not isinstance(heun, (bool, np.bool_)):
        raise TypeError(f"heun must be a bool, got {type(heun).__name__}")
    dt = real_scalar(dt, "dt", allow_inf=False)
    kind = array_kind(z)
    clamp = _check_mode(mode)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="pfode_step", data=z)
    device = _compute_device(z, name) if kind.is_torch else None
    if device is None or name == "reference" or (name == "triton" and device.type != "cuda"):
        res = integrate_discrete(z, data, _step_tables(coef, coef_next, _width(z)), np.array([0.0, dt]),
                                 solver="heun" if heun else "euler", mode=mode, backend=name, save_every=1)
        return like_input(res["z"][-1], kind)
    import torch

    u, y = _validate_pair_torch(z, data, device, "z")
    tabs, _ = _validate_tables(_step_tables(coef, coef_next, u.shape[1]), np.array([0.0, dt]), u.shape[1])
    _check_tables_in_dtype(tabs, _np_dtype(u.dtype))
    c0, c1 = (torch.as_tensor(np.stack([tabs[k][i] for k in TABLE_KEYS]), dtype=u.dtype, device=device)
              for i in (0, 1))
    _torch_ops()
    z_next, _, _ = torch.ops.synthperf.pfode_step(u, y, c0, c1, dt, bool(heun), clamp)
    return like_input(z_next, kind)


def _width(z: ArrayOrTensor) -> int:
    shape = getattr(z, "shape", None)
    if shape is not None and len(shape) == 2:
        return int(shape[1])
    return float_array(z, "z", ndim=2, allow_empty=True).shape[1]


def _check_tables_in_dtype(tabs: dict, dtype: np.dtype) -> None:
    """The kernels compute in the state's dtype: check gamma and s after that cast."""
    for key in ("gamma", "s"):
        cast = tabs[key].astype(dtype)
        if key == "gamma":
            _check_variances_in_dtype(tabs[key], cast, "tables['gamma']")
        elif (cast == 0).any() or not np.isfinite(cast).all():
            raise ValueError(f"tables['s'] is not representable as a non-zero finite {dtype}")


def integrate_discrete(z0: ArrayOrTensor, data: ArrayOrTensor, tables: dict, times: ArrayOrTensor, *, solver: str = "euler",
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
    if solver not in UPDATE_RULES:
        raise ValueError(f"unknown solver {solver!r}: expected one of {UPDATE_RULES}")
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="integrate_discrete", data=z0)
    heun = solver == "heun"
    if name != "cpu":
        return {k: like_input(v, kind) for k, v in _integrate_torch(z0, data, tables, times, save_every, heun, mode,
                                                                     name).items()}
    z_np, y_np = _validate_pair(z0, data, "z0")
    M, d = z_np.shape
    tabs, t = _validate_tables(tables, times, d)
    _check_tables_in_dtype(tabs, z_np.dtype)
    slots = snapshot_slots(t.shape[0] - 1, save_every)
    S = int((slots >= 0).sum())
    out = {"z": np.empty((S + 1, M, d), z_np.dtype)}
    for key in ("denoiser", "score", "dz"):
        out[key] = np.empty((S, M, d), z_np.dtype)
    fn = _native.integrate_discrete_f32 if z_np.dtype == np.float32 else _native.integrate_discrete_f64
    fn(np.ascontiguousarray(z_np), np.ascontiguousarray(y_np.T), tabs["s"], tabs["r"], tabs["a"],
       tabs["gamma"], t, heun, clamp, slots, out["z"], out["denoiser"], out["score"], out["dz"])
    return {k: like_input(v, kind) for k, v in out.items()}


def _integrate_torch(z0: ArrayOrTensor, data: ArrayOrTensor, tables: dict, times: ArrayOrTensor, save_every: int, heun: bool, mode: str,
                     name: str) -> dict[str, Any]:
    """reference (torch loop over steps) and triton (one/two launches per step) integrators, on
    z0's own device for a tensor (:func:`_compute_device`); outputs are tensors there."""
    import torch

    device = _compute_device(z0, name)
    # A private copy: the triton loop ping-pongs between two state buffers, and the validated
    # tensor is the caller's own memory when it is already on the device and contiguous.
    z, y = _validate_pair_torch(z0, data, device, "z0")
    z = z.clone()
    M, d = z.shape
    tabs, t = _validate_tables(tables, times, d)
    _check_tables_in_dtype(tabs, _np_dtype(z.dtype))
    slots = snapshot_slots(t.shape[0] - 1, save_every)
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


def _step_loop(z: ArrayOrTensor, y: ArrayOrTensor, out: dict, coefs: list, t: np.ndarray, slots: np.ndarray, heun: bool,
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
