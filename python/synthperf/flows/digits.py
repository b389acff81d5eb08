"""Class-conditional inflationary flows on the scikit-learn digits (d = 64): the demo contract.

:func:`make_digits_synthetic` trains (or reuses) one label-conditioned denoiser and generates
``per_class`` images of every class by the pfODE (spec §5.2 generation: vp_ode grid, Heun,
T = 15.01 -> eps_s = 1e-2, no final denoising). :func:`plot_digits_trajectories` draws melt and
generation for a trained model (:mod:`.plots`). :func:`evaluate_digits` measures roundtrip
MSE (pixels in [0, 1]), CAS (shared MLP protocol) and Frechet distances over seeds.

Why one label-conditioned network, not one network per class: the 10 classes share strokes
and the PCA basis (the schedule is fit once on all digits), so a shared network trains ~10x
fewer parameters per sample on ~900 images; one network per class would leave ~90 images
each and 1/10 of the time budget per network. Labels enter as an embedding added to the time
embedding (EDM's ``label_dim``), no classifier(-free) guidance.

Units: ``x01`` pixels in [0, 1] (images / 16); the model sees x = 2 x01 - 1 ([-1, 1], spec §1.3)
minus the per-pixel training mean (``center=True``, a deviation from §1.3: the digits' mean
image is far from 0 and constant pixels would otherwise need a constant output through
c_out -> 0). Generated images are mapped back and clipped to [0, 1].

Schedules: ``"PRP"`` (k = d = 64) and ``"PRR"`` (k = 13 ~ the digits' participation ratio
13.2, ``g_type="constant_inflation_gap"``, inflation_gap 0.02, i.e. IG = 1.02 as the paper's
headline image runs). rho = 1 and T = 15.01: gamma*(T) = 1.6e3 (PRP) >> xi* = 2.8.
PRR generation starts from the melt-matched latent (eps = None).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Predictor
from .._validation import positive_int
from .api import DenoiserNetwork
from .pfode import Trajectory

__all__ = ["BUDGETS", "SCHEDULES", "make_digits_synthetic", "load_digits_model", "generate_digits",
           "digits_roundtrip", "evaluate_digits", "plot_digits_trajectories", "cas_score", "digits_split",
           "nearest_neighbour_ratio"]

END_TIME, EPS_S = 15.01, 1e-2
SCHEDULES: dict[str, dict[str, Any]] = {
    "PRP": {"dims_to_keep": None},
    "PRR": {"dims_to_keep": 13, "g_type": "constant_inflation_gap", "inflation_gap": 0.02},
}
# demo: train + sample within 90 s on 2 quiet cores (2 torch threads); full: the quality setting (same
# network, 2x the steps, finer ODE grid). A larger full setting (width 384, 6000 x 512) memorised the
# 898 training images (nearest-neighbour ratio 0.55, held-out roundtrips exploding) without a
# significant CAS gain (0.960 +- 0.005 vs 0.956 +- 0.001), so it was dropped.
BUDGETS: dict[str, dict[str, Any]] = {
    # plumbing only (tests, ``synthperf demo --quick``): seconds, not quality
    "tiny": {"steps": 40, "batch": 64, "width": 32, "depth": 1, "lr": 2e-3, "n_iters": 8, "solver": "euler"},
    # demo: width 192 x 2000 steps (3 seeds, 1 thread: CAS 0.954 +- 0.004, FD-MLP 0.668 +- 0.018, train 33 s)
    # in place of 256 x 2500 (CAS 0.956 +- 0.001, FD-MLP 0.587 +- 0.007, train 60 s): CAS holds, FD is
    # 14% worse, training takes half the time; "full" is the quality setting.
    "demo": {"steps": 2000, "batch": 256, "width": 192, "depth": 3, "lr": 2e-3, "n_iters": 48, "solver": "heun"},
    "full": {"steps": 5000, "batch": 256, "width": 256, "depth": 3, "lr": 2e-3, "n_iters": 128, "solver": "heun"},
}


def _check_inputs(x_train: ArrayLike, y_train: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x_train)
    y = np.asarray(y_train)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x_train must be a float array, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"x_train must be [N, 64] (flattened 8x8 digits), got shape {x.shape}")
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise ValueError("x_train must be finite pixels in [0, 1] (images / 16)")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"y_train must be an integer array, got dtype {y.dtype}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"y_train must be [N] = [{x.shape[0]}], got shape {y.shape}")
    if y.min() < 0 or y.max() > 9 or np.unique(y).size != 10:
        raise ValueError("y_train must hold labels 0..9 with every class present")
    return x.astype(np.float32), y.astype(np.int64)


def _fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, np.float32).tobytes())
    h.update(np.ascontiguousarray(y, np.int64).tobytes())
    return h.hexdigest()[:10]


def _model_dir(out_dir: Path, schedule: str, budget: str, seed: int, fp: str) -> Path:
    return Path(out_dir) / f"flows_{schedule}_{budget}_seed{seed}_{fp}"


def load_digits_model(model_or_dir: DenoiserNetwork | str | Path) -> DenoiserNetwork:
    """An ``IFsPrecond`` (eval mode) from a loaded net, a model folder (holding ``network.json``) or a
    checkpoint path."""
    from .networks import IFsPrecond
    from .training import load_network

    if isinstance(model_or_dir, IFsPrecond):
        return model_or_dir.eval()
    p = Path(model_or_dir)
    if p.is_dir():
        p = p / "network.json"
    if not p.with_suffix(".json").is_file():
        raise ValueError(f"model_or_dir {model_or_dir!s} is neither a loaded network nor a flows checkpoint / folder")
    return load_network(p)


def generate_digits(net: DenoiserNetwork, labels: ArrayLike, *, seed: int = 0, n_iters: int = 128,
                    solver: str = "heun", eps: float | None = None, save_every: int | None = None) -> Trajectory:
    """Generate one image per label (int [M]) by the pfODE T -> eps_s; returns the
    :class:`~synthperf.flows.pfode.Trajectory` (centred coordinates; add ``net.data_mean``)."""
    from .pfode import DenoiserFlow, from_latent, sample_latent, time_grid

    lab = np.asarray(labels, dtype=np.int64)
    t = time_grid("vp_ode", "gen", positive_int(n_iters, "n_iters", minimum=2), end_time=END_TIME, eps_s=EPS_S)
    z = sample_latent(net.schedule, lab.shape[0], eps=eps, seed=seed, t_end=float(t[0]))
    flow = DenoiserFlow(net.denoise, labels=lab if net.num_classes else None)
    return from_latent(flow, net.schedule, net.W.double().numpy(), z, t, solver=solver,
                       save_every=save_every or n_iters)


def digits_roundtrip(net: DenoiserNetwork, x01: ArrayLike, y: ArrayLike, *, n_iters: int = 128, solver: str = "heun",
                     save_every: int | None = None) -> tuple[Trajectory, Trajectory, float]:
    """Melt x01 [M, 64] (labels ``y`` int [M]; eps_s -> T) then integrate back from z(T); returns (melt, rdtrp)
    trajectories (centred model coordinates) and the roundtrip MSE in [0, 1] pixel units."""
    from .pfode import DenoiserFlow, from_latent, melt, time_grid

    x = 2.0 * np.asarray(x01, np.float64) - 1.0
    mean = np.zeros(64) if net.data_mean is None else net.data_mean
    t = time_grid("vp_ode", "melt", positive_int(n_iters, "n_iters", minimum=2), end_time=END_TIME, eps_s=EPS_S)
    flow = DenoiserFlow(net.denoise, labels=np.asarray(y, np.int64) if net.num_classes else None)
    W = net.W.double().numpy()
    m = melt(flow, net.schedule, W, x - mean, t, solver=solver, save_every=save_every or n_iters)
    r = from_latent(flow, net.schedule, W, m.final_es, t[::-1].copy(), solver=solver, save_every=save_every or n_iters)
    back01 = (r.tilde_xs[-1] + mean + 1.0) / 2.0
    return m, r, float(np.mean((back01 - np.asarray(x01, np.float64)) ** 2))


def make_digits_synthetic(x_train: ArrayLike, y_train: ArrayLike, per_class: int, *, out_dir: str | Path,
                          seed: int = 0, budget: str = "demo",
                          schedule: str = "PRP") -> tuple[np.ndarray, np.ndarray, dict]:
    """Train (or reuse) a class-conditional flow on (x_train [N, 64] float in [0, 1], y_train int [N])
    and return (x01 float32 [10 per_class, 64] in [0, 1], y int64 [10 per_class], info).

    ``out_dir/flows_{schedule}_{budget}_seed{seed}_{data hash}/`` holds the checkpoint
    (safetensors + JSON, resumed if a run was killed) and the generated samples, so a second call
    with the same arguments is fast. Deterministic on CPU for a fixed seed. ``budget``: "demo"
    (~60-90 s on 2 quiet cores) or "full"; ``schedule``: "PRP" or "PRR" (see the module doc).
    """
    from safetensors.numpy import load_file, save

    from .._io import atomic_write_bytes
    from .api import train

    x, y = _check_inputs(x_train, y_train)
    per_class = positive_int(per_class, "per_class")
    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {sorted(BUDGETS)}, got {budget!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {schedule!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative int, got {seed!r}")
    b = BUDGETS[budget]
    mdir = _model_dir(Path(out_dir), schedule, budget, int(seed), _fingerprint(x, y))
    ckpt = mdir / "network.json"
    done = False
    if ckpt.is_file():
        try:
            done = json.loads(ckpt.read_text())["step"] >= b["steps"]
        except (OSError, ValueError, KeyError):
            done = False
    train_seconds, final_loss = 0.0, float("nan")
    if not done:
        res = train(mdir, images=2.0 * x - 1.0, labels=y, tmax=END_TIME, steps=b["steps"], batch=b["batch"],
                    lr=b["lr"], width=b["width"], depth=b["depth"], seed=int(seed), class_conditional=True,
                    center=True, backbone="mlp", lr_rampup_samples=20 * b["batch"],
                    ema_halflife_samples=max(b["steps"] * b["batch"] // 10, b["batch"]),
                    checkpoint_every=max(b["steps"] // 5, 1), resume=ckpt if ckpt.is_file() else None,
                    **SCHEDULES[schedule])
        train_seconds, final_loss = res.seconds, res.final_loss
    net = load_digits_model(mdir)
    samples = mdir / f"samples_pc{per_class}.safetensors"
    t0 = time.perf_counter()
    if samples.is_file():
        cached = load_file(str(samples))
        x01, labels, reused = cached["x01"], cached["y"], 1
    else:
        labels = np.repeat(np.arange(10, dtype=np.int64), per_class)
        traj = generate_digits(net, labels, seed=int(seed) + 10_007, n_iters=b["n_iters"], solver=b["solver"])
        raw = (traj.tilde_xs[-1] + net.data_mean + 1.0) / 2.0
        x01 = np.clip(raw, 0.0, 1.0).astype(np.float32)
        atomic_write_bytes(samples, save({"x01": x01, "y": labels, "raw": raw.astype(np.float32)}))
        reused = 0
    sample_seconds = time.perf_counter() - t0
    raw = load_file(str(samples))["raw"]
    info = {"family": "flows", "preset": budget, "schedule": net.schedule.name, "dims_to_keep": net.schedule.dims_to_keep,
            "train_steps": b["steps"], "train_seconds": float(train_seconds), "sample_seconds": float(sample_seconds),
            "final_loss": final_loss, "nfe": 2 * (b["n_iters"] - 1) if b["solver"] == "heun" else b["n_iters"] - 1,
            "solver": b["solver"], "reused_model": int(done), "reused_samples": reused, "model_dir": str(mdir),
            "clip_fraction": float(((raw < 0) | (raw > 1)).mean()), "latent_eps": "melt-matched"}
    return x01, labels, info


# ----------------------------------------------------------------------------- evaluation
def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared protocol split (:func:`synthperf.metrics.digits_split`, ``random_state=seed``;
    0 is the CAS protocol's split): (x_train, y_train, x_test, y_test)."""
    from ..metrics import digits_split as shared_split

    return shared_split(seed)


def cas_score(x_syn: ArrayLike, y_syn: ArrayLike, x_test: ArrayLike, y_test: ArrayLike, seed: int = 0, *,
              return_model: bool = False) -> float | tuple[float, Predictor]:
    """Shared CAS protocol: MLPClassifier((128,), alpha=1e-3, max_iter=500, random_state=seed) on the
    synthetic set (x [n, 64], y int [n]), accuracy on the real held-out half; with
    ``return_model`` also the fitted ``MLPClassifier``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ..metrics import default_cas_classifier

    clf = default_cas_classifier(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(x_syn), np.asarray(y_syn))
    acc = float(clf.score(np.asarray(x_test), np.asarray(y_test)))
    return (acc, clf) if return_model else acc


def _mlp_features(clf: Any, x: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(x, np.float64) @ clf.coefs_[0] + clf.intercepts_[0], 0.0)


def nearest_neighbour_ratio(x_syn: ArrayLike, x_train: ArrayLike, x_test: ArrayLike) -> float:
    """Memorisation check: median distance of synthetic images to their nearest training image,
    divided by the same median for real held-out images (~1: no copying; << 1: copies)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(x_train, np.float64))
    return float(np.median(tree.query(np.asarray(x_syn, np.float64))[0]) /
                 np.median(tree.query(np.asarray(x_test, np.float64))[0]))


def evaluate_digits(out_dir: str | Path, *, schedule: str = "PRP", budget: str = "demo",
                    seeds: Iterable[int] = (0, 1, 2), per_class: int = 90, n_roundtrip: int = 200) -> dict[str, object]:
    """Per seed: generate with :func:`make_digits_synthetic`, CAS (MLP seed = seed), Frechet distance
    to the held-out half in pixel space and in the 128-d hidden features of an MLP trained on the
    real train half ("FID-like"), the roundtrip MSE ([0, 1] pixels) of the first ``n_roundtrip``
    held-out (``roundtrip_mse01``) and training (``roundtrip_mse01_train``, the spec §6 protocol
    uses training images) images and :func:`nearest_neighbour_ratio`. Returns per-seed rows and mean / SE (std / sqrt(n_seeds)) of each metric."""
    import warnings

    from scipy.linalg import LinAlgWarning

    from .metrics import frechet_distance_from_features

    warnings.filterwarnings("ignore", category=LinAlgWarning)  # constant pixels: singular pixel covariances
    x_tr, y_tr, x_te, y_te = digits_split()
    real_cas, real_clf = cas_score(x_tr, y_tr, x_te, y_te, 0, return_model=True)
    ref = {"cas_real": real_cas, "fd_pixels_real": frechet_distance_from_features(x_tr, x_te),
           "fd_mlp_real": frechet_distance_from_features(_mlp_features(real_clf, x_tr), _mlp_features(real_clf, x_te))}
    rows = []
    for s in seeds:
        xs, ys, info = make_digits_synthetic(x_tr, y_tr, per_class, out_dir=out_dir, seed=int(s), budget=budget,
                                             schedule=schedule)
        net = load_digits_model(info["model_dir"])
        t0 = time.perf_counter()
        bud = BUDGETS[budget]
        _, _, mse = digits_roundtrip(net, x_te[:n_roundtrip], y_te[:n_roundtrip], n_iters=bud["n_iters"],
                                     solver=bud["solver"])
        _, _, mse_tr = digits_roundtrip(net, x_tr[:n_roundtrip], y_tr[:n_roundtrip], n_iters=bud["n_iters"],
                                        solver=bud["solver"])
        rows.append({"seed": int(s), "cas": cas_score(xs, ys, x_te, y_te, int(s)), "roundtrip_mse01_train": mse_tr,
                     "nn_ratio": nearest_neighbour_ratio(xs, x_tr, x_te),
                     "fd_pixels": frechet_distance_from_features(xs, x_te),
                     "fd_mlp": frechet_distance_from_features(_mlp_features(real_clf, xs), _mlp_features(real_clf, x_te)),
                     "roundtrip_mse01": mse, "roundtrip_seconds": time.perf_counter() - t0,
                     **{k: info[k] for k in ("train_seconds", "sample_seconds", "clip_fraction", "final_loss")}})
    summary: dict[str, object] = {"schedule": schedule, "budget": budget, "per_class": per_class, "rows": rows, **ref}
    for key in ("cas", "fd_pixels", "fd_mlp", "roundtrip_mse01", "roundtrip_mse01_train", "nn_ratio", "train_seconds",
                "sample_seconds"):
        v = np.array([r[key] for r in rows], np.float64)
        summary[key] = float(v.mean())
        summary[key + "_se"] = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
    return summary


def plot_digits_trajectories(model_or_dir: DenoiserNetwork | str | Path, out_stem: str | Path,
                             **kwargs: object) -> list[Path]:
    """Trajectories figure (melt and generation grids, PR and per-dim variance curves) as
    ``out_stem.png`` + ``out_stem.pdf``; ``kwargs`` are the keyword options of
    :func:`synthperf.flows.plots.plot_flow_trajectories` (x01, y, n_show, ...), which checks them."""
    from .plots import plot_flow_trajectories

    return plot_flow_trajectories(load_digits_model(model_or_dir), out_stem, **kwargs)
