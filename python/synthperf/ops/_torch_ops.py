"""The discrete-score kernels as ``torch.library`` custom ops (issue 14 item 6), so that
``torch.compile`` traces them (a fake implementation gives the output shapes) instead of
breaking the graph on an opaque Python call. Spec ``specs/inflationary_flows.md`` §1.4, §3.

``torch.ops.synthperf.discrete_score(x [M, d], data [N, d], gamma [d], clamp) -> (D, score)``
    the ideal denoiser and score, each [M, d] in x's dtype and device.
``torch.ops.synthperf.pfode_step(z [M, d], data [N, d], coef [4, d], coef_next [4, d], dt, heun,
clamp) -> (z_next, D, score)``
    one Euler (``heun=False``) or Heun step of the scaled pfODE; ``coef``/``coef_next`` stack
    the rows ``s, r, a, gamma`` (:data:`~synthperf.ops.discrete_score.TABLE_KEYS` order) at t and
    t + dt; D and score are evaluated at (z, t).

Implementations: CPU tensors run the C++ core (``csrc/cpu/discrete_score.cpp``, on numpy views
of the tensors: no copy for contiguous inputs); CUDA tensors run the Triton kernels
(``kernels/triton/discrete_score.py``) under a guard for the tensors' own device. Inputs must
share one float dtype (float32/float64) and device; the ops do not validate values (NaN,
gamma > 0): :func:`~synthperf.ops.discrete_score.discrete_score` checks before calling them.
Neither op mutates its inputs. The module is imported on first use, so importing
:mod:`synthperf.ops` does not import torch.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import _native

_N_COEF = 4  # s, r, a, gamma


def _check_common(x: Tensor, data: Tensor, name: str = "x") -> None:
    """Metadata checks only (no host sync): the ops' contract, raised before any kernel runs."""
    if x.dim() != 2 or data.dim() != 2 or x.shape[1] != data.shape[1]:
        raise ValueError(f"{name} [M, d] and data [N, d] must be 2-D with the same d, got {tuple(x.shape)} "
                         f"and {tuple(data.shape)}")
    if x.dtype not in (torch.float32, torch.float64) or data.dtype != x.dtype:
        raise TypeError(f"{name} and data must share one float32/float64 dtype, got {x.dtype} and {data.dtype}")
    if data.device != x.device:
        raise ValueError(f"{name} and data must be on one device, got {x.device} and {data.device}")


def _host(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _device_guard(t: Tensor):
    return torch.cuda.device(t.device)


@torch.library.custom_op("synthperf::discrete_score", mutates_args=())
def discrete_score_op(x: Tensor, data: Tensor, gamma: Tensor, clamp: bool) -> tuple[Tensor, Tensor]:
    """CPU implementation (C++ core); CUDA: :func:`_discrete_score_cuda`."""
    _check_common(x, data)
    dbar = torch.empty(x.shape, dtype=x.dtype)
    score = torch.empty(x.shape, dtype=x.dtype)
    if x.shape[0]:
        fn = _native.discrete_score_f32 if x.dtype == torch.float32 else _native.discrete_score_f64
        fn(_host(x), np.ascontiguousarray(_host(data).T), _host(gamma.to(x.dtype)), bool(clamp), dbar.numpy(),
           score.numpy())
    return dbar, score


@discrete_score_op.register_fake
def _discrete_score_fake(x: Tensor, data: Tensor, gamma: Tensor, clamp: bool) -> tuple[Tensor, Tensor]:
    _check_common(x, data)
    return x.new_empty(x.shape), x.new_empty(x.shape)


@discrete_score_op.register_kernel("cuda")
def _discrete_score_cuda(x: Tensor, data: Tensor, gamma: Tensor, clamp: bool) -> tuple[Tensor, Tensor]:
    from synthperf.kernels.triton.discrete_score import discrete_score_triton

    _check_common(x, data)
    u, y, g = x.contiguous(), data.contiguous(), gamma.to(x.dtype).contiguous()
    dbar, score = torch.empty_like(u), torch.empty_like(u)
    if u.shape[0]:
        with _device_guard(u):
            discrete_score_triton(u, y, g, bool(clamp), dbar, score)
    return dbar, score


def _check_coef(z: Tensor, coef: Tensor, name: str) -> None:
    if coef.dim() != 2 or tuple(coef.shape) != (_N_COEF, z.shape[1]):
        raise ValueError(f"{name} must be [4, d] = {(_N_COEF, z.shape[1])} (rows s, r, a, gamma), got "
                         f"{tuple(coef.shape)}")


@torch.library.custom_op("synthperf::pfode_step", mutates_args=())
def pfode_step_op(z: Tensor, data: Tensor, coef: Tensor, coef_next: Tensor, dt: float, heun: bool,
                  clamp: bool) -> tuple[Tensor, Tensor, Tensor]:
    """CPU implementation: the C++ integrator over the two-point grid [0, dt]."""
    _check_common(z, data, "z")
    _check_coef(z, coef, "coef")
    _check_coef(z, coef_next, "coef_next")
    M, d = z.shape
    zs = torch.empty((2, M, d), dtype=z.dtype)
    dbar, score, dz = (torch.empty((1, M, d), dtype=z.dtype) for _ in range(3))
    if M:
        tabs = np.ascontiguousarray(np.stack([_host(coef.to(torch.float64)), _host(coef_next.to(torch.float64))], 1))
        fn = _native.integrate_discrete_f32 if z.dtype == torch.float32 else _native.integrate_discrete_f64
        fn(_host(z), np.ascontiguousarray(_host(data).T), *(np.ascontiguousarray(tabs[i]) for i in range(_N_COEF)),
           np.array([0.0, float(dt)]), bool(heun), bool(clamp), np.zeros(1, dtype=np.int64), zs.numpy(),
           dbar.numpy(), score.numpy(), dz.numpy())
    else:
        zs[1] = z
    return zs[1].clone(), dbar[0].clone(), score[0].clone()


@pfode_step_op.register_fake
def _pfode_step_fake(z: Tensor, data: Tensor, coef: Tensor, coef_next: Tensor, dt: float, heun: bool,
                     clamp: bool) -> tuple[Tensor, Tensor, Tensor]:
    _check_common(z, data, "z")
    _check_coef(z, coef, "coef")
    _check_coef(z, coef_next, "coef_next")
    return z.new_empty(z.shape), z.new_empty(z.shape), z.new_empty(z.shape)


@pfode_step_op.register_kernel("cuda")
def _pfode_step_cuda(z: Tensor, data: Tensor, coef: Tensor, coef_next: Tensor, dt: float, heun: bool,
                     clamp: bool) -> tuple[Tensor, Tensor, Tensor]:
    from synthperf.kernels.triton.discrete_score import pfode_step_triton

    _check_common(z, data, "z")
    _check_coef(z, coef, "coef")
    _check_coef(z, coef_next, "coef_next")
    zc, y = z.contiguous(), data.contiguous()
    keys = ("s", "r", "a", "gamma")
    c0 = {k: coef[i].to(z.dtype).contiguous() for i, k in enumerate(keys)}
    c1 = {k: coef_next[i].to(z.dtype).contiguous() for i, k in enumerate(keys)}
    z_next, f_buf, zp_buf = torch.empty_like(zc), torch.empty_like(zc), torch.empty_like(zc)
    dbar, score = torch.empty_like(zc), torch.empty_like(zc)
    if zc.shape[0]:
        with _device_guard(zc):
            pfode_step_triton(zc, y, c0, c1, float(dt), bool(heun), bool(clamp), z_next, f_buf, zp_buf, dbar, score)
    else:
        z_next.copy_(zc)
    return z_next, dbar, score
