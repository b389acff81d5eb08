"""ResNet-20 classifier and its training recipe (spec section 2).

- :class:`ResNet20`: CIFAR ResNet-20 with configurable width and parameter-free option-A
  shortcuts; returns fp32 logits (N, K) for images (N, C, H, W).
- :class:`SGDW`: SGD with Keras-convention Nesterov momentum and *decoupled* weight decay
  that is NOT scaled by the learning rate (tfa ``SGDW``): ``w <- w - wd*w`` then the momentum
  step, at a constant rate after LR drops.
- :func:`fit_classifier`: epoch loop with step LR (x gamma at the start of each 1-indexed
  milestone epoch), flip / pad-crop / noise-cutout augmentation, autocast fp16 + GradScaler
  on CUDA when ``mixed_precision``, per-epoch evaluation on named real sets, best-epoch
  selection on one of them, and safetensors+JSON checkpoints with exact resume.
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..progress import progress_task
from .._threads import ThreadGovernor
from .._io import CheckpointError, checkpoint_paths, load_checkpoint, load_state_into, save_checkpoint
from .augment import augment_batch
from .data import ImageData

__all__ = ["ResNet20", "SGDW", "ClassifierConfig", "FitResult", "fit_classifier", "predict_logits",
           "accuracy", "build_classifier", "load_classifier", "StaticSource", "history_keys", "ordered_rows"]

_KERAS_TRUNC = 0.87962566103423978  # std of a unit normal truncated at +/-2 std


def _he_normal_(w: torch.Tensor) -> None:
    fan_in = w.shape[1] * (w[0, 0].numel() if w.ndim > 2 else 1)
    std = math.sqrt(2.0 / fan_in) / _KERAS_TRUNC
    nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)


class _Block(nn.Module):
    """BasicBlock: conv3x3-BN-ReLU-conv3x3-BN + option-A shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)  # Keras momentum 0.9
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.stride != 1 or self.pad:
            sc = x[:, :, ::self.stride, ::self.stride]  # option A: subsample, zero-pad channels
            lo = self.pad // 2
            sc = F.pad(sc, (0, 0, 0, 0, lo, self.pad - lo))
        return F.relu(out + sc)


class ResNet20(nn.Module):
    """ResNet-20 (3 stages x 3 blocks, channels w, 2w, 4w), option-A shortcuts.

    Input (N, in_channels, H, W) float in [-1, 1]; output fp32 logits (N, num_classes).
    Init: Keras HeNormal (truncated normal, std sqrt(2/fan_in)) for convs and the dense kernel.
    """

    def __init__(self, num_classes: int, *, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        if width < 2:
            raise ValueError(f"width must be >= 2, got {width}")
        self.num_classes, self.width, self.in_channels = num_classes, width, in_channels
        self.stem = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for b in range(3):
                blocks.append(_Block(cin, cout, 2 if (stage > 0 and b == 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                _he_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(h.mean((2, 3))).float()


class SGDW(torch.optim.Optimizer):
    """tfa SGDW: decoupled weight decay (not lr-scaled) + Keras SGD momentum/Nesterov.

    Per step, for every parameter w with gradient g (velocity v starts at 0)::

        w <- w - weight_decay * w
        v <- momentum * v - lr * g
        w <- w + momentum * v - lr * g     (nesterov)   |   w <- w + v   (plain momentum)
    """

    def __init__(self, params, lr: float = 0.1, momentum: float = 0.9, nesterov: bool = True,
                 weight_decay: float = 1e-4) -> None:
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not (isinstance(v, (int, float)) and v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, m, wd, nest = group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if wd:
                    p.mul_(1.0 - wd)
                if m:
                    st = self.state[p]
                    if "velocity" not in st:
                        st["velocity"] = torch.zeros_like(p)
                    v = st["velocity"]
                    v.mul_(m).add_(g, alpha=-lr)
                    if nest:
                        p.add_(v, alpha=m).add_(g, alpha=-lr)
                    else:
                        p.add_(v)
                else:
                    p.add_(g, alpha=-lr)
        return loss


@dataclass
class ClassifierConfig:
    """Recipe of every classifier (spec sections 2 and 4); defaults are upstream's CIFAR values."""

    width: int = 64
    epochs: int = 300
    batch_size: int = 128
    val_batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = (60, 80)
    lr_gamma: float = 0.1
    random_flip: bool = True
    random_crop: bool = True
    random_erasing: bool = True
    crop_padding: int = 4
    mixed_precision: bool = False
    seed: int = 42

    def __post_init__(self) -> None:
        for name, lo in (("width", 2), ("epochs", 1), ("batch_size", 1), ("val_batch_size", 1), ("crop_padding", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        for name in ("lr", "momentum", "weight_decay", "lr_gamma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        self.lr_milestones = tuple(self.lr_milestones)
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.lr_milestones):
            raise ValueError(f"lr_milestones must be 1-indexed epochs (ints >= 1), got {self.lr_milestones!r}")

    def lr_at(self, epoch: int) -> float:
        """LR of the 1-indexed ``epoch``: ``lr * gamma**#{milestones <= epoch}``."""
        return self.lr * self.lr_gamma ** sum(1 for m in self.lr_milestones if epoch >= m)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lr_milestones"] = list(self.lr_milestones)
        return d


class DataSource(Protocol):
    """Training data per epoch; ``StaticSource`` for real data, DDR sources for synthetic data."""

    def dataset(self, epoch: int) -> ImageData: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None: ...


class StaticSource:
    """The same :class:`ImageData` every epoch."""

    def __init__(self, data: ImageData) -> None:
        self.data = data

    def dataset(self, epoch: int) -> ImageData:
        return self.data

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        return None


@dataclass
class FitResult:
    """``history``: one dict per epoch (epoch, lr, train_loss, train_accuracy, <set>_accuracy)."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    select_on: str | None = None

    def best_row(self) -> dict:
        return next(r for r in self.history if r["epoch"] == self.best_epoch)

    def max_accuracy(self, name: str) -> float:
        """Max over epochs of ``<name>_accuracy`` (upstream's reported CAS)."""
        return max(r[f"{name}_accuracy"] for r in self.history)


def build_classifier(num_classes: int, in_channels: int, cfg: ClassifierConfig) -> ResNet20:
    """A freshly initialised ResNet-20, seeded with ``cfg.seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return ResNet20(num_classes, width=cfg.width, in_channels=in_channels)


@torch.no_grad()
def predict_logits(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 512,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Logits (N, K) fp32 on CPU for images (N, C, H, W), evaluated in eval mode in batches."""
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.eval()
        device = device or next(model.parameters()).device
    outs = [model(x[i:i + batch_size].to(device) if device else x[i:i + batch_size]).float().cpu()
            for i in range(0, x.shape[0], batch_size)]
    if was_training:
        model.train()  # type: ignore[union-attr]
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def accuracy(model: Callable[[torch.Tensor], torch.Tensor], data: ImageData, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``data``."""
    logits = predict_logits(model, data.x, batch_size)
    return float((logits.argmax(1) == data.y).double().mean())


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast(device.type, enabled=False)


def fit_classifier(source: DataSource | ImageData, num_classes: int, cfg: ClassifierConfig, *,
                   eval_sets: Mapping[str, ImageData] | None = None, select_on: str | None = None,
                   checkpoint_dir: str | Path | None = None, resume: bool = False,
                   device: str | torch.device = "cpu", description: str = "classifier") -> FitResult:
    """Train a fresh ResNet-20 on ``source`` for ``cfg.epochs`` epochs (spec sections 2, 4).

    ``eval_sets`` maps names (e.g. ``"val"``, ``"test"``) to real data evaluated after every
    epoch; ``select_on`` names the set whose best accuracy picks ``best_epoch`` (first max).
    With ``checkpoint_dir``, ``last`` (model, optimizer velocities, augmentation RNG, GradScaler
    state, source state, best-so-far weights, history) is written after every epoch, and
    ``best`` (the selected epoch's weights; the final weights when ``select_on`` is None) once
    training has finished, so a ``best`` checkpoint on disk means a finished run (callers such
    as :func:`synthperf.gafi.digits.make_digits_synthetic` rely on that). ``resume=True``
    continues from ``last`` and reproduces an uninterrupted run exactly (same device and
    thread count; the restored history rows keep :func:`history_keys`' order); a ``last`` that cannot be read (a kill between its two files, a damaged
    file) is reported with one ``RuntimeWarning`` and training starts over, a ``last`` written
    under another config raises :class:`CheckpointError`.
    """
    if isinstance(source, ImageData):
        source = StaticSource(source)
    eval_sets = dict(eval_sets or {})
    if select_on is not None and select_on not in eval_sets:
        raise ValueError(f"select_on={select_on!r} must name one of eval_sets {sorted(eval_sets)}")
    device = torch.device(device)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckdir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    saved = _read_last(ckdir, cfg) if resume else None  # type: ignore[arg-type]
    in_channels = saved[1].get("in_channels") if saved is not None else None
    if in_channels is None:  # fresh run (or an old checkpoint): the first epoch's data decides
        in_channels = int(source.dataset(1).x.shape[1])
    model = build_classifier(num_classes, int(in_channels), cfg).to(device)
    opt = SGDW(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
               weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.mixed_precision and device.type == "cuda")
    gen = torch.Generator().manual_seed(cfg.seed)
    result = FitResult(model=model, select_on=select_on)
    best_score, start = -1.0, 1
    if saved is not None:
        start, best_score = _restore(saved, model, opt, scaler, gen, source, result,
                                     history_keys=history_keys(eval_sets))
    with progress_task(f"{description}", cfg.epochs) as advance:
        advance(start - 1)
        for epoch in range(start, cfg.epochs + 1):
            data = source.dataset(epoch)
            lr = cfg.lr_at(epoch)
            for group in opt.param_groups:
                group["lr"] = lr
            loss, acc = _train_epoch(model, opt, scaler, data, cfg, gen, device)
            row = {"epoch": epoch, "lr": lr, "train_loss": loss, "train_accuracy": acc}
            for name, ds in eval_sets.items():
                row[f"{name}_accuracy"] = accuracy(model, ds, cfg.val_batch_size)  # history_keys' order
            result.history.append(row)
            if select_on is not None and row[f"{select_on}_accuracy"] > best_score:
                best_score = row[f"{select_on}_accuracy"]
                result.best_epoch = epoch
                result.best_state = copy.deepcopy(model.state_dict())
            if ckdir is not None:
                _save_last(ckdir, model, opt, scaler, gen, source, result, cfg, epoch, best_score, num_classes,
                           int(in_channels))
            advance(1)
    if select_on is None:
        result.best_epoch = cfg.epochs
        result.best_state = copy.deepcopy(model.state_dict())
    if ckdir is not None and result.best_state is not None:
        # published last, after the final ``last``: its presence marks a finished run (a kill before
        # it resumes from ``last`` at the end of the loop and writes it then)
        save_checkpoint(ckdir / "best", result.best_state,
                        {"kind": "classifier", "epoch": result.best_epoch, "num_classes": num_classes,
                         "in_channels": int(in_channels), "config": cfg.to_dict()})
    return result


def _train_epoch(model, opt, scaler, data: ImageData, cfg: ClassifierConfig, gen, device):
    model.train()
    n = len(data)
    perm = torch.randperm(n, generator=gen)
    tot_loss, correct = 0.0, 0
    governor = ThreadGovernor()
    for i in range(0, n, cfg.batch_size):
        governor.tick()
        idx = perm[i:i + cfg.batch_size]
        xb = augment_batch(data.x[idx], gen, flip=cfg.random_flip, crop=cfg.random_crop,
                           erasing=cfg.random_erasing, crop_padding=cfg.crop_padding).to(device)
        yb = data.y[idx].to(device)
        with _autocast(device, cfg.mixed_precision):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        tot_loss += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
    return tot_loss / max(n, 1), correct / max(n, 1)


def _save_last(ckdir, model, opt, scaler, gen, source, result, cfg, epoch, best_score, num_classes, in_channels):
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    params = list(model.parameters())
    for i, p in enumerate(params):
        st = opt.state.get(p, {})
        if "velocity" in st:
            tensors[f"opt.velocity.{i}"] = st["velocity"]
    tensors["rng"] = gen.get_state()
    if result.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in result.best_state.items()})
    tensors.update({f"source.{k}": v for k, v in source.state_dict().items()})
    meta = {"kind": "classifier_last", "epoch": epoch, "best_epoch": result.best_epoch,
            "best_score": best_score, "history": result.history, "num_classes": num_classes,
            "in_channels": in_channels, "config": cfg.to_dict(),
            # loss scale and growth tracker (floats/ints; JSON round-trips them exactly); None when disabled
            "scaler": scaler.state_dict() if scaler.is_enabled() else None}
    save_checkpoint(ckdir / "last", tensors, meta)


def _read_last(ckdir: Path, cfg: ClassifierConfig) -> tuple[dict, dict] | None:
    """``(tensors, meta)`` of ``ckdir/last``, or None (with one RuntimeWarning) when it is missing
    or unreadable: a kill between its tensors and its JSON, a truncated or bit-flipped file.
    A readable ``last`` of another config raises :class:`CheckpointError` (the user's mistake)."""
    stem = ckdir / "last"
    if not any(p.exists() for p in checkpoint_paths(stem)):
        return None
    try:
        tensors, meta = load_checkpoint(stem)
    except CheckpointError as exc:
        warnings.warn(f"ignoring an unreadable classifier checkpoint (training starts over): {exc}",
                      RuntimeWarning, stacklevel=3)
        return None
    if meta.get("kind") != "classifier_last" or meta.get("config") != cfg.to_dict():
        raise CheckpointError(f"checkpoint {str(stem)!r} was written with a different config; "
                              f"use a new checkpoint_dir or resume=False")
    return tensors, meta


def history_keys(eval_sets: Mapping[str, ImageData] | Sequence[str]) -> tuple[str, ...]:
    """The keys of a :func:`fit_classifier` history row, in the order a training epoch inserts
    them: ``epoch, lr, train_loss, train_accuracy`` then ``<set>_accuracy`` per eval set."""
    return ("epoch", "lr", "train_loss", "train_accuracy", *(f"{name}_accuracy" for name in eval_sets))


def ordered_rows(rows: Sequence[Mapping], keys: Sequence[str]) -> list[dict]:
    """``rows`` (dicts) with ``keys`` first in that order, any other key after them in its stored
    order. A checkpoint's JSON stores history rows with sorted keys; a resumed history must have
    the key (so DataFrame column) order of an uninterrupted run's (issue 17)."""
    return [{**{k: r[k] for k in keys if k in r}, **{k: v for k, v in r.items() if k not in keys}} for r in rows]


def _restore(saved, model, opt, scaler, gen, source, result, history_keys: Sequence[str] = ()):
    """Load ``last`` into the training objects; the restored history rows get ``history_keys``'
    order (:func:`ordered_rows`). Returns (first epoch to run, best score so far)."""
    tensors, meta = saved
    load_state_into(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, "classifier checkpoint")
    for i, p in enumerate(model.parameters()):
        if f"opt.velocity.{i}" in tensors:
            opt.state[p]["velocity"] = tensors[f"opt.velocity.{i}"].to(p.device)
    gen.set_state(tensors["rng"])
    if scaler.is_enabled() and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    result.best_state = best or None
    result.best_epoch = int(meta["best_epoch"])
    result.history = ordered_rows(meta["history"], history_keys)
    source.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("source.")})
    return int(meta["epoch"]) + 1, float(meta["best_score"])


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> ResNet20:
    """Load a classifier saved by :func:`fit_classifier` (its ``best`` checkpoint) in eval mode."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise CheckpointError(f"{str(path)!r} is not a classifier checkpoint (kind={meta.get('kind')!r})")
    cfg = meta["config"]
    model = ResNet20(int(meta["num_classes"]), width=int(cfg["width"]), in_channels=int(meta["in_channels"]))
    load_state_into(model, tensors, f"classifier checkpoint {str(path)!r}")
    return model.to(device).eval()
