"""Training inflationary-flow denoisers (specs/inflationary_flows.md §2.2-2.3).

Loss per sample: t ~ U[t_min, t_max], n ~ N(0, diag gamma(t)) in eigen-space,
(D, w) = net(y + n, t), loss = sum_i (w_i (D_i - y_i))^2, summed over the batch and divided
by the batch size. Adam (beta = (0.9, 0.999), eps = 1e-8) with a linear LR ramp-up over
``lr_rampup_samples``; gradients are NaN-cleaned (nan -> 0, +-inf -> +-1e5); the EMA has a
half-life of ``ema_halflife_samples`` with EDM's ramp-up ratio (half-life <= ratio x seen).

Checkpoints (the one format of :mod:`synthperf._io`: ``{name}.safetensors`` with the net, EMA,
Adam and RNG state tensors, plus ``{name}.json`` with the config, schedule, W, backbone
kind/config, progress, the numpy RNG state and the tensors' SHA-256; nothing is pickled).
:func:`train` writes one every ``checkpoint_every`` steps (0: every epoch) into
``{checkpoint_dir}/{name}.resume/step{step:09d}.*`` (only the newest is kept) and the final
one as ``{checkpoint_dir}/{name}.*``. A killed run started again with the same arguments
resumes from the newest complete, verified checkpoint of the *same run* (same config except
``steps``, schedule, W and backbone), restoring every RNG, so its final weights equal those
of an uninterrupted run. A corrupt checkpoint is skipped with one warning, never used.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import _io
from ..progress import progress_task
from .._threads import ThreadGovernor
from .networks import IFsPrecond, build_backbone
from .schedules import InflationSchedule

CHECKPOINT_FORMAT = "synthperf.flows.checkpoint/2"
_LEGACY_FORMATS = ("synthperf.flows.checkpoint/1",)  # no checksum, no RNG state: load_network / explicit resume only
#: samples in a nominal toy "epoch" (toys draw fresh data every step): the 70 000-sample PCA draw of spec §1.3
TOY_EPOCH_SAMPLES = 70_000


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
    checkpoint_every: int = 0           # steps between resume checkpoints; 0 = every epoch

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "checkpoint_every", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
            if int(v) < (0 if name in ("checkpoint_every", "seed") else 1):
                raise ValueError(f"{name} must be >= {0 if name in ('checkpoint_every', 'seed') else 1}, got {v}")
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
          checkpoint_dir: str | Path | None = None, resume: str | Path | bool | None = None,
          name: str = "network", steps_per_epoch: int | None = None,
          callback: Callable[[TrainState], None] | None = None) -> TrainState:
    """Train ``net`` on batches ``sample_fn(batch, rng) -> y_es [batch, d]`` (fresh draws per step).

    For a class-conditional ``net`` (``net.num_classes > 0``) ``sample_fn`` returns
    ``(y_es [batch, d], labels int64 [batch])``. Returns the final :class:`TrainState` (``state.ema`` is the network to use).

    ``checkpoint_dir``: where checkpoints go (module doc); None writes none. ``resume``: None
    (default) resumes automatically from the newest complete checkpoint of this run in
    ``checkpoint_dir``; False always starts fresh; a path resumes from that checkpoint
    (CheckpointError if it is missing, corrupt or of another architecture).
    ``steps_per_epoch``: the epoch used by ``cfg.checkpoint_every = 0`` (default: a toy epoch of
    ``TOY_EPOCH_SAMPLES`` samples). ``callback(state)`` runs after every step (after its checkpoint).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    if steps_per_epoch is None:
        steps_per_epoch = math.ceil(TOY_EPOCH_SAMPLES / cfg.batch)
    every = cfg.checkpoint_every or int(steps_per_epoch)
    if every < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    state = TrainState(net, ema, opt, 0, [])
    folder = None if checkpoint_dir is None else Path(checkpoint_dir)
    if resume is None and folder is not None:
        resume = _newest_matching(folder, name, state, cfg)
    if resume is not None and resume is not False:
        rng_state = _restore(resume, state, gen)
        if rng_state is None:  # legacy checkpoint without RNG state: a fresh stream per resumed step
            rng = np.random.default_rng([cfg.seed, state.step])
            gen.manual_seed(cfg.seed * 1_000_003 + state.step)
        else:
            rng.bit_generator.state = rng_state
    governor = ThreadGovernor()
    with progress_task("train", max(cfg.steps - state.step, 0)) as advance:
        while state.step < cfg.steps:
            governor.tick()
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
            if folder is not None and state.step % every == 0 and state.step < cfg.steps:
                _save_resume_point(folder, name, state, cfg, rng, gen)
            advance()
            if callback is not None:
                callback(state)
    if folder is not None:
        save_checkpoint(folder / name, state, cfg, rng=rng, generator=gen)
        shutil.rmtree(_resume_dir(folder, name), ignore_errors=True)
    return state


# ----------------------------------------------------------------------------- checkpoints
def _resume_dir(folder: Path, name: str) -> Path:
    return folder / f"{name}.resume"


def _save_resume_point(folder: Path, name: str, state: TrainState, cfg: TrainConfig, rng, gen) -> None:
    """Write ``{name}.resume/step{step}`` and only then delete the older resume points, so a
    kill at any moment leaves at least one complete checkpoint."""
    rdir = _resume_dir(folder, name)
    stem = rdir / f"step{state.step:09d}"
    for p in _io.checkpoint_paths(stem):
        if p.is_dir() and not p.is_symlink():  # something foreign in the way of os.replace
            shutil.rmtree(p)
    save_checkpoint(stem, state, cfg, rng=rng, generator=gen)
    for old in rdir.iterdir():
        if (old.name.startswith("step") and not old.name.startswith(stem.name + ".")) or _io.is_temp_file(old):
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _run_identity(net: IFsPrecond, cfg: TrainConfig) -> dict:
    """What must agree for a checkpoint to belong to this run (everything except the step budget)."""
    config = asdict(cfg)
    config.pop("steps")
    config.pop("checkpoint_every")
    ident = {"config": config, "schedule": net.schedule.to_dict(), "W": net.W.double().tolist(), "space": net.space,
             "image_shape": list(net.image_shape) if net.image_shape else None, "xi_min": net.xi_min,
             "backbone": {"kind": type(net.backbone).__name__, "config": net.backbone.config},
             "data_mean": None if net.data_mean is None else [float(v) for v in net.data_mean]}
    return json.loads(json.dumps(ident))  # tuples -> lists, as read back from JSON


def _newest_matching(folder: Path, name: str, state: TrainState, cfg: TrainConfig) -> Path | None:
    """The newest complete checkpoint of this run in ``folder`` (final or resume point), or None.

    Candidates with another run identity or more steps than ``cfg.steps`` are ignored; a corrupt
    one is reported once (RuntimeWarning) and skipped."""
    rdir = _resume_dir(folder, name)
    stems = [folder / name]
    if rdir.is_dir():
        stems += [rdir / p.name[: -len(".json")] for p in rdir.iterdir()
                  if p.name.startswith("step") and p.name.endswith(".json")]
    want = _run_identity(state.net, cfg)
    best: tuple[int, Path] | None = None
    for stem in stems:
        if not _io.checkpoint_paths(stem)[1].exists():
            continue  # no JSON: never finished (killed before its last write), nothing to report
        try:
            _, meta = _io.load_checkpoint(stem)  # verifies size and SHA-256
        except _io.CheckpointError as exc:
            warnings.warn(f"ignoring a corrupt flows checkpoint (it will be recomputed): {exc}", RuntimeWarning,
                          stacklevel=3)
            continue
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("identity") != want:
            continue
        step = int(meta.get("step", -1))
        if 0 <= step <= cfg.steps and (best is None or step > best[0]):
            best = (step, stem)
    return None if best is None else best[1]


def save_checkpoint(path: str | Path, state: TrainState, cfg: TrainConfig, *, rng: np.random.Generator | None = None,
                    generator: torch.Generator | None = None) -> Path:
    """Write ``path.safetensors`` + ``path.json`` through :func:`synthperf._io.save_checkpoint`
    (atomic, SHA-256 in the JSON); returns the JSON path. ``rng``/``generator``: the training
    RNGs, stored so a resumed run continues the same random streams."""
    tensors = {f"net.{k}": v for k, v in state.net.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in state.ema.state_dict().items()})
    opt_state = state.optimizer.state_dict()
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(val)
    if generator is not None:
        tensors["rng.torch"] = generator.get_state()
        tensors["rng.torch_global"] = torch.get_rng_state()
    net = state.net
    meta = {"format": CHECKPOINT_FORMAT, "step": state.step, "config": asdict(cfg),
            "schedule": net.schedule.to_dict(), "W": net.W.double().tolist(), "space": net.space,
            "image_shape": list(net.image_shape) if net.image_shape else None, "xi_min": net.xi_min,
            "backbone": {"kind": type(net.backbone).__name__, "config": net.backbone.config},
            "data_mean": None if net.data_mean is None else [float(v) for v in net.data_mean],
            "identity": _run_identity(net, cfg), "losses_tail": (state.losses or [])[-100:],
            "numpy_rng": None if rng is None else rng.bit_generator.state}
    stem = _io.save_checkpoint(_stem(path), tensors, meta)
    return _io.checkpoint_paths(stem)[1]


def _stem(path: str | Path) -> Path:
    return _io.checkpoint_paths(path)[0].with_suffix("")


def _read(path: str | Path) -> tuple[dict, dict]:
    """(tensors, meta) of a flows checkpoint: verified through :mod:`synthperf._io`; a legacy
    (format /1, no checksum) checkpoint is still read. CheckpointError names the bad file."""
    from safetensors.torch import load_file

    stem = _stem(path)
    st_path, js_path = _io.checkpoint_paths(stem)
    try:
        tensors, meta = _io.load_checkpoint(stem)
    except _io.CheckpointError as exc:
        if "no checksum entry" not in str(exc):
            raise
        meta = json.loads(js_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") not in _LEGACY_FORMATS:
            raise _io.CheckpointError(f"{str(js_path)!r} is not a synthperf flows checkpoint "
                                      f"(format {CHECKPOINT_FORMAT})") from None
        try:
            tensors = load_file(str(st_path))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise _io.CheckpointError(f"checkpoint file {str(st_path)!r} is missing or corrupt: {err}") from None
        return tensors, meta
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise _io.CheckpointError(f"{str(js_path)!r} is not a synthperf flows checkpoint (format {CHECKPOINT_FORMAT})")
    return tensors, meta


def load_network(path: str | Path, *, use_ema: bool = True) -> IFsPrecond:
    """Rebuild the preconditioned network of a checkpoint (EMA weights by default).

    Raises :class:`synthperf._io.CheckpointError` (a ValueError) naming the file when it is
    missing, corrupt, foreign or does not match the stored architecture."""
    tensors, meta = _read(path)
    try:
        net = IFsPrecond(build_backbone(meta["backbone"]["kind"], meta["backbone"]["config"]),
                         InflationSchedule.from_dict(meta["schedule"]), np.asarray(meta["W"]), space=meta["space"],
                         image_shape=meta["image_shape"], xi_min=meta.get("xi_min", 1e-6),
                         data_mean=meta.get("data_mean"))
    except (KeyError, TypeError, ValueError) as exc:
        raise _io.CheckpointError(f"checkpoint {str(_stem(path))!r} has invalid metadata: {exc}") from None
    prefix = "ema." if use_ema else "net."
    _io.load_state_into(net, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                        f"checkpoint {str(_stem(path))!r}")
    return net.eval()


def _restore(path: str | Path, state: TrainState, generator: torch.Generator) -> dict | None:
    """Load a checkpoint into ``state`` (and ``generator``); returns the numpy RNG state or None (legacy)."""
    tensors, meta = _read(path)
    what = f"checkpoint {str(_stem(path))!r}"
    _io.load_state_into(state.net, {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, what)
    _io.load_state_into(state.ema, {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, what)
    opt_sd = state.optimizer.state_dict()
    restored: dict = {}
    for key, val in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            restored.setdefault(int(idx), {})[name] = val
    opt_sd["state"] = restored
    try:
        state.optimizer.load_state_dict(opt_sd)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise _io.CheckpointError(f"{what}: optimizer state does not match the model: {exc}") from None
    state.step = int(meta["step"])
    state.losses = list(meta.get("losses_tail", []))
    if "rng.torch" in tensors and meta.get("numpy_rng") is not None:
        generator.set_state(tensors["rng.torch"])
        if "rng.torch_global" in tensors:
            torch.set_rng_state(tensors["rng.torch_global"])
        return meta["numpy_rng"]
    return None


def load_checkpoint(path: str | Path, *, state: TrainState) -> TrainState:
    """Restore net, EMA, Adam state and the step counter into ``state`` (for resuming)."""
    _restore(path, state, torch.Generator())
    return state
