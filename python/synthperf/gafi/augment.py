"""Classifier augmentation (spec section 2) and optional DiffAugment for the GAN.

All functions are batched (no per-sample Python loop), take images (N, C, H, W) and an
explicit ``torch.Generator`` so a run is reproducible and resumable, and return a new
tensor of the same shape and dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["random_flip", "random_pad_crop", "noise_cutout", "augment_batch", "diff_augment"]


def _rand(shape, g: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device="cpu").to(device)


def random_flip(x: torch.Tensor, g: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Horizontal flip of each image independently with probability ``p``."""
    flip = _rand((x.shape[0],), g, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_pad_crop(x: torch.Tensor, g: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """Zero-pad ``padding`` px, then crop back to H x W at a uniform random offset per image.

    The fill is 0 even though data lie in [-1, 1] (upstream legacy behaviour, spec section 2).
    """
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding), value=0.0)
    off = (torch.randint(0, 2 * padding + 1, (n, 2), generator=g, device="cpu")).to(x.device)
    rows = off[:, 0:1] + torch.arange(h, device=x.device)  # (n, h)
    cols = off[:, 1:2] + torch.arange(w, device=x.device)  # (n, w)
    bidx = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def noise_cutout(x: torch.Tensor, g: torch.Generator | None = None,
                 size_range: tuple[float, float] = (0.2, 0.5)) -> torch.Tensor:
    """Random erasing with noise fill, applied to every image (keras_cv RandomCutout, spec section 2).

    Height = ceil(U(lo,hi)*H), width = ceil(U(lo,hi)*W), sampled independently; the centre is a
    uniform integer pixel; the rectangle [c - s//2, c - s//2 + s) is clipped at the borders. The
    fill is per-image Gaussian noise min-max rescaled to that image's [min, max].
    """
    n, c, h, w = x.shape
    lo, hi = size_range
    u = _rand((n, 2), g, x.device) * (hi - lo) + lo
    rh = torch.ceil(u[:, 0] * h).long()
    rw = torch.ceil(u[:, 1] * w).long()
    cy = torch.randint(0, h, (n,), generator=g).to(x.device)
    cx = torch.randint(0, w, (n,), generator=g).to(x.device)
    y0, x0 = cy - rh // 2, cx - rw // 2
    ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (ar_h[None] >= y0[:, None]) & (ar_h[None] < (y0 + rh)[:, None])
    in_x = (ar_w[None] >= x0[:, None]) & (ar_w[None] < (x0 + rw)[:, None])
    mask = (in_y[:, :, None] & in_x[:, None, :])[:, None]  # (n, 1, h, w)
    noise = torch.randn(x.shape, generator=g, device="cpu").to(x.device, x.dtype)
    flat_n = noise.reshape(n, -1)
    nmin, nmax = flat_n.min(1).values, flat_n.max(1).values
    flat_x = x.reshape(n, -1)
    xmin, xmax = flat_x.min(1).values, flat_x.max(1).values
    scale = (xmax - xmin) / (nmax - nmin).clamp_min(1e-12)
    fill = (noise - nmin[:, None, None, None]) * scale[:, None, None, None] + xmin[:, None, None, None]
    return torch.where(mask, fill, x)


def augment_batch(x: torch.Tensor, g: torch.Generator | None, *, flip: bool = True, crop: bool = True,
                  erasing: bool = True, crop_padding: int = 4) -> torch.Tensor:
    """The training-time pipeline in upstream order: flip -> pad-crop -> noise cutout."""
    if flip:
        x = random_flip(x, g)
    if crop:
        x = random_pad_crop(x, g, crop_padding)
    if erasing:
        x = noise_cutout(x, g)
    return x


def diff_augment(x: torch.Tensor, g: torch.Generator | None, policy: str = "color,translation,cutout"
                 ) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020), differentiable; an addition beyond upstream (off by default).

    ``policy`` is a comma list of ``color`` (brightness/saturation/contrast), ``translation``
    (1/8 of the size, zero fill) and ``cutout`` (a half-size zero square).
    """
    n = x.shape[0]
    for p in [s.strip() for s in policy.split(",") if s.strip()]:
        if p == "color":
            x = x + (_rand((n, 1, 1, 1), g, x.device) - 0.5)
            m = x.mean(1, keepdim=True)
            x = (x - m) * (_rand((n, 1, 1, 1), g, x.device) * 2) + m
            m = x.mean((1, 2, 3), keepdim=True)
            x = (x - m) * (_rand((n, 1, 1, 1), g, x.device) + 0.5) + m
        elif p == "translation":
            h, w = x.shape[2:]
            sh, sw = max(int(h * 0.125 + 0.5), 1), max(int(w * 0.125 + 0.5), 1)
            ty = torch.randint(-sh, sh + 1, (n,), generator=g).to(x.device)
            tx = torch.randint(-sw, sw + 1, (n,), generator=g).to(x.device)
            xp = F.pad(x, (sw, sw, sh, sh))
            rows = (torch.arange(h, device=x.device)[None] + sh - ty[:, None])
            cols = (torch.arange(w, device=x.device)[None] + sw - tx[:, None])
            b = torch.arange(n, device=x.device)[:, None, None]
            x = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        elif p == "cutout":
            h, w = x.shape[2:]
            ch, cw = max(int(h * 0.5 + 0.5), 1), max(int(w * 0.5 + 0.5), 1)
            oy = torch.randint(0, h + (1 - ch % 2), (n,), generator=g).to(x.device) - ch // 2
            ox = torch.randint(0, w + (1 - cw % 2), (n,), generator=g).to(x.device) - cw // 2
            ar_h, ar_w = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
            my = (ar_h[None] >= oy[:, None]) & (ar_h[None] < (oy + ch)[:, None])
            mx = (ar_w[None] >= ox[:, None]) & (ar_w[None] < (ox + cw)[:, None])
            x = x * (~(my[:, :, None] & mx[:, None, :]))[:, None].to(x.dtype)
        else:
            raise ValueError(f"diff_augment policy has unknown op {p!r}; use color, translation, cutout")
    return x.contiguous()
