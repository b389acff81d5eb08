"""Loaders for the SPPI data layouts under a local root directory (spec §6).

MEPS (regression)::

    {root}/meps/models/quantile_regression/alpha_{a}/meps_{panel}/ages_{lo}_{hi}/pred.npy  # (n, 1, 2) f32
    {root}/meps/models/quantile_regression/alpha_{a}/meps_{panel}/ages_{lo}_{hi}/true.npy  # (n, 1)    f32

"Real" = panel 21, "synthetic" = panel 20 in the paper's experiment. Age ranges are given
as upstream writes them ('0-20', '20-40', '40-60', '60+', 'all').

ImageNet probabilities (classification)::

    {root}/imagenet/models/{model}/{source}/{class:04d}/probs.npy   # (n_images, 1000) f32

``source`` is ``imagenet_train`` (real), ``sdv5`` or ``flux`` (generated). Every file is
read with ``np.load(allow_pickle=False)``; a missing file raises FileNotFoundError naming
the path, a corrupt or mis-shaped one ValueError. Nothing is downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

#: The 30 ImageNet classes of the paper's "subset" experiments (upstream order, spec §4).
SUBSET_CLASSES: tuple[int, ...] = (16, 207, 250, 626, 852, 862, 444, 17, 676, 217, 880, 337, 336, 208, 222,
                                   18, 13, 270, 20, 15, 321, 392, 157, 326, 993, 991, 994, 389, 395, 0)
DEFAULT_IMAGENET_MODEL = "CLIP-ViT-B-32-laion2B-s34B-b79K"
MEPS_AGE_DIRS = {"0-20": "ages_0_20", "20-40": "ages_20_40", "40-60": "ages_40_60", "60+": "ages_60_100",
                 "all": "ages_all"}


@dataclass(frozen=True)
class RegressionData:
    """Quantile-regression outputs: ``intervals`` float32 [n, 2] ([lo, hi]) and ``y`` float32 [n]."""

    intervals: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        iv, y = np.asarray(self.intervals), np.asarray(self.y)
        if iv.ndim != 2 or iv.shape[1] != 2:
            raise ValueError(f"intervals must be [n, 2], got shape {iv.shape}")
        if y.ndim != 1 or y.shape[0] != iv.shape[0]:
            raise ValueError(f"y must be [n] with n = {iv.shape[0]}, got shape {y.shape}")
        if iv.dtype.kind != "f" or y.dtype.kind != "f":
            raise TypeError("intervals and y must be float arrays")
        if np.isnan(iv).any() or np.isnan(y).any():
            raise ValueError("intervals/y contain NaN")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class ClassificationData:
    """Softmax outputs ``probs`` float32 [n, C] with integer class ``labels`` [n] (grouped by class)."""

    probs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        p, lab = np.asarray(self.probs), np.asarray(self.labels)
        if p.ndim != 2:
            raise ValueError(f"probs must be [n, C], got shape {p.shape}")
        if lab.ndim != 1 or lab.shape[0] != p.shape[0]:
            raise ValueError(f"labels must be [n] with n = {p.shape[0]}, got shape {lab.shape}")
        if lab.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got dtype {lab.dtype}")
        if lab.size and ((lab < 0) | (lab >= p.shape[1])).any():
            raise ValueError(f"labels out of range: they must lie in [0, {p.shape[1]})")
        if p.dtype.kind != "f" or np.isnan(p).any():
            raise ValueError("probs must be a float array without NaN")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def classes(self) -> np.ndarray:
        return np.unique(self.labels)


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"missing data file {path}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:  # pickled/object arrays, bad header
        raise ValueError(f"cannot read {path}: {exc} (object/pickled arrays are refused)") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"corrupt .npy file {path}: {exc}") from None


def _root(root: str | os.PathLike) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path, got {type(root).__name__}")
    path = Path(root)
    if not path.is_dir():
        raise FileNotFoundError(f"data root {path} is not a directory")
    return path


def meps_dir(root: str | os.PathLike, alpha: float = 0.1, panel: int = 21, age_range: str = "0-20") -> Path:
    """Directory of one MEPS (alpha, panel, age range) model output (spec §6)."""
    if age_range not in MEPS_AGE_DIRS:
        raise ValueError(f"unknown age_range {age_range!r}: expected one of {tuple(MEPS_AGE_DIRS)}")
    return _root(root) / "meps" / "models" / "quantile_regression" / f"alpha_{alpha:g}" / f"meps_{int(panel)}" / MEPS_AGE_DIRS[age_range]


def load_meps(root: str | os.PathLike, alpha: float = 0.1, panel: int = 21, age_range: str = "0-20") -> RegressionData:
    """Load ``pred.npy`` (n, 1, 2) and ``true.npy`` (n, 1), squeezed to [n, 2] and [n] (float32)."""
    d = meps_dir(root, alpha, panel, age_range)
    pred = _load_npy(d / "pred.npy")
    true = _load_npy(d / "true.npy")
    if pred.dtype.kind != "f" or true.dtype.kind != "f":
        raise ValueError(f"{d}: pred.npy/true.npy must hold floats, got {pred.dtype}/{true.dtype}")
    if pred.ndim == 3 and pred.shape[1] == 1:
        pred = pred[:, 0, :]
    if true.ndim == 2 and true.shape[1] == 1:
        true = true[:, 0]
    if pred.ndim != 2 or pred.shape[1] != 2 or true.ndim != 1 or true.shape[0] != pred.shape[0]:
        raise ValueError(f"{d}: expected pred (n, 1, 2) and true (n, 1) with the same n, "
                         f"got {pred.shape} and {true.shape}")
    return RegressionData(np.ascontiguousarray(pred), np.ascontiguousarray(true))


def load_meps_pair(root: str | os.PathLike, alpha: float = 0.1, age_range: str = "0-20",
                   real_panel: int = 21, synth_panel: int = 20) -> tuple[RegressionData, RegressionData]:
    """(real, synthetic) MEPS data as in the paper: panel 21 vs panel 20 of one age group."""
    return load_meps(root, alpha, real_panel, age_range), load_meps(root, alpha, synth_panel, age_range)


def load_imagenet_probs(root: str | os.PathLike, classes: Iterable[int] = SUBSET_CLASSES, *,
                        source: str = "imagenet_train", model: str = DEFAULT_IMAGENET_MODEL,
                        missing: str = "raise") -> ClassificationData:
    """Concatenate ``{class:04d}/probs.npy`` for ``classes`` in ascending class order.

    missing : "raise" (default) or "skip" - upstream silently skips absent classes such as
    ``imagenet_train/0026`` (pitfall P7); "skip" reproduces that.
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', got {missing!r}")
    base = _root(root) / "imagenet" / "models" / model / source
    cls = sorted({int(c) for c in classes})
    if not cls:
        raise ValueError("classes is empty")
    probs, labels = [], []
    for c in cls:
        path = base / f"{c:04d}" / "probs.npy"
        if not path.is_file() and missing == "skip":
            continue
        p = _load_npy(path)
        if p.ndim != 2 or p.dtype.kind != "f":
            raise ValueError(f"{path}: expected a float (n_images, n_classes) array, got {p.dtype} {p.shape}")
        if probs and p.shape[1] != probs[0].shape[1]:
            raise ValueError(f"{path}: has {p.shape[1]} classes but earlier files have {probs[0].shape[1]}")
        probs.append(p.astype(np.float32, copy=False))
        labels.append(np.full(p.shape[0], c, dtype=np.int64))
    if not probs:
        raise FileNotFoundError(f"none of the requested classes exist under {base}")
    return ClassificationData(np.concatenate(probs), np.concatenate(labels))


def other_classes(n: int = 100, exclude: Sequence[int] = SUBSET_CLASSES, n_total: int = 1000) -> list[int]:
    """The first ``n`` classes of {0..n_total-1} minus ``exclude`` (the ``maj_all_100`` pool, spec §5)."""
    excl = set(int(c) for c in exclude)
    return [c for c in range(n_total) if c not in excl][:n]


def generate_imagenet_like(n_classes: int = 30, n_per_class: int = 520, n_labels: int = 1000, *,
                           seed: int = 0, signal: float = 4.0, shift: float = 0.0,
                           first_class: int = 0) -> ClassificationData:
    """ImageNet-shaped fake softmax data (for benchmarks and tests; nothing is downloaded).

    Classes ``first_class .. first_class + n_classes - 1``, ``n_per_class`` images each, a
    ``n_labels``-way float32 softmax whose true-class logit is raised by ``signal`` (+ ``shift``,
    e.g. to make a synthetic pool easier or harder than the real one).
    """
    n_classes = int(n_classes)
    if n_classes < 1 or first_class < 0 or first_class + n_classes > n_labels:
        raise ValueError(f"classes {first_class}..{first_class + n_classes - 1} must lie in [0, {n_labels})")
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(first_class, first_class + n_classes, dtype=np.int64), int(n_per_class))
    logits = rng.standard_normal((labels.shape[0], int(n_labels)), dtype=np.float32)
    logits[np.arange(labels.shape[0]), labels] += np.float32(signal + shift)
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return ClassificationData(logits, labels)
