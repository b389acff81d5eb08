"""Training inflationary-flow denoisers (specs/inflationary_flows.md §2.2-2.3).

Loss per sample: t ~ U[t_min, t_max], n ~ N(0, diag gamma(t)) in eigen-space,
(D, w) = net(y + n, t), loss = sum_i (w_i (D_i - y_i))^2, summed over the batch and divided
by the batch size. Adam (beta = (0.9, 0.999), eps = 1e-8) with a linear LR ramp-up over
``lr_rampup_samples``; gradients are NaN-cleaned (nan -> 0, +-inf -> +-1e5); the EMA has a
half-life of ``ema_halflife_samples`` with EDM's ramp-up ratio (half-life <= ratio x seen).

Checkpoints are ``{name}.safetensors`` (net, EMA and Adam state tensors) plus
``{name}.json`` (config, schedule, W, backbone kind/config, progress); nothing is pickled.
:func:`train` resumes from a checkpoint when ``resume`` is given.
"""
from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..progress import progress_task
from .networks import IFsPrecond, build_backbone
from .schedules import InflationSchedule

CHECKPOINT_FORMAT = "synthperf.flows.checkpoint/1"


@dataclass
class TrainConfig:
    """Training hyper-parameters (JSON-serialisable). Upstream defaults in brackets are for
    full runs; these defaults are sized for short CPU runs."""

    steps: int = 2000
    batch: int = 512
    lr: float = 2e-3
    lr_rampup_samples: int = 50_000     # [1e7 for images/toys]
    ema_halflife_samples: int = 50_000  # [5e5]
    ema_rampup_ratio: float = 0.05
    t_min: float = 1e-7
    t_max: float = 7.01
    seed: int = 0
    checkpoint_every: int = 0           # steps; 0 = only at the end

    def __post_init__(self) -> None:
        for name in ("steps", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (self.lr > 0):
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.t_min < self.t_max):
            raise ValueError(f"need 0 <= t_min < t_max, got t_min={self.t_min}, t_max={self.t_max}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig keys {sorted(unknown)}")
        return cls(**d)


def ifs_loss(net: IFsPrecond, y_es: torch.Tensor, t_min: float, t_max: float,
             generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample loss [B] = sum_i (w_i (D_i - y_i))^2 with t ~ U[t_min, t_max] (§2.2).

    ``labels`` (int64 [B]) for a class-conditional network (the denoiser of p(x | label))."""
    B = y_es.shape[0]
    t = t_min + (t_max - t_min) * torch.rand(B, generator=generator, dtype=y_es.dtype)
    gamma = net.coefficients(t)["gamma"].to(y_es.dtype)
    n = torch.randn(y_es.shape, generator=generator, dtype=y_es.dtype) * gamma.sqrt()
    D, w = net(y_es + n, t, labels)
    return ((w * (D - y_es)) ** 2).sum(dim=1)


def _clean_grads(model: torch.nn.Module) -> None:
    for p in model.parameters():
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)


@dataclass
class TrainState:
    net: IFsPrecond
    ema: IFsPrecond
    optimizer: torch.optim.Optimizer
    step: int = 0
    losses: list | None = None


def _ema_beta(cfg: TrainConfig, seen: int) -> float:
    half = cfg.ema_halflife_samples
    if cfg.ema_rampup_ratio is not None:
        half = min(half, seen * cfg.ema_rampup_ratio)
    return 0.5 ** (cfg.batch / max(half, 1e-8))


def train(net: IFsPrecond, sample_fn: Callable[[int, np.random.Generator], np.ndarray], cfg: TrainConfig, *,
          checkpoint_dir: str | Path | None = None, resume: str | Path | None = None,
          name: str = "network") -> TrainState:
    """Train ``net`` on batches ``sample_fn(batch, rng) -> y_es [batch, d]`` (fresh draws per step).

    For a class-conditional ``net`` (``net.num_classes > 0``) ``sample_fn`` returns
    ``(y_es [batch, d], labels int64 [batch])``. Returns the final :class:`TrainState` (``state.ema`` is the network to use).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    state = TrainState(net, ema, opt, 0, [])
    if resume is not None:
        load_checkpoint(resume, state=state)
        rng = np.random.default_rng([cfg.seed, state.step])
        gen.manual_seed(cfg.seed * 1_000_003 + state.step)
    with progress_task("train", cfg.steps - state.step) as advance:
        while state.step < cfg.steps:
            draw = sample_fn(cfg.batch, rng)
            labels = None
            if isinstance(draw, tuple):
                draw, labels = draw
                labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
            y = torch.as_tensor(draw, dtype=torch.float32)
            loss = ifs_loss(net, y, cfg.t_min, cfg.t_max, gen, labels).sum() / cfg.batch
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _clean_grads(net)
            seen = (state.step + 1) * cfg.batch
            for group in opt.param_groups:
                group["lr"] = cfg.lr * min(seen / max(cfg.lr_rampup_samples, 1e-8), 1.0)
            opt.step()
            beta = _ema_beta(cfg, seen)
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), net.parameters()):
                    p_ema.copy_(p.detach().lerp(p_ema, beta))
            state.step += 1
            state.losses.append(float(loss.detach()))
            if checkpoint_dir is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                save_checkpoint(Path(checkpoint_dir) / name, state, cfg)
            advance()
    if checkpoint_dir is not None:
        save_checkpoint(Path(checkpoint_dir) / name, state, cfg)
    return state


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | Path, state: TrainState, cfg: TrainConfig) -> Path:
    """Write ``path.safetensors`` + ``path.json``; returns the JSON path."""
    from safetensors.torch import save

    from ..experiments.store import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().contiguous() for k, v in state.net.state_dict().items()}
    tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in state.ema.state_dict().items()})
    opt_state = state.optimizer.state_dict()
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(val).detach().clone().contiguous()
    atomic_write_bytes(path.with_suffix(".safetensors"), save(tensors))
    net = state.net
    meta = {"format": CHECKPOINT_FORMAT, "step": state.step, "config": asdict(cfg),
            "schedule": net.schedule.to_dict(), "W": net.W.double().tolist(), "space": net.space,
            "image_shape": list(net.image_shape) if net.image_shape else None, "xi_min": net.xi_min,
            "backbone": {"kind": type(net.backbone).__name__, "config": net.backbone.config},
            "data_mean": None if net.data_mean is None else [float(v) for v in net.data_mean],
            "losses_tail": (state.losses or [])[-100:]}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta).encode())
    return path.with_suffix(".json")


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"checkpoint metadata {path.with_suffix('.json')} is missing or corrupt: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path.with_suffix('.json')} is not a synthperf flows checkpoint (format {CHECKPOINT_FORMAT})")
    return meta


def load_network(path: str | Path, *, use_ema: bool = True) -> IFsPrecond:
    """Rebuild the preconditioned network of a checkpoint (EMA weights by default)."""
    from safetensors.torch import load_file

    path = Path(path).with_suffix("")
    meta = _read_meta(path)
    net = IFsPrecond(build_backbone(meta["backbone"]["kind"], meta["backbone"]["config"]),
                     InflationSchedule.from_dict(meta["schedule"]), np.asarray(meta["W"]), space=meta["space"],
                     image_shape=meta["image_shape"], xi_min=meta.get("xi_min", 1e-6),
                     data_mean=meta.get("data_mean"))
    try:
        tensors = load_file(str(path.with_suffix(".safetensors")))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"checkpoint tensors {path.with_suffix('.safetensors')} are missing or corrupt: {exc}") from None
    prefix = "ema." if use_ema else "net."
    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return net.eval()


def load_checkpoint(path: str | Path, *, state: TrainState) -> TrainState:
    """Restore net, EMA, Adam state and the step counter into ``state`` (for resuming)."""
    from safetensors.torch import load_file

    path = Path(path).with_suffix("")
    meta = _read_meta(path)
    tensors = load_file(str(path.with_suffix(".safetensors")))
    state.net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    state.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    opt_sd = state.optimizer.state_dict()
    restored: dict = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            restored.setdefault(int(idx), {})[name] = val
    opt_sd["state"] = restored
    state.optimizer.load_state_dict(opt_sd)
    state.step = int(meta["step"])
    state.losses = list(meta.get("losses_tail", []))
    return state
