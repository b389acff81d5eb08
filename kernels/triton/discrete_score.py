"""Triton kernel: fused discrete (empirical) score with optional Euler/Heun particle update.

specs/inflationary_flows.md §3 and §9 ("Fused discrete-score kernel"). One program owns
BLOCK_M particles and streams the reference points Y in BLOCK_N tiles, flash-attention
style: logits l = -1/2 sum_c (u_c - y_c)^2 / gamma_c from direct differences (no
cancellation when gamma is small), then either the upstream 1e-30 weight clamp or an online
softmax (running max m, sum l, accumulator acc = sum w (y - u)). The epilogue forms
D = u + acc/l and score = acc/(l gamma), and optionally the pfODE update

    f = r z + a (z - s D)                 (r = s'/s, a = gamma'/(2 gamma), per dimension)
    STEP == 1:  z_out = z + dt f          (Euler, or the Heun predictor; f is written too)
    STEP == 2:  z_out = z0 + dt/2 (f0 + f)   (Heun corrector, evaluated at the predictor z)

so a whole Euler step is one launch and a Heun step two. Runs on CUDA tensors, or on CPU
tensors under ``TRITON_INTERPRET=1`` (set before import).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# ln(1e-30), the upstream clamp (§3). A constexpr: compiled Triton only reads constexpr globals.
CLAMP_LOGIT = tl.constexpr(-69.07755278982137)


@triton.jit
def discrete_score_kernel(
    z_ptr,      # [M, D] state: the scaled particle z (STEP >= 1) or the query u (STEP == 0, s = 1)
    y_ptr,      # [N, D] reference points Y (eigen-space), row-major
    s_ptr,      # [D] scale s at this time (ones for STEP == 0)
    r_ptr,      # [D] s'/s            (STEP >= 1)
    a_ptr,      # [D] gamma'/(2 gamma) (STEP >= 1)
    g_ptr,      # [D] gamma
    z0_ptr,     # [M, D] Heun: state at the start of the step (STEP == 2)
    f0_ptr,     # [M, D] Heun: slope at the start of the step (STEP == 2)
    zout_ptr,   # [M, D] updated state (STEP >= 1)
    fout_ptr,   # [M, D] slope f at z (STEP == 1)
    dbar_ptr,   # [M, D] denoiser D (WRITE_AUX)
    score_ptr,  # [M, D] score (D - u)/gamma (WRITE_AUX)
    M, N, dt_ptr,  # dt_ptr: [1] step size in the state's dtype (a Python float would be fp32)
    D: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    CLAMP: tl.constexpr, STEP: tl.constexpr, WRITE_AUX: tl.constexpr,
):
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask_m = offs_m < M
    mask_d = offs_d < D
    mask_md = mask_m[:, None] & mask_d[None, :]
    idx_md = offs_m[:, None] * D + offs_d[None, :]
    z = tl.load(z_ptr + idx_md, mask=mask_md, other=0.0)
    s = tl.load(s_ptr + offs_d, mask=mask_d, other=1.0)
    g = tl.load(g_ptr + offs_d, mask=mask_d, other=1.0)
    hinv = tl.where(mask_d, 0.5 / g, 0.0)
    u = z / s[None, :]

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=z.dtype)
    l_i = tl.zeros([BLOCK_M], dtype=z.dtype)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=z.dtype)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        y = tl.load(y_ptr + offs_n[:, None] * D + offs_d[None, :],
                    mask=mask_n[:, None] & mask_d[None, :], other=0.0)
        diff = y[None, :, :] - u[:, None, :]                         # [BM, BN, BD] = y - u
        logit = -tl.sum(diff * diff * hinv[None, None, :], axis=2)  # [BM, BN]
        if CLAMP:
            w = tl.exp(tl.maximum(logit, CLAMP_LOGIT))
            w = tl.where(mask_n[None, :], w, 0.0)
            l_i += tl.sum(w, axis=1)
            acc += tl.sum(w[:, :, None] * diff, axis=1)
        else:
            logit = tl.where(mask_n[None, :], logit, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(logit, axis=1))
            alpha = tl.exp(m_i - m_new)
            p = tl.exp(logit - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * diff, axis=1)
            m_i = m_new
    off = acc / l_i[:, None]
    dbar = u + off
    if WRITE_AUX:
        tl.store(dbar_ptr + idx_md, dbar, mask=mask_md)
        tl.store(score_ptr + idx_md, off / g[None, :], mask=mask_md)
    if STEP >= 1:
        r = tl.load(r_ptr + offs_d, mask=mask_d, other=0.0)
        a = tl.load(a_ptr + offs_d, mask=mask_d, other=0.0)
        f = r[None, :] * z + a[None, :] * (z - s[None, :] * dbar)
        dt = tl.load(dt_ptr)
        if STEP == 1:
            tl.store(fout_ptr + idx_md, f, mask=mask_md)
            tl.store(zout_ptr + idx_md, z + dt * f, mask=mask_md)
        else:
            z0 = tl.load(z0_ptr + idx_md, mask=mask_md, other=0.0)
            f0 = tl.load(f0_ptr + idx_md, mask=mask_md, other=0.0)
            tl.store(zout_ptr + idx_md, z0 + 0.5 * dt * (f0 + f), mask=mask_md)


def _blocks(d: int) -> tuple[int, int, int]:
    block_d = triton.next_power_of_2(max(d, 1))
    block_m = 32 if block_d <= 16 else 16
    block_n = max(16, min(128, 8192 // (block_m * block_d)))
    return block_d, block_m, block_n


def discrete_score_triton(u: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor, clamp: bool,
                          dbar: torch.Tensor, score: torch.Tensor) -> None:
    """D and score at queries ``u`` [M, d] against ``y`` [N, d] with ``gamma`` [d].

    All tensors contiguous, one device, one float dtype; ``dbar``/``score`` [M, d] are written.
    """
    M, d = u.shape
    block_d, block_m, block_n = _blocks(d)
    ones = torch.ones(d, dtype=u.dtype, device=u.device)
    grid = (triton.cdiv(M, block_m),)
    discrete_score_kernel[grid](
        u, y, ones, ones, ones, gamma, u, u, u, u, dbar, score, M, y.shape[0], ones,
        D=d, BLOCK_D=block_d, BLOCK_M=block_m, BLOCK_N=block_n, CLAMP=clamp, STEP=0, WRITE_AUX=True)


def pfode_step_triton(z: torch.Tensor, y: torch.Tensor, coef: dict, coef_next: dict, dt: float,
                      heun: bool, clamp: bool, z_out: torch.Tensor, f_buf: torch.Tensor,
                      zp_buf: torch.Tensor, dbar: torch.Tensor | None = None,
                      score: torch.Tensor | None = None) -> torch.Tensor:
    """One fused pfODE step (Euler: one launch; Heun: two). ``coef``/``coef_next`` hold [d]
    tensors ``s, r, a, gamma`` at t and t + dt. D/score at (z, t) go to ``dbar``/``score``
    when given. Returns ``z_out``."""
    M, d = z.shape
    block_d, block_m, block_n = _blocks(d)
    grid = (triton.cdiv(M, block_m),)
    aux = dbar is not None
    dt_t = torch.full((1,), float(dt), dtype=z.dtype, device=z.device)
    first_out = zp_buf if heun else z_out
    discrete_score_kernel[grid](
        z, y, coef["s"], coef["r"], coef["a"], coef["gamma"], z, z, first_out, f_buf,
        dbar if aux else z, score if aux else z, M, y.shape[0], dt_t,
        D=d, BLOCK_D=block_d, BLOCK_M=block_m, BLOCK_N=block_n, CLAMP=clamp, STEP=1, WRITE_AUX=aux)
    if heun:
        discrete_score_kernel[grid](
            zp_buf, y, coef_next["s"], coef_next["r"], coef_next["a"], coef_next["gamma"], z, f_buf,
            z_out, f_buf, z, z, M, y.shape[0], dt_t,
            D=d, BLOCK_D=block_d, BLOCK_M=block_m, BLOCK_N=block_n, CLAMP=clamp, STEP=2, WRITE_AUX=False)
    return z_out
