"""SPPI-Subset: pick the k synthetic classes whose scores look most like the real ones (spec §2).

For every synthetic class c the distance d_c between the real calibration scores and the
class's synthetic scores is either

- ``"cramer-von-mises"`` (upstream's choice): the two-sample CvM *statistic* of
  ``scipy.stats.cramervonmises_2samp`` - never its exact p-value, which upstream computes
  and throws away at ~15 ms a call (pitfall P6):

      T = U / (nx ny (nx+ny)) - (4 nx ny - 1) / (6 (nx+ny)),
      U = nx sum_i (R_i - i)^2 + ny sum_j (R'_j - j)^2     (R, R' = pooled mid-ranks)

  U is accumulated exactly in integers (mid-ranks are multiples of 1/2), then T is formed
  with scipy's float64 expression, so equal U give equal T and near-ties are not reordered
  by rounding;
- ``"wasserstein"``: the 1-D Wasserstein-1 distance ``scipy.stats.wasserstein_distance``
  (integral of |F_real - F_synth|).

Then the k classes with the smallest d_c are kept; ties go to the smaller class label
(upstream sorts the ``np.unique`` classes with Python's stable ``sorted``).

Everything is vectorised over leading batch axes - (trial, real class, synthetic class) in
the trial runner - with one pooled sort per pair and no Python loop over pairs.
"""
from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike

from .._typing import ArrayLike
from .._validation import float_array, int_array, positive_int

CRITERIA = ("cramer-von-mises", "wasserstein")


def _check_criterion(criterion: object) -> str:
    if not isinstance(criterion, str):
        raise TypeError(f"criterion must be a string, one of {CRITERIA}; got {type(criterion).__name__}")
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}: expected one of {CRITERIA}")
    return criterion


def _pooled(x: np.ndarray, y: np.ndarray):
    """Stable-sorted pooled sample and 'comes from x' flags, shapes [..., nx+ny]."""
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    nx, ny = x.shape[-1], y.shape[-1]
    dt = np.result_type(x.dtype, y.dtype)
    pooled = np.concatenate([np.broadcast_to(x, shape + (nx,)).astype(dt, copy=False),
                             np.broadcast_to(y, shape + (ny,)).astype(dt, copy=False)], axis=-1)
    order = np.argsort(pooled, axis=-1, kind="stable")
    values = np.take_along_axis(pooled, order, axis=-1)
    from_x = order < nx
    return values, from_x


def cvm_statistics(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Two-sample Cramer-von Mises statistics, batched over broadcast leading axes (spec §2).

    Parameters
    ----------
    x : float array [..., nx] (nx >= 2), e.g. real calibration scores
    y : float array [..., ny] (ny >= 2), e.g. one synthetic class's scores

    Returns
    -------
    float64 array [broadcast(...)], equal to ``scipy.stats.cramervonmises_2samp(x, y).statistic``
    evaluated in float64.
    """
    xa = float_array(x, "x", ndim=None)
    ya = float_array(y, "y", ndim=None)
    for arr, name in ((xa, "x"), (ya, "y")):
        if arr.ndim < 1 or arr.shape[-1] < 2:
            raise ValueError(f"{name} needs at least two observations along its last axis, got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite scores; the CvM statistic needs finite values")
    try:
        np.broadcast_shapes(xa.shape[:-1], ya.shape[:-1])
    except ValueError:
        raise ValueError(f"x and y batch shapes {xa.shape[:-1]} and {ya.shape[:-1]} do not broadcast") from None
    nx, ny = xa.shape[-1], ya.shape[-1]
    values, from_x = _pooled(xa, ya)
    M = nx + ny
    pos = np.arange(M)
    # tie blocks: first and last position of each value's block -> twice the 1-based mid-rank
    new_block = np.ones(values.shape, dtype=bool)
    new_block[..., 1:] = values[..., 1:] != values[..., :-1]
    start = np.maximum.accumulate(np.where(new_block, pos, 0), axis=-1)
    end_block = np.ones(values.shape, dtype=bool)
    end_block[..., :-1] = new_block[..., 1:]
    end = (M - 1) - np.maximum.accumulate(np.where(end_block, M - 1 - pos, 0)[..., ::-1], axis=-1)[..., ::-1]
    twice_mid = (start + end + 2).astype(np.int64)
    ci = np.cumsum(from_x, axis=-1, dtype=np.int64)  # 1-based index within x at x positions
    cj = np.cumsum(~from_x, axis=-1, dtype=np.int64)
    dx = np.where(from_x, twice_mid - 2 * ci, 0)
    dy = np.where(from_x, 0, twice_mid - 2 * cj)
    four_u = nx * (dx * dx).sum(axis=-1) + ny * (dy * dy).sum(axis=-1)  # exact integer 4U
    u = four_u.astype(np.float64) / 4.0
    k, N = nx * ny, nx + ny
    return u / (k * N) - (4 * k - 1) / (6 * N)


def wasserstein_distances(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """1-D Wasserstein-1 distances between empirical samples, batched like :func:`cvm_statistics`.

    x : [..., nx], y : [..., ny] (each >= 1 value). Returns float64 [broadcast(...)]
    matching ``scipy.stats.wasserstein_distance`` to rounding.
    """
    xa = float_array(x, "x", ndim=None)
    ya = float_array(y, "y", ndim=None)
    for arr, name in ((xa, "x"), (ya, "y")):
        if arr.ndim < 1 or arr.shape[-1] < 1:
            raise ValueError(f"{name} needs at least one observation along its last axis, got shape {arr.shape}")
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite scores; the Wasserstein distance needs finite values")
    nx, ny = xa.shape[-1], ya.shape[-1]
    values, from_x = _pooled(xa, ya)
    values = values.astype(np.float64)
    fx = np.cumsum(from_x, axis=-1)[..., :-1] / nx
    fy = np.cumsum(~from_x, axis=-1)[..., :-1] / ny
    deltas = np.diff(values, axis=-1)
    return (np.abs(fx - fy) * deltas).sum(axis=-1)


def class_distances(real: ArrayLike, synth_by_class: ArrayLike, criterion: str = "cramer-von-mises") -> np.ndarray:
    """Distances between real score groups and synthetic classes (spec §8 step 5).

    real : [..., n] real scores of one group (a trial, or a (trial, real class) pair)
    synth_by_class : [..., C, M] synthetic scores, M per class
    Returns float64 [..., C]; the leading axes broadcast.
    """
    crit = _check_criterion(criterion)
    r = float_array(real, "real_scores", ndim=None)
    s = float_array(synth_by_class, "synth_scores", ndim=None)
    if r.ndim < 1 or s.ndim < 2:
        raise ValueError(f"real_scores must be [..., n] and synth_scores [..., C, M]; got shapes {r.shape} and {s.shape}")
    fn = cvm_statistics if crit == "cramer-von-mises" else wasserstein_distances
    return fn(r[..., None, :], s)


def select_nearest(distances: ArrayLike, k: int) -> np.ndarray:
    """Indices of the k smallest distances along the last axis, ties to the smaller index.

    distances : [..., C]. Returns int64 [..., k], nearest first.
    """
    d = float_array(distances, "distances", ndim=None)
    k = positive_int(k, "k")
    if d.ndim < 1 or k > d.shape[-1]:
        raise ValueError(f"k = {k} exceeds the number of synthetic classes ({d.shape[-1] if d.ndim else 0})")
    return np.argsort(d, axis=-1, kind="stable")[..., :k]


def sppi_subset_select(real_scores: ArrayLike, synth_scores: ArrayLike, synth_labels: ArrayLike, k: int = 20,
                       criterion: str = "cramer-von-mises") -> np.ndarray:
    """The k synthetic classes closest to the real scores (spec §2, marginal step 1-2).

    Parameters
    ----------
    real_scores : float [n] (n >= 2) real calibration scores
    synth_scores : float [N] synthetic scores
    synth_labels : int [N] synthetic class of each score (each class needs >= 2 scores)
    k : number of classes to keep (1 <= k <= number of distinct synthetic labels)
    criterion : "cramer-von-mises" (default, upstream) or "wasserstein"

    Returns
    -------
    int64 [k]: the chosen class labels, nearest first; ties go to the smaller label.
    Restrict the pool with ``np.isin(synth_labels, chosen)`` and run :func:`sppi_threshold`.
    """
    crit = _check_criterion(criterion)
    r = float_array(real_scores, "real_scores", ndim=1)
    s = float_array(synth_scores, "synth_scores", ndim=1)
    lab = int_array(synth_labels, "synth_labels", ndim=1)
    if lab.shape[0] != s.shape[0]:
        raise ValueError(f"synth_labels has {lab.shape[0]} entries but synth_scores has {s.shape[0]}")
    classes, counts = np.unique(lab, return_counts=True)
    k = positive_int(k, "k")
    if k > classes.size:
        raise ValueError(f"k = {k} exceeds the number of synthetic classes ({classes.size})")
    dist = np.empty(classes.size)
    order = np.argsort(lab, kind="stable")
    grouped = s[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for size in np.unique(counts):  # one batched call per distinct class size
        idx = np.flatnonzero(counts == size)
        block = grouped[starts[idx][:, None] + np.arange(size)[None, :]]
        dist[idx] = class_distances(r, block, crit)
    return classes[select_nearest(dist, k)]
