"""SPPI threshold kernels (specs/sppi.md §1c, §8 step 3): the dispatch under
:func:`synthperf.conformal.sppi_thresholds`.

The conformal layer computes the windows and ranks (conformal math); this module runs them:

- :func:`sppi_thresholds_cpu` - the fused C++ core (``csrc/cpu/sppi.cpp``): per group, a
  multi-select of the needed real and synthetic order statistics and the clip, OpenMP over
  groups. Every length and offset is checked here first (and again, cheaply, in C++).
- :func:`sppi_clip_selected` - any backend: select the order statistics with
  :func:`~synthperf.ops.order_statistics` (or on the device, for CUDA tensors) and apply
  ``q = max(min(q_syn, s-), s+)`` where the scores live.

Conventions: real [B, ldr] and synth [B, lds] float32/float64 (one dtype), group b uses
``real[b, :n[b]]`` and ``synth[b, :N[b]]`` with ``1 <= n[b] <= ldr`` and
``n[b] + 2 <= N[b] <= lds``; ranks are 1-based, 0 meaning ``-inf`` (r+-) or ``top``
(synthetic rank), ``n + 1`` meaning ``top`` (r+-). Outputs [B, A] in the scores' dtype.
"""
from __future__ import annotations

import math

import numpy as np

from .._typing import ArrayOrTensor
from .. import _native
from .._arrays import array_kind
from .order_stats import order_statistics, order_statistics_device

SUPPORTED_BACKENDS = ("reference", "cpu", "cuda", "triton")


def _nan_error(name: str, b: int) -> ValueError:
    return ValueError(f"{name} contains NaN in group {b} (within its length); NaN scores are not allowed")


def check_group_sizes(n: np.ndarray, N: np.ndarray, ldr: int, lds: int) -> None:
    """Group sizes against the padded widths: ``1 <= n[b] <= ldr``, ``n[b] + 2 <= N[b] <= lds``.
    Raises ValueError naming ``real_lengths``/``synth_lengths`` and the first bad group."""
    checks = (("real_lengths", (n < 1) | (n > ldr), lambda b: f"must lie in [1, {ldr}] (the width of real)"),
              ("synth_lengths", (N < n + 2) | (N > lds),
               lambda b: f"must lie in [real_lengths[{b}] + 2, {lds}] = [{int(n[b]) + 2}, {lds}]"))
    for name, bad, rule in checks:
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            value = int((n if name == "real_lengths" else N)[b])
            raise ValueError(f"{name}[{b}] = {value} {rule(b)}")


def check_window_tables(n: np.ndarray, L_flat: np.ndarray, U_flat: np.ndarray, offsets: np.ndarray) -> None:
    """Packed windows: L_flat/U_flat int64 [W] of one length, offsets int64 [B] with each
    group's table ``[offsets[b], offsets[b] + n[b] + 1)`` inside them. Raises ValueError."""
    for name, arr in (("L_flat", L_flat), ("U_flat", U_flat), ("offsets", offsets)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != np.int64:
            raise TypeError(f"{name} must be a 1-D int64 numpy array")
    if L_flat.shape != U_flat.shape:
        raise ValueError(f"L_flat and U_flat must have one length, got {L_flat.shape[0]} and {U_flat.shape[0]}")
    if offsets.shape[0] != n.shape[0]:
        raise ValueError(f"offsets has {offsets.shape[0]} entries for {n.shape[0]} groups")
    bad = (offsets < 0) | (offsets > L_flat.shape[0] - (n + 1))
    if bad.any():
        b = int(np.flatnonzero(bad)[0])
        raise ValueError(f"offsets[{b}] = {int(offsets[b])}: the window table of group {b} ({int(n[b]) + 1} entries) "
                         f"does not fit inside L_flat/U_flat (length {L_flat.shape[0]})")


def sppi_thresholds_cpu(real: np.ndarray, n: np.ndarray, synth: np.ndarray, N: np.ndarray, alphas: np.ndarray,
                        L_flat: np.ndarray, U_flat: np.ndarray, offsets: np.ndarray, top: float, *,
                        upstream: bool = False) -> np.ndarray:
    """Fused C++ SPPI thresholds: [B, A] in the scores' dtype (NaN raises ValueError naming
    ``real``/``synth`` and the group). Arguments as in the module docstring; ``alphas``
    float64 [A] in (0, 1); windows packed as checked by :func:`check_window_tables`."""
    dtype = np.result_type(real.dtype, synth.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"real/synth must be float32 or float64, got {dtype}")
    if real.ndim != 2 or synth.ndim != 2 or real.shape[0] != synth.shape[0]:
        raise ValueError(f"real and synth must be [B, width] with one B, got {real.shape} and {synth.shape}")
    n = np.ascontiguousarray(n, dtype=np.int64)
    N = np.ascontiguousarray(N, dtype=np.int64)
    if n.shape != (real.shape[0],) or N.shape != (real.shape[0],):
        raise ValueError(f"real_lengths/synth_lengths must have shape [B] = [{real.shape[0]}]")
    check_group_sizes(n, N, real.shape[1], synth.shape[1])
    check_window_tables(n, L_flat, U_flat, offsets)
    lv = np.ascontiguousarray(alphas, dtype=np.float64)
    if lv.ndim != 1 or not ((lv > 0) & (lv < 1)).all():
        raise ValueError("alphas must be a 1-D array of levels in (0, 1)")
    Rc = np.ascontiguousarray(real, dtype=dtype)
    Sc = np.ascontiguousarray(synth, dtype=dtype)
    out = np.empty((real.shape[0], lv.shape[0]), dtype=dtype)
    fn = _native.sppi_thresholds_f32 if dtype == np.float32 else _native.sppi_thresholds_f64
    status, group, which = fn(Rc, n, Sc, N, lv, L_flat, U_flat, offsets, float(top), out, upstream=bool(upstream))
    if status != 0:
        raise _nan_error("real" if which == 0 else "synth", int(group))
    return out


def sppi_clip_selected(R: ArrayOrTensor, S: ArrayOrTensor, n: np.ndarray, N: np.ndarray, synth_rank: np.ndarray, r_plus: np.ndarray,
                       r_minus: np.ndarray, top: float, backend: str) -> ArrayOrTensor:
    """SPPI thresholds from precomputed ranks (each int64 [B, A]) by order-statistic
    selection on ``backend``, then the clip where the scores live: numpy in, numpy out; CUDA
    tensors (cuda/triton) never leave the device. NaN must already be checked."""
    A = synth_rank.shape[1]
    real_ranks = np.clip(np.concatenate([r_plus, r_minus], axis=1), 1, n[:, None])
    if array_kind(R).is_torch:  # device path: selection and clip on the device
        import torch

        real_sel = order_statistics_device(R, real_ranks, n, backend, check_nan=False)
        synth_sel = order_statistics_device(S, np.maximum(synth_rank, 1), N, backend, check_nan=False)

        def mask(a):
            return torch.from_numpy(np.ascontiguousarray(a)).to(R.device)

        where, minimum, maximum = torch.where, torch.minimum, torch.maximum
        t = torch.tensor(top, dtype=R.dtype, device=R.device)
        ninf = torch.tensor(-math.inf, dtype=R.dtype, device=R.device)
    else:
        real_sel = order_statistics(R, real_ranks, n, backend=backend)
        synth_sel = order_statistics(S, np.maximum(synth_rank, 1), N, backend=backend)

        def mask(a):
            return a

        where, minimum, maximum = np.where, np.minimum, np.maximum
        t, ninf = R.dtype.type(top), R.dtype.type(-np.inf)

    def pick(r, values):
        return where(mask(r == 0), ninf, where(mask(r > n[:, None]), t, values))

    s_plus = pick(r_plus, real_sel[:, :A])
    s_minus = pick(r_minus, real_sel[:, A:])
    q_syn = where(mask(synth_rank == 0), t, synth_sel)
    return maximum(minimum(q_syn, s_minus), s_plus)
