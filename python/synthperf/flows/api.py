"""Library entry points of inflationary flows: :func:`train` and :func:`simulate`.

The CLI (``synthperf flows train|simulate``), the experiments ``flows`` task and
:mod:`synthperf.flows.digits` all call these (issue 14), so no caller drives typer commands.

Data sources (exactly one per call):

- ``data_name``: a toy of :mod:`.toy_data` (fresh draws every training step, spec §2.3);
- ``data``: an image ZIP written by ``dataset-tool`` (pixels mapped to [-1, 1], spec §1.3,
  labels from its ``dataset.json``);
- ``images``: an array [n, d] or [n, C, R, R] already in model units (e.g. [-1, 1] pixels),
  with optional ``labels`` int [n].

``class_conditional=True`` trains a label-conditioned denoiser D(u, t, label) (one network, label
embedding added to the time embedding, as EDM's ``label_dim``); simulations then pass each
particle's label. ``center=True`` subtracts the training mean before the flow (a deviation from
spec §1.3, stored in the checkpoint as ``data_mean`` and undone by :func:`simulate`).
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .._io import checkpoint_paths
from .._lock import RunLock
from .._validation import positive_int, real_scalar
from .pfode import Trajectory, run_simulations
from .schedules import InflationSchedule

if TYPE_CHECKING:  # torch is imported lazily; "torch.*" annotations resolve with torch in localns (_typing)
    import torch

BACKBONES = ("auto", "mlp", "unet")


class DenoiserNetwork(Protocol):
    """A loaded preconditioned denoiser, as :func:`simulate` uses it:
    :class:`~synthperf.flows.networks.IFsPrecond` (a ``torch.nn.Module``, from :func:`train` or
    :func:`~synthperf.flows.training.load_network`) is one; typed structurally so that importing
    :mod:`synthperf.flows` does not import torch.

    ``schedule`` its inflation schedule; ``W`` the eigenbasis [d, d] (float32 tensor);
    ``data_mean`` float64 [d] or None (module doc, ``center``); ``num_classes`` 0 when
    unconditional; ``denoise(u [B, d] (ES), t [B], labels int64 [B] or None) -> D [B, d]``.
    """

    schedule: InflationSchedule
    W: torch.Tensor
    data_mean: np.ndarray | None

    @property
    def num_classes(self) -> int: ...

    def denoise(self, u: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass
class TrainResult:
    """Outcome of :func:`train`: ``checkpoint`` (the ``.json`` of safetensors + JSON), the EMA
    network ``net`` (an ``IFsPrecond`` in eval mode), steps done, mean loss of the last 50 steps
    and wall seconds."""

    checkpoint: Path
    net: DenoiserNetwork
    steps: int
    final_loss: float
    seconds: float


@dataclass
class SimulationResult:
    """Trajectories ``melt``/``rdtrp``/``gen`` (:class:`~synthperf.flows.pfode.Trajectory`, in the
    possibly centred coordinates), the simulated data ``x`` [N, d] (model units, uncentred), the
    particle ``labels`` (int64 [N] or None) and the network's ``data_mean`` (or None)."""

    trajectories: dict[str, Trajectory]
    x: np.ndarray
    labels: Optional[np.ndarray]
    data_mean: Optional[np.ndarray]
    schedule: InflationSchedule

    def final(self, key: str) -> np.ndarray:
        """Final unscaled state u(t_end) in image space [N, d], in data (uncentred) units."""
        u = self.trajectories[key].tilde_xs[-1]
        return u if self.data_mean is None else u + self.data_mean

    @property
    def roundtrip_mse(self) -> float:
        """mean((u_rdtrp(0) - x)^2) in data units (issue 13 fix: not the scaled state z = s u)."""
        return float(np.mean((self.final("rdtrp") - self.x) ** 2))


def _exactly_one(**sources: object) -> str:
    given = [k for k, v in sources.items() if v is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one data source of {sorted(sources)}, got {given or 'none'}")
    return given[0]


def _check_toy(name: object) -> None:
    from .toy_data import TOY_DATASETS

    if not isinstance(name, str) or name not in TOY_DATASETS:
        raise ValueError(f"data_name must be one of the toy datasets {sorted(TOY_DATASETS)}, got {name!r}")


def _check_file(path: str | Path, what: str) -> None:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} {str(p)!r} does not exist (or is not a file)")


def _positive(value: object, name: str) -> float:
    v = real_scalar(value, name, allow_inf=False)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def check_schedule_args(*, dims_to_keep: object, rho: object, gamma0: object, g_type: object,
                        inflation_gap: object, end_vars: object) -> None:
    """Check the schedule arguments of :func:`train` / :func:`simulate` (spec §1.2) before any
    work; ``dims_to_keep <= data_dim`` is checked once the data is known. TypeError/ValueError
    naming the argument."""
    from .schedules import G_TYPES

    if dims_to_keep is not None:
        positive_int(dims_to_keep, "dims_to_keep")
    for name, value in (("rho", rho), ("gamma0", gamma0), ("inflation_gap", inflation_gap), ("end_vars", end_vars)):
        _positive(value, name)
    if g_type not in G_TYPES:
        raise ValueError(f"g_type must be one of {G_TYPES}, got {g_type!r}")


def check_simulate_args(*, steps: object, h: object, grid: object, end_time: object, eps_s: object, eps: object,
                        save_freq: object, total_samples: object, solver: object, mode: object, backend: object,
                        seed: object, checkpoint_every: object = None, discrete: bool = True) -> None:
    """Check every simulation option of :func:`simulate` before any work (issue 17: ``--mode
    bogus`` fails at once, not after the melt). TypeError/ValueError naming the argument."""
    from ..ops.discrete_score import MODES
    from .solvers import GRIDS, SOLVERS

    positive_int(steps, "steps", minimum=2)
    positive_int(save_freq, "save_freq")
    positive_int(total_samples, "total_samples")
    positive_int(seed, "seed", minimum=0)
    if checkpoint_every is not None:
        positive_int(checkpoint_every, "checkpoint_every", minimum=0)
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _positive(h, "h")
    T = _positive(end_time, "end_time")
    e = real_scalar(eps_s, "eps_s", allow_inf=False)
    if not 0 <= e < T:
        raise ValueError(f"need 0 <= eps_s < end_time, got eps_s={e}, end_time={T}")
    if eps is not None:
        _positive(eps, "eps")
    if backend is not None and discrete:
        from ..backend import resolve_backend
        from ..ops.discrete_score import SUPPORTED_BACKENDS

        resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="integrate_discrete")
    elif backend is not None:
        from ..backend import KNOWN_BACKENDS

        if backend not in KNOWN_BACKENDS:
            raise ValueError(f"backend must be one of {KNOWN_BACKENDS}, got {backend!r}")


def load_images(data: str | Path, max_images: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images [n, C, R, R] in [-1, 1] (float32) and labels int64 [n] (-1 = unlabelled) of a ZIP."""
    from .dataset_tool import ImageZipDataset

    with ImageZipDataset(data) as ds:
        imgs = ds.array(max_images)
        labels = ds.labels[: imgs.shape[0]].copy()
    return imgs, labels


def _image_arrays(images: ArrayLike, labels: ArrayLike | None
                  ) -> tuple[np.ndarray, tuple[int, ...], np.ndarray | None]:
    arr = np.asarray(images)
    if arr.ndim not in (2, 4) or not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"images must be a float array [n, d] or [n, C, R, R], got dtype {arr.dtype}, shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("images contain NaN or inf")
    shape = tuple(arr.shape[1:]) if arr.ndim == 4 else (1, *(2 * (int(round(np.sqrt(arr.shape[1]))),)))
    if int(np.prod(shape)) != int(np.prod(arr.shape[1:])):
        shape = (arr.shape[1],)  # not a square single-channel image: ES/MLP only
    flat = arr.reshape(arr.shape[0], -1).astype(np.float64)
    lab = None
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
            raise TypeError(f"labels must be a 1-D integer array, got dtype {lab.dtype}, shape {lab.shape}")
        if lab.shape[0] != flat.shape[0]:
            raise ValueError(f"labels has {lab.shape[0]} entries but images has {flat.shape[0]}")
        lab = lab.astype(np.int64)
    return flat, shape, lab


def train(outdir: str | Path, *, data_name: str | None = None, data: str | Path | None = None,
          images: ArrayLike | None = None, labels: ArrayLike | None = None, dims_to_keep: int | None = None,
          rho: float = 1.0, gamma0: float = 5e-4, g_type: str = "orig", inflation_gap: float = 1.0,
          end_vars: float = 1.0, tmax: float = 7.01,
          steps: int = 2000, batch: int = 512, lr: float = 2e-3, width: int = 128, depth: int = 3, seed: int = 0,
          resume: str | Path | bool | None = None, class_conditional: bool = False, center: bool = False,
          backbone: str = "auto", lr_rampup_samples: int | None = None, ema_halflife_samples: int | None = None,
          checkpoint_every: int = 0, name: str = "network") -> TrainResult:
    """Train a preconditioned denoiser (spec §2) and write ``outdir/{name}.safetensors/.json``.

    Toys: ES ``ToyMLP`` with Fourier features. Images: ``backbone="mlp"`` an ES ``ToyMLP``
    without Fourier features (``"auto"`` for d <= 256: ~10x faster than the UNet on CPU at
    8x8), ``"unet"`` the IS ``SmallUNet`` (spec §2.4). The preconditioner floors xi at
    1e-3 xi* for images (constant pixels have xi = 0).

    Checkpoints (:mod:`.training`): every ``checkpoint_every`` steps, 0 (default) = every epoch
    (images: ceil(n / batch) steps; toys: ceil(70 000 / batch)). ``resume=None`` (default)
    continues automatically from the newest complete checkpoint of the same run in ``outdir``
    (so a killed run, started again, ends with the weights of an uninterrupted one); ``False``
    starts fresh; a path continues that checkpoint. All arguments are checked before any work.
    """
    import torch

    with torch.random.fork_rng(devices=[]):  # deterministic init for a fixed seed; global RNG left untouched
        torch.manual_seed(seed)
        return _train(outdir, data_name, data, images, labels, dims_to_keep, rho, gamma0, g_type, inflation_gap,
                      end_vars, tmax, steps, batch, lr, width, depth, seed, resume, class_conditional, center, backbone,
                      lr_rampup_samples, ema_halflife_samples, checkpoint_every, name)


def _train(outdir, data_name, data, images, labels, dims_to_keep, rho, gamma0, g_type, inflation_gap, end_vars, tmax,
           steps, batch, lr, width, depth, seed, resume, class_conditional, center, backbone, lr_rampup_samples,
           ema_halflife_samples, checkpoint_every, name) -> TrainResult:
    from .networks import IFsPrecond, SmallUNet, ToyMLP
    from .training import TrainConfig
    from .training import train as train_loop

    source = _exactly_one(data_name=data_name, data=data, images=images)
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    check_schedule_args(dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0, g_type=g_type,
                        inflation_gap=inflation_gap, end_vars=end_vars)
    positive_int(width, "width")
    positive_int(depth, "depth")
    if source == "data_name":
        _check_toy(data_name)
    elif source == "data":
        _check_file(data, "data")
    if resume is not None and resume is not False:
        _check_file(checkpoint_paths(resume)[1], "resume")
    extra = {k: v for k, v in (("lr_rampup_samples", lr_rampup_samples), ("ema_halflife_samples", ema_halflife_samples))
             if v is not None}
    cfg = TrainConfig(steps=steps, batch=batch, lr=lr, t_max=tmax, seed=seed, checkpoint_every=checkpoint_every, **extra)
    sched_kw = dict(dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0, g_type=g_type, inflation_gap=inflation_gap,
                    end_vars=end_vars)
    if source == "data_name":
        from .toy_data import make_toy

        if class_conditional or center:
            raise ValueError("class_conditional and center need labelled image data (data= or images=), not a toy")
        sch, W = InflationSchedule.from_data(make_toy(data_name, 70_000, seed=seed + 1_000_003), **sched_kw)
        sch.check_reaches_gaussian(tmax)
        net = IFsPrecond(ToyMLP(sch.data_dim, width=width, depth=depth), sch, W)
        sample = lambda b, rng: make_toy(data_name, b, seed=int(rng.integers(1 << 31))) @ W  # noqa: E731
        steps_per_epoch = None  # training.TOY_EPOCH_SAMPLES per epoch
    else:
        if source == "data":
            images, zip_labels = load_images(data)
            labels = zip_labels if labels is None else labels
        flat, shape, lab = _image_arrays(images, labels)
        num_classes = 0
        if class_conditional:
            if lab is None or (lab < 0).any():
                raise ValueError("class_conditional=True needs a label (>= 0) for every image")
            num_classes = int(lab.max()) + 1
        mean = flat.mean(axis=0) if center else None
        fit = flat - mean if center else flat
        sch, W = InflationSchedule.from_data(fit, **sched_kw)
        sch.check_reaches_gaussian(tmax)
        d = sch.data_dim
        kind = ("mlp" if d <= 256 else "unet") if backbone == "auto" else backbone
        if kind == "unet":
            if len(shape) != 3:
                raise ValueError(f"backbone='unet' needs square images [n, C, R, R], got image shape {shape}")
            C, R = shape[0], shape[1]
            bb = SmallUNet(C, R, channels=max(8, width // 4), mults=(1, 2) if R <= 8 else (1, 2, 2),
                           num_classes=num_classes)
            net = IFsPrecond(bb, sch, W, space="IS", image_shape=shape, xi_min=1e-3 * sch.xi_star, data_mean=mean)
        else:
            bb = ToyMLP(d, width=width, depth=depth, fourier_features=0, num_classes=num_classes)
            net = IFsPrecond(bb, sch, W, xi_min=1e-3 * sch.xi_star, data_mean=mean)
        fit_es = fit @ W
        steps_per_epoch = -(-fit_es.shape[0] // cfg.batch)

        def sample(b: int, rng: np.random.Generator):
            idx = rng.integers(0, fit_es.shape[0], b)
            return (fit_es[idx], lab[idx]) if num_classes else fit_es[idx]

    t0 = time.perf_counter()
    with RunLock(outdir):  # one writer per checkpoint folder (a second run is refused, naming the holder)
        state = train_loop(net, sample, cfg, checkpoint_dir=outdir, resume=resume, name=name,
                           steps_per_epoch=steps_per_epoch)
    losses = state.losses or [float("nan")]
    return TrainResult(checkpoint=Path(outdir) / f"{name}.json", net=state.ema.eval(), steps=state.step,
                       final_loss=float(np.mean(losses[-50:])), seconds=time.perf_counter() - t0)


def simulate(save_dir: str | Path | None = None, *, data_name: str | None = None, data: str | Path | None = None,
             images: ArrayLike | None = None, labels: ArrayLike | None = None,
             network: str | Path | DenoiserNetwork | None = None, dims_to_keep: int | None = None,
             rho: float = 1.0, gamma0: float = 5e-4, g_type: str = "orig", inflation_gap: float = 1.0,
             end_vars: float = 1.0, steps: int = 1501, h: float = 1e-2, grid: str = "ifs", end_time: float = 15.01,
             eps_s: float = 1e-2, eps: float | None = None, save_freq: int = 10, total_samples: int = 2000,
             solver: str = "euler", mode: str = "stable", backend: str | None = None, seed: int = 0,
             checkpoint_every: int | None = None) -> SimulationResult:
    """melt, roundtrip and gen (spec §5) on ``total_samples`` points of one data source.

    ``network``: a checkpoint path or a loaded ``IFsPrecond``; None uses the discrete score of
    the same points (spec §3). Images default to all points when ``total_samples`` exceeds
    them; a seeded permutation picks the subset. A class-conditional network gets each point's
    label for melt and roundtrip, and generation uses the same labels (so the generated set has
    the class mix of the melted batch). ``eps=None``: melt-matched PRR latent (see
    :meth:`InflationSchedule.generation_latent_std`). Files, integration checkpoints every
    ``checkpoint_every`` steps and resuming as :func:`run_simulations`. Every argument is checked
    before any work (TypeError/ValueError/FileNotFoundError naming it).
    """
    from .pfode import DenoiserFlow, DiscreteFlow

    source = _exactly_one(data_name=data_name, data=data, images=images)
    check_simulate_args(steps=steps, h=h, grid=grid, end_time=end_time, eps_s=eps_s, eps=eps, save_freq=save_freq,
                        total_samples=total_samples, solver=solver, mode=mode, backend=backend, seed=seed,
                        checkpoint_every=checkpoint_every, discrete=network is None)
    if network is None or isinstance(network, (str, Path)):
        check_schedule_args(dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0, g_type=g_type,
                            inflation_gap=inflation_gap, end_vars=end_vars)
    if isinstance(network, (str, Path)):
        _check_file(checkpoint_paths(network)[1], "network")
    elif network is not None and not callable(getattr(network, "denoise", None)):
        raise TypeError(f"network must be a checkpoint path or a loaded IFsPrecond, got {type(network).__name__}")
    if source == "data_name":
        _check_toy(data_name)
    elif source == "data":
        _check_file(data, "data")
    n = positive_int(total_samples, "total_samples")
    lab = None
    if source == "data_name":
        from .toy_data import make_toy

        x = make_toy(data_name, n, seed=seed)
        tag = data_name
    else:
        if source == "data":
            images, zip_labels = load_images(data)
            labels = zip_labels if labels is None else labels
            tag = Path(data).stem
        else:
            tag = "images"
        x, _, lab = _image_arrays(images, labels)
        if n < x.shape[0]:
            idx = np.sort(np.random.default_rng(seed).permutation(x.shape[0])[:n])
            x, lab = x[idx], (lab[idx] if lab is not None else None)
    mean = None
    if network is None:
        sch, W = InflationSchedule.from_data(x, dims_to_keep=dims_to_keep, rho=rho, gamma0=gamma0, g_type=g_type,
                                             inflation_gap=inflation_gap, end_vars=end_vars)
        flow = DiscreteFlow(x @ W, mode=mode, backend=backend)
        x_flow = x
    else:
        from .training import load_network

        net = load_network(network) if isinstance(network, (str, Path)) else network
        sch, W = net.schedule, net.W.double().numpy()
        mean = net.data_mean
        if net.num_classes and (lab is None or (lab < 0).any() or lab.max() >= net.num_classes):
            raise ValueError(f"the network is class-conditional ({net.num_classes} classes): every point needs a "
                             "label in [0, num_classes)")
        flow = DenoiserFlow(net.denoise, labels=lab if net.num_classes else None)
        x_flow = x if mean is None else x - mean
    with RunLock(save_dir) if save_dir is not None else nullcontext():  # one writer per output folder
        trajectories = run_simulations(
            flow, sch, W, x_flow, data_name=tag, save_dir=save_dir, steps=steps, h=h, grid=grid, end_time=end_time,
            eps_s=eps_s, solver=solver, eps=eps, save_freq=save_freq, seed=seed, checkpoint_every=checkpoint_every,
            extra_params={"network": str(network) if isinstance(network, (str, Path)) else None,
                          "data_mean": None if mean is None else mean.tolist()})
    return SimulationResult(trajectories, x, lab, mean, sch)
