"""Networks for inflationary flows: EDM-style per-eigendimension preconditioning (§2.1),
a toy MLP for [B, d] data and a small EDM-like image UNet.

Preconditioning (net input u is the unscaled particle in eigen-space, u = y + n with
n ~ N(0, diag gamma(t))):

    c_skip = xi / (xi + gamma),  c_out = sqrt(xi gamma / (xi + gamma)),  c_in = 1 / sqrt(xi + gamma)
    c_noise = (M - 1) t with M = 1000,   loss weight_i = 1 / c_out_i

ES nets: D = c_skip u + c_out F(c_in u, c_noise). IS nets (images): the backbone sees
W (c_in u) reshaped to the image and D_ES = c_skip u + c_out (W^T F_IS). :class:`IFsPrecond`
always returns D in eigen-space [B, d].
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike
import torch
from torch import nn

from .schedules import InflationSchedule

C_NOISE_M = 1000


class FourierEmbedding(nn.Module):
    """[cos, sin](2 pi f c) with fixed random frequencies f ~ N(0, scale^2); c [B] -> [B, channels]."""

    def __init__(self, channels: int, scale: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(channels // 2, generator=g) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        x = torch.outer(c, (2 * math.pi * self.freqs).to(c.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class PositionalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of c_noise (EDM's ``PositionalEmbedding``)."""

    def __init__(self, channels: int, max_positions: int = 10000) -> None:
        super().__init__()
        self.channels, self.max_positions = channels, max_positions

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        half = self.channels // 2
        freqs = (1 / self.max_positions) ** (torch.arange(half, dtype=torch.float32, device=c.device) / half)
        x = torch.outer(c.float(), freqs)
        return torch.cat([x.cos(), x.sin()], dim=1).to(c.dtype)


class ToyMLP(nn.Module):
    """Toy backbone F(x [B, d], c_noise [B]) -> [B, d]: residual SiLU MLP with an additive time
    embedding in every block; the output layer starts at ~0 (xavier x 1e-5, as upstream).

    The input is augmented with ``fourier_features`` random Fourier features [sin, cos](2 pi x B),
    B ~ N(0, fourier_scale^2) (fixed, seeded): plain MLPs learn the sharp structure of toy
    denoisers (ring widths ~0.1) very slowly; with these a short CPU run gets close to the
    ideal loss. ``fourier_features=0`` gives the plain MLP.

    ``num_classes > 0`` makes it class-conditional: a learned label embedding [num_classes, width]
    is added to the time embedding, and ``forward`` then needs ``labels`` (int64 [B]).
    """

    def __init__(self, data_dim: int, *, width: int = 128, depth: int = 3, emb_dim: int = 64,
                 fourier_features: int = 64, fourier_scale: float = 2.0, num_classes: int = 0) -> None:
        super().__init__()
        self.data_dim = data_dim
        self.num_classes = _num_classes(num_classes)
        self.config = {"data_dim": data_dim, "width": width, "depth": depth, "emb_dim": emb_dim,
                       "fourier_features": fourier_features, "fourier_scale": fourier_scale,
                       "num_classes": self.num_classes}
        g = torch.Generator().manual_seed(1)
        self.register_buffer("fourier_B", torch.randn(data_dim, fourier_features, generator=g) * fourier_scale)
        self.embed = PositionalEmbedding(emb_dim)
        self.emb_mlp = nn.Sequential(nn.Linear(emb_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Linear(data_dim + 2 * fourier_features, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
                                    for _ in range(depth))
        self.emb_proj = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, data_dim)
        self.label_emb = nn.Embedding(self.num_classes, width) if self.num_classes else None
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.out.weight.mul_(1e-5)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.emb_mlp(self.embed(c_noise / C_NOISE_M * 100.0))  # c_noise up to ~15000: rescale to ~[0, 1500]
        emb = _add_label(emb, self.label_emb, labels, self.num_classes)
        proj = 2 * math.pi * x @ self.fourier_B.to(x.dtype)
        h = self.inp(torch.cat([x, proj.sin(), proj.cos()], dim=1))
        for block, proj in zip(self.blocks, self.emb_proj):
            h = h + block(h + proj(emb))
        return self.out(h)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.norm0 = nn.GroupNorm(min(32, cin // 4) or 1, cin)
        self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = nn.Linear(emb, cout)
        self.norm1 = nn.GroupNorm(min(32, cout // 4) or 1, cout)
        self.drop = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv1.weight)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(nn.functional.silu(self.norm0(x)))
        h = h + self.affine(emb)[:, :, None, None]
        h = self.conv1(self.drop(nn.functional.silu(self.norm1(h))))
        return (h + self.skip(x)) / math.sqrt(2)


class SmallUNet(nn.Module):
    """EDM-like image UNet F(x [B, C, R, R], c_noise [B]) -> [B, C, R, R].

    ``channels`` base width, ``mults`` per-resolution multipliers (R must be divisible by
    2^(len(mults)-1)), ``blocks`` residual blocks per level. Trains on 8x8 digits (mults
    (1, 2)) and 32x32 images (mults (1, 2, 2)); the output conv is zero-initialised.
    ``num_classes > 0``: class-conditional (label embedding added to the time embedding, as
    EDM's ``label_dim``); ``forward`` then needs ``labels`` (int64 [B]).
    """

    def __init__(self, in_channels: int = 1, resolution: int = 8, *, channels: int = 32,
                 mults: Sequence[int] = (1, 2), blocks: int = 1, emb_dim: int = 128, dropout: float = 0.0,
                 num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = _num_classes(num_classes)
        if resolution % (2 ** (len(mults) - 1)):
            raise ValueError(f"resolution {resolution} must be divisible by 2^(len(mults)-1) = {2 ** (len(mults) - 1)}")
        self.config = {"in_channels": in_channels, "resolution": resolution, "channels": channels,
                       "mults": list(mults), "blocks": blocks, "emb_dim": emb_dim, "dropout": dropout,
                       "num_classes": self.num_classes}
        self.in_channels, self.resolution = in_channels, resolution
        self.embed = PositionalEmbedding(channels)
        self.emb_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim), nn.SiLU())
        self.label_emb = nn.Embedding(self.num_classes, emb_dim) if self.num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        widths, cur = [channels], channels
        for level, m in enumerate(mults):
            for _ in range(blocks):
                self.down.append(_ResBlock(cur, channels * m, emb_dim, dropout))
                cur = channels * m
                widths.append(cur)
            if level < len(mults) - 1:
                self.down.append(nn.AvgPool2d(2))
                widths.append(cur)
        self.mid = _ResBlock(cur, cur, emb_dim, dropout)
        self.up = nn.ModuleList()
        for level, m in reversed(list(enumerate(mults))):
            for _ in range(blocks + 1):
                self.up.append(_ResBlock(cur + widths.pop(), channels * m, emb_dim, dropout))
                cur = channels * m
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = nn.GroupNorm(min(32, cur // 4) or 1, cur)
        self.conv_out = nn.Conv2d(cur, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = _add_label(self.emb_mlp(self.embed(c_noise / C_NOISE_M * 100.0)), self.label_emb, labels,
                         self.num_classes)
        h = self.conv_in(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, _ResBlock) else layer(h)
            skips.append(h)
        h = self.mid(h, emb)
        for layer in self.up:
            if isinstance(layer, _ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(nn.functional.silu(self.norm_out(h)))


def _num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    return int(num_classes)


def _add_label(emb: torch.Tensor, table: nn.Module | None, labels: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """emb [B, E] + label_emb(labels) for a conditional backbone; validates ``labels`` (int [B])."""
    if table is None:
        if labels is not None:
            raise ValueError("labels given but the backbone is unconditional (num_classes = 0)")
        return emb
    if labels is None:
        raise ValueError(f"this backbone is class-conditional (num_classes = {num_classes}): pass labels [B]")
    labels = torch.as_tensor(labels, device=emb.device)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    labels = labels.reshape(-1).long()
    if labels.shape[0] != emb.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries, expected the batch size {emb.shape[0]}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
    return emb + table(labels).to(emb.dtype)


class IFsPrecond(nn.Module):
    """Preconditioned denoiser D(u_es [B, d], t [B]) -> (D_es [B, d], weight [B, d]) (§2.1).

    space="ES": the backbone maps [B, d] -> [B, d]. space="IS": the backbone maps images
    [B, *image_shape] (prod = d) and W rotates in and out. Schedule quantities (xi, g, gamma0,
    rho, W) are buffers, so they travel with the state dict. ``W``: the eigenbasis [d, d] (columns
    the eigenvectors, from :func:`~synthperf.flows.schedules.pca_eigenbasis`), stored float32.

    ``xi_min`` floors the eigenvalues used by the preconditioner (default 1e-6): constant pixels
    (e.g. the blank corners of the digits) have xi = 0, which makes c_out = 0 and the loss
    weight infinite (spec §2.4 "numerical risk"). Set it to 0 for the exact upstream formula.

    ``data_mean`` (float64 [d] in image space, or None): set when the net was trained on centred
    data x - data_mean (a deviation from spec §1.3, which does not subtract the mean; used by
    :mod:`synthperf.flows.digits`). The network itself never applies it: callers centre inputs
    and add it back to outputs (:func:`synthperf.flows.api.simulate` does).
    """

    def __init__(self, backbone: nn.Module, schedule: InflationSchedule, W: ArrayLike, *, space: str = "ES",
                 image_shape: Sequence[int] | None = None, xi_min: float = 1e-6, data_mean: ArrayLike | None = None
                 ) -> None:
        super().__init__()
        if space not in ("ES", "IS"):
            raise ValueError(f"space must be 'ES' or 'IS', got {space!r}")
        W = np.asarray(W, dtype=np.float64)
        d = schedule.data_dim
        if W.shape != (d, d):
            raise ValueError(f"W has shape {W.shape}, expected {(d, d)}")
        if space == "IS" and (image_shape is None or int(np.prod(image_shape)) != d):
            raise ValueError(f"space='IS' needs image_shape with prod = data_dim = {d}, got {image_shape}")
        if schedule.form != "code":
            raise ValueError("IFsPrecond follows the code-form schedule (§1.2); got form='paper'")
        self.backbone, self.schedule, self.space = backbone, schedule, space
        self.image_shape = tuple(image_shape) if image_shape is not None else None
        if xi_min < 0:
            raise ValueError(f"xi_min must be >= 0, got {xi_min}")
        self.xi_min = float(xi_min)
        self.register_buffer("xi", torch.tensor(np.maximum(schedule.xi, xi_min), dtype=torch.float32))
        self.register_buffer("g", torch.tensor(schedule.g, dtype=torch.float32))
        self.register_buffer("W", torch.tensor(W, dtype=torch.float32))
        if data_mean is not None:
            data_mean = np.asarray(data_mean, dtype=np.float64).reshape(-1)
            if data_mean.shape != (d,) or not np.isfinite(data_mean).all():
                raise ValueError(f"data_mean must be a finite vector of length data_dim = {d}, got shape {data_mean.shape}")
        self.data_mean = data_mean

    def coefficients(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """c_skip, c_out, c_in [B, d] and c_noise [B] at times t [B]."""
        t = t.to(self.xi.dtype)
        gamma = self.schedule.gamma0 * torch.exp(self.schedule.rho * (1 + self.g)[None, :] * t[:, None])
        xi = self.xi[None, :]
        return {"c_skip": xi / (xi + gamma), "c_out": torch.sqrt(xi * gamma / (xi + gamma)),
                "c_in": torch.rsqrt(xi + gamma), "c_noise": (C_NOISE_M - 1) * t, "gamma": gamma}

    @property
    def num_classes(self) -> int:
        """Number of classes of a class-conditional backbone (0 = unconditional)."""
        return int(getattr(self.backbone, "num_classes", 0))

    def forward(self, u: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """u [B, d] (ES), t [B] or scalar, labels int64 [B] for a conditional backbone."""
        if u.ndim != 2 or u.shape[1] != self.xi.shape[0]:
            raise ValueError(f"u must be [B, {self.xi.shape[0]}] (eigen-space), got {tuple(u.shape)}")
        u = u.to(self.xi.dtype)
        c = self.coefficients(t.reshape(-1).expand(u.shape[0]) if t.numel() == 1 else t.reshape(-1))
        x_in = c["c_in"] * u
        extra = () if labels is None else (labels,)
        if self.space == "ES":
            F = self.backbone(x_in, c["c_noise"], *extra)
        else:
            img = (x_in @ self.W.T).reshape(u.shape[0], *self.image_shape)
            F = self.backbone(img, c["c_noise"], *extra).reshape(u.shape[0], -1) @ self.W
        D = c["c_skip"] * u + c["c_out"] * F
        return D, 1.0 / c["c_out"]

    def denoise(self, u: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D only (the callable :class:`~synthperf.flows.pfode.DenoiserFlow` expects)."""
        return self.forward(u, t, labels)[0]


def build_backbone(kind: str, config: dict) -> nn.Module:
    """Rebuild a backbone from its ``config`` (used by checkpoints)."""
    if kind == "ToyMLP":
        c = dict(config)
        return ToyMLP(c.pop("data_dim"), **c)
    if kind == "SmallUNet":
        c = dict(config)
        return SmallUNet(c.pop("in_channels"), c.pop("resolution"), **c)
    raise ValueError(f"unknown backbone kind {kind!r}: expected 'ToyMLP' or 'SmallUNet'")
