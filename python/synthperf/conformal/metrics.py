"""Conformal metrics in MAPIE 1.x's shapes (``mapie.metrics``): coverage, set size / interval
width, class- and group-conditional coverage.

Sets are bool [n, C, A] (or [n, C]); intervals are [n, 2, A] (or [n, 2]); the level axis is
last, as :meth:`predict_set` / :meth:`predict_interval` return them. Every function returns
float64 [A] (or [groups, A]); intervals are closed (lo <= y <= hi, spec §3).
For the batched per-trial evaluation of the experiments use :mod:`.evaluation`.
"""
from __future__ import annotations


import numpy as np

from .._typing import ArrayLike
from .._validation import float_array, int_array


def _sets(y_pred_set: ArrayLike, n: int | None = None) -> np.ndarray:
    s = np.asarray(y_pred_set)
    if s.dtype != bool:
        raise TypeError(f"y_pred_set must be a bool array, got dtype {s.dtype}")
    if s.ndim == 2:
        s = s[:, :, None]
    if s.ndim != 3:
        raise ValueError(f"y_pred_set must be [n, n_classes] or [n, n_classes, n_levels], got shape {s.shape}")
    if n is not None and s.shape[0] != n:
        raise ValueError(f"y_pred_set has {s.shape[0]} rows but y_true has {n}; they must match")
    return s


def _intervals(y_intervals: ArrayLike, n: int | None = None) -> np.ndarray:
    iv = float_array(y_intervals, "y_intervals", ndim=(2, 3))
    if iv.ndim == 2:
        iv = iv[:, :, None]
    if iv.shape[1] != 2:
        raise ValueError(f"y_intervals must be [n, 2] or [n, 2, n_levels], got shape {iv.shape}")
    if n is not None and iv.shape[0] != n:
        raise ValueError(f"y_intervals has {iv.shape[0]} rows but y_true has {n}; they must match")
    return iv


def _labels(y_true: ArrayLike, n_classes: int) -> np.ndarray:
    y = int_array(y_true, "y_true", ndim=1)
    if y.size and ((y < 0) | (y >= n_classes)).any():
        raise ValueError(f"y_true holds labels outside [0, {n_classes}) (column indices of y_pred_set)")
    return y


def classification_coverage_score(y_true: ArrayLike, y_pred_set: ArrayLike) -> np.ndarray:
    """Fraction of samples whose true label (a column index) is in its set: [A]."""
    s = _sets(y_pred_set)
    y = _labels(y_true, s.shape[1])
    s = _sets(y_pred_set, y.shape[0])
    return s[np.arange(y.shape[0]), y].mean(axis=0)


def classification_mean_width_score(y_pred_set: ArrayLike) -> np.ndarray:
    """Mean set size: [A]."""
    return _sets(y_pred_set).sum(axis=1).mean(axis=0)


def class_conditional_coverage(y_true: ArrayLike, y_pred_set: ArrayLike) -> np.ndarray:
    """Coverage within each true class: [n_classes, A], NaN for classes absent from y_true."""
    s = _sets(y_pred_set)
    y = _labels(y_true, s.shape[1])
    s = _sets(y_pred_set, y.shape[0])
    hit = s[np.arange(y.shape[0]), y].astype(np.float64)  # [n, A]
    counts = np.bincount(y, minlength=s.shape[1]).astype(np.float64)
    sums = np.stack([np.bincount(y, weights=hit[:, a], minlength=s.shape[1]) for a in range(s.shape[2])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, None] > 0, sums / counts[:, None], np.nan)


def regression_coverage_score(y_true: ArrayLike, y_intervals: ArrayLike) -> np.ndarray:
    """Fraction of targets inside their closed interval: [A]."""
    y = float_array(y_true, "y_true", ndim=1)
    iv = _intervals(y_intervals, y.shape[0])
    return ((iv[:, 0] <= y[:, None]) & (y[:, None] <= iv[:, 1])).mean(axis=0)


def regression_mean_width_score(y_intervals: ArrayLike) -> np.ndarray:
    """Mean interval width hi - lo: [A] (inf when any interval is infinite)."""
    iv = _intervals(y_intervals)
    return (iv[:, 1] - iv[:, 0]).mean(axis=0)


def group_coverage(y_true: ArrayLike, y_intervals: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Regression coverage per group (e.g. Mondrian bins): (group values [G], coverage [G, A])."""
    y = float_array(y_true, "y_true", ndim=1)
    iv = _intervals(y_intervals, y.shape[0])
    g = int_array(groups, "groups", ndim=1)
    if g.shape[0] != y.shape[0]:
        raise ValueError(f"groups has {g.shape[0]} entries but y_true has {y.shape[0]}; they must match")
    values, inverse = np.unique(g, return_inverse=True)
    hit = ((iv[:, 0] <= y[:, None]) & (y[:, None] <= iv[:, 1])).astype(np.float64)
    counts = np.bincount(inverse, minlength=values.shape[0])
    cov = np.stack([np.bincount(inverse, weights=hit[:, a], minlength=values.shape[0]) for a in range(hit.shape[1])],
                   axis=1) / counts[:, None]
    return values, cov
