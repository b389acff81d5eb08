"""Conditional BigGAN-deep generator and projection discriminator (spec section 3, StudioGAN variant).

Shapes: ``Generator(z (N, latent_dim), y (N,) int64) -> images (N, C, S, S)`` in [-1, 1] (tanh);
``Discriminator(x (N, C, S, S), y (N,)) -> scores (N,)``. ``S = 4 * 2**k`` (k >= 1), so
8x8 digits work (one upsampling stage) as well as 32x32 CIFAR (three).

Spectral norm (``torch.nn.utils.parametrizations.spectral_norm``: one power iteration per
training forward, none in eval mode) wraps every conv/linear of G and D and D's projection
embedding; those layers get orthogonal init. The persistent ``_u``/``_v`` vectors are buffers,
so the EMA generator averages them along with the BN statistics.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["GANConfig", "Generator", "Discriminator", "SelfAttention", "ConditionalBatchNorm"]


@dataclass
class GANConfig:
    """Architecture keys of ``BigGAN_deep.yaml`` MODEL (defaults: upstream CIFAR 32x32)."""

    image_size: int = 32
    channels: int = 3
    num_classes: int = 10
    latent_dim: int = 128
    shared_dim: int = 128
    g_conv_dim: int = 128
    g_depth: int = 2
    apply_g_attn: bool = True
    g_attn_res: int | None = None  # default image_size // 2 (16 at 32x32)
    d_conv_dim: int = 128
    d_depth: int = 2
    apply_d_attn: bool = True

    def __post_init__(self) -> None:
        k = math.log2(self.image_size / 4) if self.image_size >= 8 else 0
        if self.image_size < 8 or k != int(k):
            raise ValueError(f"image_size must be 4 * 2**k with k >= 1 (8, 16, 32, ...), got {self.image_size}")
        for name in ("channels", "num_classes", "latent_dim", "shared_dim", "g_depth", "d_depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("g_conv_dim", "d_conv_dim"):
            if int(getattr(self, name)) < 4:
                raise ValueError(f"{name} must be >= 4 (attention needs C/8 channels), got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


def _sn(layer: nn.Module) -> nn.Module:
    nn.init.orthogonal_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return spectral_norm(layer, eps=1e-6)


def sn_conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Module:
    return _sn(nn.Conv2d(cin, cout, k, 1, k // 2, bias=bias))


def sn_linear(fin: int, fout: int, bias: bool = True) -> nn.Module:
    return _sn(nn.Linear(fin, fout, bias=bias))


class ConditionalBatchNorm(nn.Module):
    """BN without affine, scaled by ``1 + SNLinear(c)`` and shifted by ``SNLinear(c)`` (no biases)."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False, eps=1e-5, momentum=0.1)
        self.gain = sn_linear(cond_dim, channels, bias=False)
        self.bias = sn_linear(cond_dim, channels, bias=False)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        g = 1.0 + self.gain(c)
        b = self.bias(c)
        return self.bn(x) * g[:, :, None, None] + b[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN/BigGAN self-attention: out = x + sigma * conv(g . softmax(theta^T phi)), sigma init 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c8, c2 = max(channels // 8, 1), max(channels // 2, 1)
        self.theta = sn_conv(channels, c8, 1, bias=False)
        self.phi = sn_conv(channels, c8, 1, bias=False)
        self.g = sn_conv(channels, c2, 1, bias=False)
        self.o = sn_conv(c2, channels, 1, bias=False)
        self.sigma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        theta = self.theta(x).flatten(2)                      # (n, c8, hw)
        pool = 2 if (h >= 2 and w >= 2) else 1
        phi = F.max_pool2d(self.phi(x), pool).flatten(2)      # (n, c8, hw/4)
        g = F.max_pool2d(self.g(x), pool).flatten(2)          # (n, c2, hw/4)
        beta = torch.softmax(theta.transpose(1, 2) @ phi, dim=-1)  # (n, hw, hw/4)
        o = (g @ beta.transpose(1, 2)).view(n, -1, h, w)
        return x + self.sigma * self.o(o)


class _GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, cond_dim: int, upsample: bool) -> None:
        super().__init__()
        hidden = max(cin // 4, 1)  # bottleneck ratio 4
        self.bn1, self.conv1 = ConditionalBatchNorm(cin, cond_dim), sn_conv(cin, hidden, 1)
        self.bn2, self.conv2 = ConditionalBatchNorm(hidden, cond_dim), sn_conv(hidden, hidden, 3)
        self.bn3, self.conv3 = ConditionalBatchNorm(hidden, cond_dim), sn_conv(hidden, hidden, 3)
        self.bn4, self.conv4 = ConditionalBatchNorm(hidden, cond_dim), sn_conv(hidden, cout, 1)
        self.skip = sn_conv(cin, cout, 1)  # StudioGAN variant: always a 1x1 SN conv
        self.upsample = upsample

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(self.bn1(x, c)))
        h = F.relu(self.bn2(h, c))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv2(h)
        h = self.conv3(F.relu(self.bn3(h, c)))
        h = self.conv4(F.relu(self.bn4(h, c)))
        return h + self.skip(x)


class Generator(nn.Module):
    """BigGAN-deep G: c = [z, embed(y)] feeds the first linear and every CBN (spec section 3)."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = 4 * cfg.g_conv_dim
        cond = cfg.latent_dim + cfg.shared_dim
        self.num_classes, self.latent_dim = cfg.num_classes, cfg.latent_dim
        self.shared = nn.Embedding(cfg.num_classes, cfg.shared_dim)
        # N(0, 1) (PyTorch/StudioGAN default). The Keras default U(+-0.05) makes the class part of
        # c ~20x weaker than z, so G starts (and on small budgets stays) label-blind (issue 13).
        nn.init.normal_(self.shared.weight, 0.0, 1.0)
        self.linear = sn_linear(cond, ch * 16)
        n_stages = int(math.log2(cfg.image_size // 4))
        attn_res = cfg.g_attn_res or cfg.image_size // 2
        self.attn_before = SelfAttention(ch) if (cfg.apply_g_attn and attn_res == 4) else None
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        res = 4
        for s in range(n_stages):
            for b in range(cfg.g_depth):
                self.blocks.append(_GBlock(ch, ch, cond, upsample=(b == cfg.g_depth - 1)))
            res *= 2
            if cfg.apply_g_attn and res == attn_res:
                self.attn[str(len(self.blocks) - 1)] = SelfAttention(ch)
        self.out_bn = nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1)
        self.out_conv = sn_conv(ch, cfg.channels, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = torch.cat([z, self.shared(y)], dim=1)
        h = self.linear(c).view(z.shape[0], -1, 4, 4)
        if self.attn_before is not None:
            h = self.attn_before(h)
        for i, block in enumerate(self.blocks):
            h = block(h, c)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class _DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, first: bool) -> None:
        super().__init__()
        hidden = max(cout // 4, 1)
        self.conv1, self.conv2 = sn_conv(cin, hidden, 1), sn_conv(hidden, hidden, 3)
        self.conv3, self.conv4 = sn_conv(hidden, hidden, 3), sn_conv(hidden, cout, 1)
        self.downsample, self.first = downsample, first
        self.skip = sn_conv(cin, cout, 1) if (first or downsample or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        h = self.conv3(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        h = self.conv4(F.relu(h))
        s = x
        if self.first:  # first block: avg-pool, then 1x1 conv
            s = self.skip(F.avg_pool2d(s, 2) if self.downsample else s)
        elif self.skip is not None:  # otherwise: 1x1 conv, then avg-pool
            s = self.skip(s)
            if self.downsample:
                s = F.avg_pool2d(s, 2)
        return h + s


class Discriminator(nn.Module):
    """BigGAN-deep projection D: sum-pooled features -> SN-linear + <SN-embed(y), h>."""

    def __init__(self, cfg: GANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        ch = 4 * cfg.d_conv_dim
        self.input_conv = sn_conv(cfg.channels, cfg.d_conv_dim, 3)
        n_down = min(max(int(math.log2(cfg.image_size)) - 3, 1), 3)  # 32: 32->16->8->8; 8: 8->4->4->4
        blocks, cin = [], cfg.d_conv_dim
        self.attn_after = None
        for s in range(3):
            for b in range(cfg.d_depth):
                blocks.append(_DBlock(cin, ch, downsample=(b == 0 and s < n_down), first=(s == 0 and b == 0)))
                cin = ch
            if s == 0 and cfg.apply_d_attn:
                self.attn_after = len(blocks) - 1
        self.blocks = nn.ModuleList(blocks)
        self.attn = SelfAttention(ch) if cfg.apply_d_attn else None
        self.linear = sn_linear(ch, 1)
        self.embed = _sn(nn.Embedding(cfg.num_classes, ch))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.input_conv(x)
        for i, block in enumerate(self.blocks):
            h = block(h)
            if self.attn is not None and i == self.attn_after:
                h = self.attn(h)
        h = F.relu(h).sum((2, 3))
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(1)
