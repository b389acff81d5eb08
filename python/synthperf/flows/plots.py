"""Figures of inflationary-flow results (matplotlib object API, PNG + PDF).

:func:`plot_flow_trajectories` draws, for a trained image network (e.g. the digits model of
:mod:`synthperf.flows.digits`):

- top left, **melt**: ``n_show`` images (rows) at ``n_frames`` times (columns) from t = eps_s to T;
- top right, **generation**: ``n_show`` latents integrated back from T to eps_s;
- bottom left, the participation ratio PR = tr(S)^2 / tr(S^2) of the particle cloud's ES
  covariance S of z(t) along melt and generation (spec §1.1), with the schedule's prediction
  for Gaussian data, diag s(t)^2 (xi + gamma(t));
- bottom right, per-dimension variances of z(t) in eigen-space (measured along the melt, solid;
  prediction s(t)^2 (xi_i + gamma_i(t)), dotted) for a few PCA dimensions.

Images are shown in data units as z(t) / s(eps_s) + mean (so the first melt frame is the data
and the last one the latent at data scale), mapped from [-1, 1] to grey levels and clipped.
"""
from __future__ import annotations

from pathlib import Path
import numpy as np
from numpy.typing import ArrayLike

from .._io import save_figure
from .._validation import positive_int
from .api import DenoiserNetwork


def participation_ratio(z: np.ndarray) -> float:
    """tr(S)^2 / tr(S^2) of the covariance S (ddof=1) of points z [n, d]."""
    c = np.cov(np.asarray(z, np.float64), rowvar=False)
    return float(np.trace(c) ** 2 / max(np.sum(c * c), 1e-300))


def _mosaic(frames: np.ndarray, side: int) -> np.ndarray:
    """frames [n_show, n_frames, side*side] in [0, 1] -> one image with 1-px gaps (0)."""
    n, f = frames.shape[:2]
    out = np.zeros((n * (side + 1) - 1, f * (side + 1) - 1))  # gaps: 0 = white in gray_r
    for i in range(n):
        for j in range(f):
            out[i * (side + 1): i * (side + 1) + side, j * (side + 1): j * (side + 1) + side] = \
                frames[i, j].reshape(side, side)
    return out


def plot_flow_trajectories(net: DenoiserNetwork, out_stem: str | Path, *, x01: ArrayLike | None = None,
                           y: ArrayLike | None = None, n_show: int = 8, n_frames: int = 8, n_particles: int = 300,
                           n_iters: int = 64, solver: str = "heun", seed: int = 0, dims: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 63)) -> list[Path]:
    """Write ``out_stem.png`` and ``out_stem.pdf``; returns both paths.

    ``net``: a trained ``IFsPrecond`` on square single-channel images (d = R^2, e.g. 64).
    ``x01`` [n, d] in [0, 1] and ``y`` int [n]: the particles to melt (default: ``n_particles``
    scikit-learn digits, seeded, the shown rows one per class 0..n_show-1). Generation uses the
    same labels (class-conditional nets) and a seeded latent (melt-matched for PRR).
    """
    from matplotlib.figure import Figure

    from .digits import digits_roundtrip, generate_digits

    n_show = positive_int(n_show, "n_show")
    n_frames = positive_int(n_frames, "n_frames", minimum=2)
    d = net.schedule.data_dim
    side = int(round(np.sqrt(d)))
    if side * side != d:
        raise ValueError(f"plot_flow_trajectories needs square single-channel images, got data_dim = {d}")
    if x01 is None:
        from sklearn.datasets import load_digits

        dg = load_digits()
        xa, ya = dg.images.reshape(-1, 64) / 16.0, dg.target.astype(np.int64)
        rng = np.random.default_rng(seed)
        first = [int(np.flatnonzero(ya == c)[0]) for c in range(min(n_show, 10))]
        rest = rng.permutation(np.setdiff1d(np.arange(len(ya)), first))[: max(n_particles - len(first), 0)]
        idx = np.concatenate([first, rest]).astype(int)
        x01, y = xa[idx], ya[idx]
    x01 = np.asarray(x01, np.float64)
    if x01.ndim != 2 or x01.shape[1] != d:
        raise ValueError(f"x01 must be [n, {d}], got shape {x01.shape}")
    y = np.zeros(x01.shape[0], np.int64) if y is None else np.asarray(y, np.int64)
    if y.shape != (x01.shape[0],):
        raise ValueError(f"y must be [n] = [{x01.shape[0]}], got shape {y.shape}")
    if x01.shape[0] < max(n_show, 3):
        raise ValueError(f"need at least max(n_show, 3) = {max(n_show, 3)} particles, got {x01.shape[0]}")
    mean = np.zeros(d) if net.data_mean is None else np.asarray(net.data_mean)
    melt_t, _, rt_mse = digits_roundtrip(net, x01, y, n_iters=n_iters, solver=solver, save_every=1)
    gen_t = generate_digits(net, y, seed=seed, n_iters=n_iters, solver=solver, save_every=1)
    sch = net.schedule
    s0 = float(sch.s(melt_t.times[0])[0, 0])

    def frames(traj) -> np.ndarray:
        pick = np.linspace(0, len(traj.times) - 1, n_frames).round().astype(int)
        imgs = traj.xs[pick][:, :n_show] / s0 + mean             # [F, n_show, d], data units [-1, 1]
        return np.clip((imgs.transpose(1, 0, 2) + 1.0) / 2.0, 0, 1), traj.times[pick]

    fig = Figure(figsize=(13, 9.5), layout="constrained")
    axes = fig.subplots(2, 2, height_ratios=[1.15, 1])
    for ax, traj, title in ((axes[0, 0], melt_t, "melt (data -> latent)"), (axes[0, 1], gen_t, "generation (latent -> data)")):
        fr, times = frames(traj)
        ax.imshow(_mosaic(fr, side), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([j * (side + 1) + side / 2 - 0.5 for j in range(n_frames)], [f"{t:.2g}" for t in times])
        ax.set_yticks([i * (side + 1) + side / 2 - 0.5 for i in range(n_show)],
                      [str(int(v)) for v in y[:n_show]] if net.num_classes else [""] * n_show)
        ax.set_xlabel("t")
        ax.set_ylabel("label" if net.num_classes else "")
        ax.set_title(f"{sch.name}: {title}")
    # PR along time
    ax = axes[1, 0]
    for traj, style, lab in ((melt_t, "-", "melt"), (gen_t, "--", "generation")):
        ax.plot(traj.times, [participation_ratio(z) for z in traj.xs_es], style, label=f"{lab} (measured)")
    tt = np.linspace(melt_t.times[0], melt_t.times[-1], 200)
    pred = sch.s(tt) ** 2 * (np.asarray(sch.xi)[None, :] + sch.gamma(tt))
    ax.plot(tt, pred.sum(1) ** 2 / (pred ** 2).sum(1), ":", color="k", label="Gaussian prediction")
    ax.set_xlabel("t")
    ax.set_ylabel("participation ratio of z(t)")
    ax.set_title(f"PR (d = {d}, k = {sch.dims_to_keep}); roundtrip MSE {rt_mse:.2g} ([0, 1] px)")
    ax.legend(fontsize=8)
    # per-dimension variances
    ax = axes[1, 1]
    var = melt_t.xs_es.var(axis=1)                               # [S+1, d]
    colors = [f"C{i % 10}" for i in range(len(dims))]
    for c, j in zip(colors, [j for j in dims if j < d]):
        ax.plot(melt_t.times, np.maximum(var[:, j], 1e-30), "-", color=c, label=f"dim {j}")
        ax.plot(tt, pred[:, j], ":", color=c)
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("Var z_i(t) (eigen-space)")
    ax.set_title("per-dimension variance along the melt (dotted: s^2 (xi + gamma))")
    ax.legend(fontsize=7, ncol=2)
    out = Path(out_stem)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, out, dpi=130)  # <stem>.png + <stem>.pdf, each written atomically
