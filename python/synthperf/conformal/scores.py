"""Nonconformity scores for SPPI / split conformal (spec ``sppi.md`` §3-§4, §8 steps 1-2).

Classification
--------------
``aps_scores`` is randomized APS exactly as upstream computes it (spec §4, pitfall P4):

    Z = round(cumsum(desc-sorted p), 9)          # float32 arrays, sequential float32 cumsum
    s(x, y) = max( f32( f64(Z[rank_y]) - f64(p_y) * eps ), 0 )

so the result is float32 and bit-identical to upstream. Ties among equal probabilities are
ordered by numpy's default (non-stable) ``argsort(-p)``, as upstream (P4). The trivial APS
threshold ("top") is 1, not +inf (P3); estimators and trials pass ``top=APS_TOP``.

The work is split in two so that trials never re-sort an image (spec §8):

1. :func:`aps_precompute` - one sort per image, independent of trials: for every needed
   (image, label) pair store ``Z_y`` (float32) and ``p_y`` (float32);
2. :func:`aps_from_precomputed` - per trial, the gather + ``eps`` arithmetic above.

Regression
----------
``cqr_scores(intervals[..., 2], y) = max(lo - y, y - hi)`` and
``abs_residual_scores(pred, y) = |pred - y|`` (spec §3-§4), computed in the input dtype.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._typing import ArrayLike
from .._validation import float_array, int_array, real_scalar

#: The APS "top" (trivial threshold) used by upstream: 1, not +inf (spec pitfall P3).
APS_TOP: float = 1.0


#: Allowed |row sum - 1| of a probability row (float64 sum). float32 softmax rows over 1000
#: classes sum to 1 within ~1e-6 (they can exceed 1 slightly, spec pitfall P3).
PROB_SUM_TOL: float = 1e-3


def _check_probabilities(p: np.ndarray, name: str) -> None:
    """Rows of probabilities: finite (NaN is rejected by float_array), in [0, 1], summing to 1
    within PROB_SUM_TOL. Raises ValueError naming ``name`` and the first bad row."""
    if p.shape[1] < 1:
        raise ValueError(f"{name} has no classes (shape {p.shape})")
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise ValueError(f"{name} row {int(np.flatnonzero(bad)[0])} contains inf; probabilities must be finite")
    bad = ((p < 0) | (p > 1)).any(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {i} has entries outside [0, 1] (min {float(p[i].min())!r}, "
                         f"max {float(p[i].max())!r}); pass probabilities, not logits")
    sums = p.sum(axis=1, dtype=np.float64)
    bad = np.abs(sums - 1.0) > PROB_SUM_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {i} sums to {float(sums[i])!r}, not 1 (tolerance {PROB_SUM_TOL}); "
                         f"pass normalised probabilities (e.g. a softmax)")


def _probs(probs: ArrayLike, name: str = "probs") -> np.ndarray:
    p = float_array(probs, name, ndim=2)
    _check_probabilities(p, name)
    return np.ascontiguousarray(p, dtype=np.float32)


def _labels(labels: ArrayLike, n: int, n_classes: int, name: str = "labels") -> np.ndarray:
    lab = int_array(labels, name, ndim=(1, 2))
    if lab.shape[0] != n:
        raise ValueError(f"{name} has {lab.shape[0]} rows but probs has {n}; they must match")
    if lab.size and ((lab < 0) | (lab >= n_classes)).any():
        bad = lab[(lab < 0) | (lab >= n_classes)].ravel()[0]
        raise ValueError(f"{name} out of range: got label {int(bad)}, labels must lie in [0, {n_classes})")
    return lab


def _rank_and_cumsum_numpy(neg_sorted: np.ndarray, target: np.ndarray):
    """Reference for :func:`_rank_and_cumsum`: vectorised binary search + full-row cumsum."""
    n, C = neg_sorted.shape
    flat = neg_sorted.ravel()
    row0 = (np.arange(n, dtype=np.int64) * C)[:, None]
    lo = np.zeros(target.shape, dtype=np.int64)
    hi = np.full(target.shape, C, dtype=np.int64)
    for _ in range(int(C).bit_length()):
        mid = (lo + hi) >> 1
        v = flat[row0 + np.minimum(mid, C - 1)]
        go_right = (v < target) & (mid < hi)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(go_right, hi, mid)
    nxt = flat[row0 + np.minimum(lo + 1, C - 1)]
    tied = (lo + 1 < C) & (nxt == target)
    neg_z = np.take_along_axis(np.cumsum(neg_sorted, axis=1), lo, axis=1)
    return lo, neg_z, tied


@lru_cache(maxsize=1)
def _numba_rank_cumsum():
    import numba

    @numba.njit(cache=True, nogil=True)
    def kernel(neg_sorted, target, rank, neg_z, tied):  # pragma: no cover - compiled
        n, C = neg_sorted.shape
        L = target.shape[1]
        for i in range(n):
            max_rank = 0
            for j in range(L):
                t = target[i, j]
                lo, hi = 0, C
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if neg_sorted[i, mid] < t:
                        lo = mid + 1
                    else:
                        hi = mid
                rank[i, j] = lo
                tied[i, j] = lo + 1 < C and neg_sorted[i, lo + 1] == t
                if lo > max_rank:
                    max_rank = lo
            acc = np.float32(0.0)
            # sequential float32 prefix sums, like numpy's cumsum; store only the needed ones
            order = np.argsort(rank[i])
            k = 0
            for pos in range(max_rank + 1):
                acc = np.float32(acc + neg_sorted[i, pos])
                while k < L and rank[i, order[k]] == pos:
                    neg_z[i, order[k]] = acc
                    k += 1

    return kernel


def _rank_and_cumsum(neg_sorted: np.ndarray, target: np.ndarray):
    """Per needed label: 0-based descending rank (= #values > p_y), the float32 running sum
    of ``neg_sorted`` up to that rank (= -cumsum(desc-sorted p)[rank]) and whether p_y is tied.

    neg_sorted : float32 [n, C] ascending rows of -p; target : float32 [n, L] = -p_y.
    numba (sequential float32 adds, bit-identical to numpy's cumsum) when available.
    """
    try:
        kernel = _numba_rank_cumsum()
    except ImportError:
        return _rank_and_cumsum_numpy(neg_sorted, target)
    rank = np.empty(target.shape, dtype=np.int64)
    neg_z = np.empty(target.shape, dtype=np.float32)
    tied = np.empty(target.shape, dtype=np.bool_)
    kernel(neg_sorted, np.ascontiguousarray(target), rank, neg_z, tied)
    return rank, neg_z, tied


def aps_precompute(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-image APS ingredients ``(Z_y, p_y)`` for the needed labels (spec §8 step 1).

    Parameters
    ----------
    probs : float array [n, C] (softmax rows; converted to float32 as upstream stores them)
    labels : int array [n] (one label per image, e.g. the true label) or [n, L]
        (candidate labels per image, e.g. the 30 subset classes)

    Returns
    -------
    (Z, P) : float32 arrays of ``labels``' shape. ``Z`` is ``round(cumsum(desc-sorted p), 9)``
    at the rank of the label, ``P`` the label's probability.

    Cost: one ``np.sort`` per row plus a batched binary search; rows where a needed label
    ties with another probability fall back to upstream's ``argsort(-p)`` for that row, so
    the tie order is exactly numpy's (pitfall P4).
    """
    p = _probs(probs)
    n, C = p.shape
    lab = _labels(labels, n, C)
    lab2 = lab.reshape(n, -1)
    neg_sorted = np.negative(p)  # -(p); sorting ascending gives -(desc-sorted p), negation is exact
    neg_sorted.sort(axis=1)
    P = np.take_along_axis(p, lab2, axis=1)
    rank, neg_zr, tied = _rank_and_cumsum(neg_sorted, -P)
    tied_rows = np.flatnonzero(tied.any(axis=1))
    if tied_rows.size:
        order = np.argsort(-p[tied_rows], axis=1)  # upstream's (non-stable) tie order
        inv = np.empty_like(order)
        np.put_along_axis(inv, order, np.arange(C)[None, :].repeat(len(tied_rows), 0), axis=1)
        rank_t = np.take_along_axis(inv, lab2[tied_rows], axis=1)
        neg_z_rows = np.cumsum(neg_sorted[tied_rows], axis=1)
        neg_zr[tied_rows] = np.take_along_axis(neg_z_rows, rank_t, axis=1)
    Z = np.round(-neg_zr, 9)
    return Z.reshape(lab.shape).astype(np.float32, copy=False), P.reshape(lab.shape)


def aps_from_precomputed(Z: ArrayLike, P: ArrayLike, u: ArrayLike) -> np.ndarray:
    """Randomized APS from precomputed ``(Z, P)`` (spec §8 step 2).

    ``score = max(f32(f64(Z) - f64(P) * f64(u)), 0)``, float32, the shape of ``broadcast(Z, u)``.
    ``u`` (the eps draws, float64 in [0, 1]) broadcasts against ``Z``: pass ``u[:, None]``
    to share one eps across a test point's candidate labels, as upstream does.
    """
    z = np.asarray(Z, dtype=np.float32)
    pp = np.asarray(P, dtype=np.float32)
    uu = np.asarray(u, dtype=np.float64)
    out = (z.astype(np.float64) - pp.astype(np.float64) * uu).astype(np.float32)
    np.maximum(out, np.float32(0.0), out=out)
    return out


def aps_scores(probs: ArrayLike, labels: ArrayLike, u: ArrayLike | None = None, randomized: bool = True, *,
               random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """Randomized APS scores, bit-exact with upstream (spec §4, pitfalls P3/P4).

    Parameters
    ----------
    probs : float array [n, C] of probabilities (no NaN, in [0, 1], rows summing to 1 within
        :data:`PROB_SUM_TOL`; else ValueError); float32 as upstream (other dtypes are cast)
    labels : int array [n] or [n, L] of labels in [0, C)
    u : float array [n] of eps in [0, 1] (one per sample, shared by its candidate labels),
        or of ``labels``' shape; ``None`` draws ``default_rng(random_state).uniform(size=n)``
    randomized : False gives the non-randomized score ``Z[rank_y]`` (eps = 0)

    Returns
    -------
    float32 array of ``labels``' shape. The trivial threshold for these scores is
    :data:`APS_TOP` = 1.
    """
    if not isinstance(randomized, (bool, np.bool_)):
        raise TypeError(f"randomized must be a bool, got {type(randomized).__name__}")
    Z, P = aps_precompute(probs, labels)
    n = Z.shape[0]
    if not randomized:
        eps = np.zeros(n)
    elif u is None:
        eps = np.random.default_rng(random_state).uniform(size=n)
    else:
        eps = float_array(u, "u", ndim=(1, 2))
        if np.isinf(eps).any() or (eps < 0).any() or (eps > 1).any():
            raise ValueError("u must lie in [0, 1] (uniform randomization draws)")
        if eps.shape != (n,) and eps.shape != Z.shape:
            raise ValueError(f"u has shape {eps.shape}; expected ({n},) or labels' shape {Z.shape}")
    eps = np.asarray(eps, dtype=np.float64)
    if Z.ndim == 2 and eps.ndim == 1:
        eps = eps[:, None]
    return aps_from_precomputed(Z, P, eps)


def lac_scores(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """LAC / "1 - p_y" scores, shape of ``labels`` ([n] or [n, L]), dtype of ``probs``.

    ``probs`` [n, C] must hold probabilities (validated as in :func:`aps_scores`)."""
    p = float_array(probs, "probs", ndim=2)
    _check_probabilities(p, "probs")
    lab = _labels(labels, p.shape[0], p.shape[1])
    py = np.take_along_axis(p, lab.reshape(p.shape[0], -1), axis=1).reshape(lab.shape)
    return (p.dtype.type(1.0) - py).astype(p.dtype, copy=False)


def _finite(a: np.ndarray, name: str) -> np.ndarray:
    """``a`` unchanged; ValueError naming ``name`` when it holds +-inf (NaN is refused by
    float_array). Regression targets and point predictions must be finite: an infinite one
    gives an infinite or NaN (inf - inf) score that silently decides the threshold (issue 17)."""
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains inf at index {np.argwhere(~np.isfinite(a))[0].tolist()}; "
                         f"{name} must be finite")
    return a


def _finite_ratio(out: np.ndarray, divisor: np.ndarray, name: str) -> np.ndarray:
    """``out`` = residual / ``divisor``; ValueError naming ``name`` when a tiny positive divisor
    made it overflow to inf in ``out``'s dtype (e.g. a float32 1e-40: issue 17, like the float32
    gamma 1e-50 of the discrete score)."""
    bad = ~np.isfinite(out)
    if bad.any():
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"{name} = {float(divisor[i])!r} (entry {i}) is too small: the score overflows "
                         f"{out.dtype}; pass float64 inputs or a larger {name}")
    return out


def _same_leading(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} has shape {a.shape} but {b_name} has shape {b.shape}; they must match")


def cqr_scores(intervals: ArrayLike, y: ArrayLike) -> np.ndarray:
    """CQR scores ``max(lo - y, y - hi)`` (spec §4, MEPS).

    intervals : float array [..., 2] of [lower, upper] quantile predictions (+-inf allowed: a
        trivial bound)
    y : float array [...] of finite targets. Returns [...] in the common float dtype.
    """
    iv = float_array(intervals, "intervals")
    if iv.ndim < 1 or iv.shape[-1] != 2:
        raise ValueError(f"intervals must have a last axis of size 2 ([lower, upper]), got shape {iv.shape}")
    yy = _finite(float_array(y, "y", allow_empty=True), "y")
    _same_leading(iv[..., 0], yy, "intervals[..., 0]", "y")
    dt = np.result_type(iv.dtype, yy.dtype)
    lo, hi, yy = iv[..., 0].astype(dt, copy=False), iv[..., 1].astype(dt, copy=False), yy.astype(dt, copy=False)
    return np.maximum(lo - yy, yy - hi)


def abs_residual_scores(pred: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Absolute residuals ``|pred - y|`` (spec §3: 1-D predictions), same shape as ``y``."""
    pp = _finite(float_array(pred, "pred"), "pred")
    yy = _finite(float_array(y, "y"), "y")
    _same_leading(pp, yy, "pred", "y")
    dt = np.result_type(pp.dtype, yy.dtype)
    return np.abs(pp.astype(dt, copy=False) - yy.astype(dt, copy=False))


# ----------------------------------------------------------------------------------------
# More classification scores (issue 16): RAPS, SAPS, top-k. Plain float64 arithmetic on a
# stable descending sort (ties: the lower class index ranks first); not upstream-exact APS.
# ----------------------------------------------------------------------------------------
def _descending_ranks(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based descending rank of every class [n, C], the sorted probabilities [n, C] and
    their float64 running sums [n, C] (stable sort: ties keep class-index order)."""
    order = np.argsort(-p, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(p.shape[1]), p.shape), axis=1)
    p_sorted = np.take_along_axis(p, order, axis=1)
    return ranks, p_sorted, np.cumsum(p_sorted, axis=1)


def _eps(u: ArrayLike, randomized: ArrayLike, random_state: int | np.random.Generator | None, shape: tuple[int, ...]) -> np.ndarray:
    """Randomization draws broadcastable to a labels array of ``shape`` ([n] or [n, L])."""
    if not isinstance(randomized, (bool, np.bool_)):
        raise TypeError(f"randomized must be a bool, got {type(randomized).__name__}")
    n = shape[0]
    if not randomized:
        eps = np.zeros(n)
    elif u is None:
        eps = np.random.default_rng(random_state).uniform(size=n)
    else:
        eps = float_array(u, "u", ndim=(1, 2))
        if np.isinf(eps).any() or (eps < 0).any() or (eps > 1).any():
            raise ValueError("u must lie in [0, 1] (uniform randomization draws)")
        if eps.shape != (n,) and eps.shape != shape:
            raise ValueError(f"u has shape {eps.shape}; expected ({n},) or labels' shape {shape}")
    eps = np.asarray(eps, dtype=np.float64)
    return eps[:, None] if len(shape) == 2 and eps.ndim == 1 else eps


def _rank_inputs(probs: ArrayLike, labels: ArrayLike):
    p = float_array(probs, "probs", ndim=2)
    _check_probabilities(p, "probs")
    p = p.astype(np.float64, copy=False)
    lab = _labels(labels, p.shape[0], p.shape[1])
    ranks, p_sorted, cums = _descending_ranks(p)
    lab2 = lab.reshape(p.shape[0], -1)
    rank_y = np.take_along_axis(ranks, lab2, axis=1)  # 0-based
    return p, lab, lab2, rank_y, p_sorted, cums


def raps_scores(probs: ArrayLike, labels: ArrayLike, u: ArrayLike | None = None, *, penalty: float = 0.01, kreg: int = 1,
                randomized: bool = True, random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """RAPS scores (Angelopoulos et al. 2021, "Uncertainty sets for image classifiers using
    conformal prediction", Alg. 2; TorchCP's ``RAPS``):

        s(x, y) = sum_{j <= o(y)} p_(j) - u * p_y + penalty * max(0, o(y) - kreg)

    with o(y) the 1-based descending rank of y. probs : float [n, C] probabilities; labels :
    int [n] or [n, L]; u : eps [n] or labels' shape (None: ``default_rng(random_state)``
    draws; ``randomized=False``: u = 0); penalty >= 0; kreg >= 0. Returns float64 of
    ``labels``' shape. Scores exceed 1, so the trivial threshold is +inf.
    """
    pen = real_scalar(penalty, "penalty", allow_inf=False)
    if pen < 0:
        raise ValueError(f"penalty must be >= 0, got {pen}")
    if isinstance(kreg, bool) or not isinstance(kreg, (int, np.integer)) or kreg < 0:
        raise ValueError(f"kreg must be a non-negative integer, got {kreg!r}")
    p, lab, lab2, rank_y, _, cums = _rank_inputs(probs, labels)
    eps = _eps(u, randomized, random_state, lab.shape).reshape(lab.shape[0], -1)
    p_y = np.take_along_axis(p, lab2, axis=1)
    z = np.take_along_axis(cums, rank_y, axis=1)
    out = z - eps * p_y + pen * np.maximum(rank_y + 1 - int(kreg), 0)
    return out.reshape(lab.shape)


def saps_scores(probs: ArrayLike, labels: ArrayLike, u: ArrayLike | None = None, *, weight: float = 0.2, randomized: bool = True,
                random_state: int | np.random.Generator | None = None) -> np.ndarray:
    """SAPS scores (Huang et al. 2024, "Conformal prediction for deep classifier via label
    ranking", eq. 6):

        s(x, y) = u * p_max                          if o(y) = 1
                  p_max + (o(y) - 2 + u) * weight    otherwise

    probs : float [n, C]; labels : int [n] or [n, L]; u as in :func:`raps_scores`, except
    ``randomized=False`` uses u = 1 (the deterministic SAPS: p_max, then p_max + (o - 1) weight);
    weight > 0. Returns float64 of ``labels``' shape (trivial threshold +inf). TorchCP's
    single-label SAPS uses 1 - u in the second branch, which has the same distribution.
    """
    w = real_scalar(weight, "weight", allow_inf=False)
    if w <= 0:
        raise ValueError(f"weight must be > 0, got {w}")
    p, lab, lab2, rank_y, p_sorted, _ = _rank_inputs(probs, labels)
    eps = _eps(u, randomized, random_state, lab.shape).reshape(lab.shape[0], -1)
    if not randomized:
        eps = np.ones_like(eps)
    p_max = p_sorted[:, :1]
    out = np.where(rank_y == 0, eps * p_max, p_max + (rank_y - 1 + eps) * w)
    return out.reshape(lab.shape)


def topk_scores(probs: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Top-k scores: the 1-based descending rank of y (MAPIE's ``top_k`` uses the 0-based
    rank; the sets {y : s <= q} are the same top-q labels). probs : float [n, C]; labels :
    int [n] or [n, L]. Returns float64 of ``labels``' shape; ties rank the lower index first."""
    _, lab, _, rank_y, _, _ = _rank_inputs(probs, labels)
    return (rank_y + 1).astype(np.float64).reshape(lab.shape)


# ----------------------------------------------------------------------------------------
# More regression scores (issue 16): normalized and gamma residuals, asymmetric CQR
# ----------------------------------------------------------------------------------------
def normalized_residual_scores(pred: ArrayLike, sigma: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Normalized residuals ``|y - pred| / sigma`` (Lei et al. 2018, locally weighted split
    conformal). pred, sigma, y : float [n] (same shape); sigma > 0 and finite. The interval
    at threshold q is ``pred +- q * sigma``."""
    pp, ss = _finite(float_array(pred, "pred"), "pred"), float_array(sigma, "sigma")
    yy = _finite(float_array(y, "y"), "y")
    _same_leading(pp, yy, "pred", "y")
    _same_leading(ss, yy, "sigma", "y")
    if not np.isfinite(ss).all() or (ss <= 0).any():
        raise ValueError("sigma must be finite and > 0 (a spread prediction per sample)")
    dt = np.result_type(pp.dtype, ss.dtype, yy.dtype)
    with np.errstate(over="ignore"):
        out = np.abs(yy.astype(dt) - pp.astype(dt)) / ss.astype(dt)
    return _finite_ratio(out, ss, "sigma")


def gamma_scores(pred: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Gamma (relative) residuals ``|y - pred| / pred`` for positive targets; pred : float
    [n] > 0, y : float [n]. The interval at threshold q is ``[pred (1 - q), pred (1 + q)]``.
    (MAPIE's "gamma" is the signed, asymmetric variant; this one is symmetric.)"""
    pp, yy = float_array(pred, "pred"), _finite(float_array(y, "y"), "y")
    _same_leading(pp, yy, "pred", "y")
    if not np.isfinite(pp).all() or (pp <= 0).any():
        raise ValueError("pred must be finite and > 0 for gamma scores (positive targets)")
    dt = np.result_type(pp.dtype, yy.dtype)
    with np.errstate(over="ignore"):
        out = np.abs(yy.astype(dt) - pp.astype(dt)) / pp.astype(dt)
    return _finite_ratio(out, pp, "pred")


def cqr_asymmetric_scores(intervals: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Asymmetric CQR scores (Romano et al. 2019, Theorem 2): ``[..., 2]`` holding
    ``(lo - y, y - hi)``. Each column is calibrated at alpha / 2 and the interval is
    ``[lo - q_lo, hi + q_hi]`` (coverage >= 1 - alpha by the union bound)."""
    iv = float_array(intervals, "intervals")
    if iv.ndim < 1 or iv.shape[-1] != 2:
        raise ValueError(f"intervals must have a last axis of size 2 ([lower, upper]), got shape {iv.shape}")
    yy = _finite(float_array(y, "y", allow_empty=True), "y")
    _same_leading(iv[..., 0], yy, "intervals[..., 0]", "y")
    dt = np.result_type(iv.dtype, yy.dtype)
    yy = yy.astype(dt, copy=False)
    return np.stack([iv[..., 0].astype(dt) - yy, yy - iv[..., 1].astype(dt)], axis=-1)
