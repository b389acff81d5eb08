"""Conditional GAN training (spec section 3): hinge loss, Adam, D:G step ratio, EMA generator.

Per iteration one real "basket" of ``batch_size * d_updates_per_step`` images is drawn
(drop_remainder). With ``split_batch_d_steps=False`` (upstream) each of the D updates sees the
whole basket plus as many fresh fakes (fake labels = basket labels); then G takes
``g_updates_per_step`` steps on fresh z. The EMA generator is a copy of G for iterations
``1..g_ema_start`` and ``EMA <- d*EMA + (1-d)*G`` afterwards over *all* state (weights, BN
statistics, SN ``u``/``v`` vectors). After every epoch the EMA generator is checkpointed to
``<out>/checkpoints/ema_generator_epoch{NNN}`` and the full state to ``<out>/last_epoch/state``.

**Standing statistics** (spec section 3, upstream ``apply_standing_stats``; off by default as
upstream): with ``standing_stats = B > 0`` every checkpointed sampler is
:func:`apply_standing_stats` of the EMA generator: spectral-norm vectors re-converged on the EMA
weights, BatchNorm running statistics re-estimated over ``B`` forward passes of
``batch_size * d_updates_per_step`` samples (RNG seeded by ``(seed, epoch)``, so resume is
exact). The EMA of G's running statistics and of its unit SN vectors describes none of the
averaged weights: on 8x8 digits (demo preset) the eval-mode EMA generator's samples agreed with
their labels 74% of the time (a real-data ResNet-20 judge), 98% with standing statistics
(issue 13). The EMA itself (and training) is unchanged.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ..progress import progress_task
from .._threads import ThreadGovernor
from .._io import CheckpointError, checkpoint_exists, load_checkpoint, load_state_into, save_checkpoint
from .augment import diff_augment, random_flip
from .classifier import ordered_rows
from .data import ImageData
from .gan import Discriminator, GANConfig, Generator

__all__ = ["GANTrainConfig", "GANResult", "train_gan", "hinge_d_loss", "hinge_g_loss", "ema_update",
           "load_generator", "ema_checkpoint_path", "available_checkpoint_epochs", "apply_standing_stats"]

#: keys of a :func:`train_gan` history row, in the order an epoch inserts them
GAN_HISTORY_KEYS = ("epoch", "iterations", "d_loss", "g_loss", "seconds")


@dataclass
class GANTrainConfig:
    """OPTIMIZATION/MODEL/RUN keys of ``BigGAN_deep.yaml`` that drive training."""

    epochs: int = 500
    batch_size: int = 64
    d_updates_per_step: int = 3
    g_updates_per_step: int = 1
    split_batch_d_steps: bool = False
    random_labels: bool = False
    g_lr: float = 2e-4
    g_beta1: float = 0.5
    g_beta2: float = 0.999
    d_lr: float = 2e-4
    d_beta1: float = 0.5
    d_beta2: float = 0.999
    adam_eps: float = 1e-6
    apply_g_ema: bool = True
    g_ema_decay: float = 0.9999
    g_ema_start: int = 1000
    horizontal_flip: bool = True
    diff_augment: str | None = None  # e.g. "color,translation,cutout"; beyond upstream
    standing_stats: int = 0  # batches for standing BN statistics of each checkpointed sampler; 0 = off
    mixed_precision: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        if not (0.0 <= self.g_ema_decay < 1.0):
            raise ValueError(f"g_ema_decay must lie in [0, 1), got {self.g_ema_decay}")
        for name in ("epochs", "batch_size", "d_updates_per_step", "g_updates_per_step"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if isinstance(self.standing_stats, bool) or not isinstance(self.standing_stats, int) or self.standing_stats < 0:
            raise ValueError(f"standing_stats must be an int >= 0 (0 = off), got {self.standing_stats!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z, y), y))]."""
    return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()


def hinge_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(G(z, y), y)]."""
    return -d_fake.mean()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float, copy_only: bool) -> None:
    """EMA over the full state dict (parameters and buffers); integer buffers are copied."""
    src = model.state_dict()
    for k, v in ema.state_dict().items():
        s = src[k]
        if copy_only or not v.is_floating_point():
            v.copy_(s)
        else:
            v.mul_(decay).add_(s, alpha=1.0 - decay)


_SN_REFRESH = 20  # power iterations that re-converge each spectral norm's u/v to the sampler's weights


@torch.no_grad()
def apply_standing_stats(generator: Generator, n_batches: int, batch_size: int, gen: torch.Generator,
                         device: str | torch.device = "cpu") -> Generator:
    """A copy of ``generator`` (eval mode) with re-estimated statistics; ``generator`` is untouched.

    1. Every spectral norm's ``u``/``v`` (an estimate of the weight's top singular vectors, not a
       parameter) is refreshed by ``_SN_REFRESH`` power iterations on the copy's own weights. In an
       EMA generator they are averages of G's unit vectors: shorter than 1 and not aligned with
       the averaged weight, so the eval-mode sigma = u^T W v is too small.
    2. BatchNorm running mean/var become the plain average over ``n_batches`` forwards of
       ``batch_size`` samples (z ~ N(0, I) (batch, latent_dim), labels uniform in
       [0, num_classes)) with batch statistics, spectral norms fixed.

    The weights (``parametrizations.*.original``) and the embedding are unchanged. Spec section 3.
    """
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches must be a positive int, got {n_batches!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be an int >= 2 (batch statistics), got {batch_size!r}")
    g = copy.deepcopy(generator)
    g.train()
    for m in g.modules():  # in train mode every access of a spectral-normed weight is one power iteration
        if parametrize.is_parametrized(m, "weight"):
            for _ in range(_SN_REFRESH):
                m.weight
    bns = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = plain mean over the passes
    g.eval()
    for m in bns:  # only BN in train mode: the refreshed spectral norms stay fixed
        m.train()
    for _ in range(n_batches):
        z = torch.randn(batch_size, g.latent_dim, generator=gen).to(device)
        y = torch.randint(0, g.num_classes, (batch_size,), generator=gen).to(device)
        g(z, y)
    for m, ref in zip(bns, (m for m in generator.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))):
        m.momentum = ref.momentum
    return g.eval()


def ema_checkpoint_path(out_dir: str | Path, epoch: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"ema_generator_epoch{epoch:03d}"


def available_checkpoint_epochs(out_dir: str | Path) -> list[int]:
    """Epochs with a complete EMA-generator checkpoint under ``out_dir/checkpoints``."""
    d = Path(out_dir) / "checkpoints"
    eps = []
    for p in d.glob("ema_generator_epoch*.json"):
        tail = p.stem.replace("ema_generator_epoch", "")
        if tail.isdigit() and checkpoint_exists(p):
            eps.append(int(tail))
    return sorted(eps)


@dataclass
class GANResult:
    generator: Generator
    discriminator: Discriminator
    ema: Generator | None
    history: list[dict]
    iterations: int


def _opt_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{prefix}.{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"]}


def _opt_restore(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith(prefix + "."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, enabled=False)


def train_gan(data: ImageData, gan_cfg: GANConfig, cfg: GANTrainConfig, *, out_dir: str | Path | None = None,
              resume: bool = False, device: str | torch.device = "cpu") -> GANResult:
    """Train a conditional BigGAN-deep on ``data`` (images (N, C, S, S) in [-1, 1], labels (N,)).

    Raises ValueError when the data's shape or label range disagrees with ``gan_cfg``.
    """
    device = torch.device(device)
    if tuple(data.x.shape[1:]) != (gan_cfg.channels, gan_cfg.image_size, gan_cfg.image_size):
        raise ValueError(f"data images have shape {tuple(data.x.shape[1:])} but the GAN config expects "
                         f"{(gan_cfg.channels, gan_cfg.image_size, gan_cfg.image_size)}")
    if int(data.y.max()) >= gan_cfg.num_classes or int(data.y.min()) < 0:
        raise ValueError(f"labels must lie in [0, num_classes={gan_cfg.num_classes})")
    basket = cfg.batch_size * cfg.d_updates_per_step
    iters_per_epoch = len(data) // basket
    if iters_per_epoch < 1:
        raise ValueError(f"need at least batch_size*d_updates_per_step={basket} training images, got {len(data)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G, D = Generator(gan_cfg).to(device), Discriminator(gan_cfg).to(device)
    ema = copy.deepcopy(G).eval() if cfg.apply_g_ema else None
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(cfg.g_beta1, cfg.g_beta2), eps=cfg.adam_eps)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(cfg.d_beta1, cfg.d_beta2), eps=cfg.adam_eps)
    amp = cfg.mixed_precision and device.type == "cuda"
    scaler_g, scaler_d = torch.amp.GradScaler("cuda", enabled=amp), torch.amp.GradScaler("cuda", enabled=amp)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    it, start = 0, 1
    out = Path(out_dir) if out_dir is not None else None
    last = out / "last_epoch" / "state" if out is not None else None
    meta_base = {"gan_config": gan_cfg.to_dict(), "train_config": cfg.to_dict()}
    if resume:
        if last is None:
            raise ValueError("resume=True needs out_dir")
        if checkpoint_exists(last):
            tensors, meta = load_checkpoint(last)
            if meta.get("gan_config") != meta_base["gan_config"] or meta.get("train_config") != meta_base["train_config"]:
                raise CheckpointError(f"{str(last)!r} was written with a different config; use a new out_dir")
            load_state_into(G, {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}, "generator state")
            load_state_into(D, {k[2:]: v for k, v in tensors.items() if k.startswith("D.")}, "discriminator state")
            if ema is not None:
                load_state_into(ema, {k[4:]: v for k, v in tensors.items() if k.startswith("EMA.")}, "EMA state")
            _opt_restore("optG", opt_g, tensors, meta["opt_g"])
            _opt_restore("optD", opt_d, tensors, meta["opt_d"])
            gen.set_state(tensors["rng"])
            # the JSON holds the rows with sorted keys: back to an epoch's insertion order (issue 17)
            it, start = int(meta["iterations"]), int(meta["epoch"]) + 1
            history = ordered_rows(meta["history"], GAN_HISTORY_KEYS)
    z_dim = gan_cfg.latent_dim
    governor = ThreadGovernor()
    with progress_task("GAN", cfg.epochs) as advance:
        advance(start - 1)
        for epoch in range(start, cfg.epochs + 1):
            t0 = time.perf_counter()
            G.train(), D.train()
            perm = torch.randperm(len(data), generator=gen)
            d_losses, g_losses = [], []
            for b in range(iters_per_epoch):
                governor.tick()
                idx = perm[b * basket:(b + 1) * basket]
                xr, yr = data.x[idx], data.y[idx]
                if cfg.horizontal_flip:
                    xr = random_flip(xr, gen)
                xr, yr = xr.to(device), yr.to(device)
                for j in range(cfg.d_updates_per_step):
                    if cfg.split_batch_d_steps:
                        sl = slice(j * cfg.batch_size, (j + 1) * cfg.batch_size)
                        xj, yj = xr[sl], yr[sl]
                    else:
                        xj, yj = xr, yr
                    z = torch.randn(len(yj), z_dim, generator=gen).to(device)
                    y_fake = (torch.randint(0, gan_cfg.num_classes, (len(yj),), generator=gen).to(device)
                              if cfg.random_labels else yj)
                    with _autocast(device, amp):
                        with torch.no_grad():
                            xf = G(z, y_fake)
                        xin = torch.cat([xj, xf.to(xj.dtype)])
                        if cfg.diff_augment:
                            xin = diff_augment(xin, gen, cfg.diff_augment)
                        scores = D(xin, torch.cat([yj, y_fake])).float()
                    loss_d = hinge_d_loss(scores[:len(yj)], scores[len(yj):])
                    opt_d.zero_grad(set_to_none=True)
                    scaler_d.scale(loss_d).backward()
                    scaler_d.step(opt_d)
                    scaler_d.update()
                    d_losses.append(float(loss_d.detach()))
                for _ in range(cfg.g_updates_per_step):
                    z = torch.randn(basket, z_dim, generator=gen).to(device)
                    y_fake = (torch.randint(0, gan_cfg.num_classes, (basket,), generator=gen).to(device)
                              if cfg.random_labels else yr)
                    with _autocast(device, amp):
                        xf = G(z, y_fake)
                        if cfg.diff_augment:
                            xf = diff_augment(xf, gen, cfg.diff_augment)
                        loss_g = hinge_g_loss(D(xf, y_fake).float())
                    opt_g.zero_grad(set_to_none=True)
                    scaler_g.scale(loss_g).backward()
                    scaler_g.step(opt_g)
                    scaler_g.update()
                    g_losses.append(float(loss_g.detach()))
                it += 1
                if ema is not None:
                    ema_update(ema, G, cfg.g_ema_decay, copy_only=it <= cfg.g_ema_start)
            row = {"epoch": epoch, "iterations": it, "d_loss": sum(d_losses) / len(d_losses),  # GAN_HISTORY_KEYS
                   "g_loss": sum(g_losses) / len(g_losses), "seconds": time.perf_counter() - t0}
            if not all(math.isfinite(row[k]) for k in ("d_loss", "g_loss")):
                raise FloatingPointError(f"GAN training diverged at epoch {epoch}: {row}")
            history.append(row)
            if out is not None or epoch == cfg.epochs:
                sampler = _sampler(ema if ema is not None else G, cfg, epoch, basket, device)
            if out is not None:
                save_checkpoint(ema_checkpoint_path(out, epoch), sampler.state_dict(),
                                {"kind": "generator", "epoch": epoch, "iterations": it, **meta_base})
                tensors = {f"G.{k}": v for k, v in G.state_dict().items()}
                tensors.update({f"D.{k}": v for k, v in D.state_dict().items()})
                if ema is not None:
                    tensors.update({f"EMA.{k}": v for k, v in ema.state_dict().items()})
                tg, mg = _opt_tensors("optG", opt_g)
                td, md = _opt_tensors("optD", opt_d)
                tensors.update(tg), tensors.update(td)
                tensors["rng"] = gen.get_state()
                save_checkpoint(last, tensors, {"kind": "gan_state", "epoch": epoch, "iterations": it,
                                                "history": history, "opt_g": mg, "opt_d": md, **meta_base})
            advance(1)
    if start > cfg.epochs:  # resumed a finished run
        sampler = _sampler(ema if ema is not None else G, cfg, cfg.epochs, basket, device)
    return GANResult(G.eval(), D.eval(), sampler if ema is not None else None, history, it)


def _sampler(model: Generator, cfg: GANTrainConfig, epoch: int, batch: int, device) -> Generator:
    """What an epoch checkpoints: ``model``, or its standing-statistics copy (``cfg.standing_stats``)."""
    if cfg.standing_stats <= 0:
        return model
    gen = torch.Generator().manual_seed(int(cfg.seed) * 100003 + int(epoch))
    return apply_standing_stats(model, cfg.standing_stats, max(batch, 2), gen, device)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load an EMA-generator checkpoint (``ema_generator_epochNNN``) in eval mode."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "generator":
        raise CheckpointError(f"{str(path)!r} is not a generator checkpoint (kind={meta.get('kind')!r})")
    G = Generator(GANConfig(**meta["gan_config"]))
    load_state_into(G, tensors, f"generator checkpoint {str(path)!r}")
    return G.to(device).eval()
