"""Coverage and size of conformal sets / intervals, batched over trials and alpha (spec §3, §8 step 4).

Sets (classification)
---------------------
``y in C(x)  <=>  s(x, y) <= q_{g(y)}`` (non-strict), where q is one threshold per
(trial, method, alpha) in marginal mode, or one per candidate class in class-conditional
mode. Infinite thresholds need no special case: q = +inf gives the full candidate set,
q = -inf the empty set; the APS trivial threshold 1 (pitfall P3) is an ordinary number.

Intervals (regression)
----------------------
``[lo - q, hi + q]`` for CQR (``[pred - q, pred + q]`` for residual scores, i.e. lo = hi = pred);
coverage = mean 1[lo - q <= y <= hi + q], computed in the inputs' float dtype as upstream;
length = mean (hi + q) - (lo - q), accumulated in float64. q = +inf gives coverage 1 and
length +inf; q = -inf is the empty interval: coverage 0, length 0.

The set kernel is a numba loop (imported lazily, ``cache=True``) over (trial, test point)
with the (method x alpha) thresholds innermost, parallel over trials; the numpy path is
the vectorised reference the tests compare against. Neither loops over test points in Python.

Backends follow the project-wide dispatch policy (:mod:`synthperf.backend`, issue 14 item 3):
``backend="cpu"`` is the numba kernel, ``backend="reference"`` the numpy path; ``None`` (the
default) is the process setting as a preference (``cuda``/``triton`` fall back to ``cpu``, and
``cpu`` to ``reference`` when numba is not installed); ``"auto"`` picks ``cpu`` when numba is
installed. An explicit ``backend="cpu"`` without numba raises
:class:`~synthperf.backend.BackendUnavailableError`. The former ``engine=`` keyword
(``"numba"`` = ``"cpu"``, ``"numpy"`` = ``"reference"``, ``"auto"``) is a deprecated alias for
one release and warns ``DeprecationWarning``.
"""
from __future__ import annotations

from dataclasses import dataclass
import warnings
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from .._typing import ArrayLike
from .._validation import float_array, int_array
from ..backend import BackendUnavailableError, resolve_backend

SUPPORTED_BACKENDS = ("reference", "cpu")
#: The deprecated ``engine=`` names and the backend each one means.
ENGINE_ALIASES = {"auto": "auto", "numba": "cpu", "numpy": "reference"}


@dataclass(frozen=True)
class SetMetrics:
    """Results of :func:`evaluate_sets`; ``...`` is the thresholds' batch shape (e.g. [T, M, A]).

    coverage, size : float64 [...] - marginal coverage and mean set size
    class_coverage, class_size : float64 [..., C] - conditional on the true class (NaN for
        a class without test points)
    class_counts : int64 [T, C] (or [C]) - test points per true class
    """

    coverage: np.ndarray
    size: np.ndarray
    class_coverage: np.ndarray
    class_size: np.ndarray
    class_counts: np.ndarray


@dataclass(frozen=True)
class IntervalMetrics:
    """Results of :func:`evaluate_intervals`: coverage and mean length, float64 [...]."""

    coverage: np.ndarray
    length: np.ndarray


@lru_cache(maxsize=1)
def _numba_set_kernel():
    import numba

    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(scores, labels, thr, cover, size, counts):  # pragma: no cover - compiled
        T, n, C = scores.shape
        Q = thr.shape[1]
        for t in numba.prange(T):
            for i in range(n):
                yi = labels[t, i]
                counts[t, yi] += 1
                for j in range(Q):
                    c = 0
                    for y in range(C):
                        if scores[t, i, y] <= thr[t, j, y]:
                            c += 1
                    size[t, j, yi] += c
                    if scores[t, i, yi] <= thr[t, j, yi]:
                        cover[t, j, yi] += 1

    return kernel


@lru_cache(maxsize=1)
def _numba_aps_set_kernel():
    import numba

    @numba.njit(parallel=True, cache=True, nogil=True)
    def kernel(Z, P, index, eps, labels, thr, cover, size, counts):  # pragma: no cover - compiled
        T, n = index.shape
        C = Z.shape[1]
        Q = thr.shape[1]
        for t in numba.prange(T):
            row = np.empty(C, dtype=np.float32)
            for i in range(n):
                img = index[t, i]
                e = eps[t, i]
                for y in range(C):  # randomized APS, exactly aps_from_precomputed
                    v = np.float32(np.float64(Z[img, y]) - np.float64(P[img, y]) * e)
                    row[y] = v if v > np.float32(0.0) else np.float32(0.0)
                yi = labels[t, i]
                counts[t, yi] += 1
                for j in range(Q):
                    c = 0
                    for y in range(C):
                        if row[y] <= thr[t, j, y]:
                            c += 1
                    size[t, j, yi] += c
                    if row[yi] <= thr[t, j, yi]:
                        cover[t, j, yi] += 1

    return kernel


def _sets_numpy(scores, labels, thr, cover, size, counts) -> None:
    """Vectorised reference: one broadcast compare per trial, no loop over test points."""
    T, n, C = scores.shape
    for t in range(T):
        inside = scores[t][:, None, :] <= thr[t][None, :, :]  # [n, Q, C]
        sizes = inside.sum(axis=2)  # [n, Q]
        hit = np.take_along_axis(inside, labels[t][:, None, None].repeat(thr.shape[1], 1), axis=2)[..., 0]
        onehot = np.zeros((n, C), dtype=np.int64)
        onehot[np.arange(n), labels[t]] = 1
        counts[t] += onehot.sum(axis=0)
        size[t] += sizes.T @ onehot
        cover[t] += hit.T.astype(np.int64) @ onehot


def _numba_installed() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _backend(backend: object, engine: object, kernel: str) -> str:
    """The concrete backend ("cpu" = numba, "reference" = numpy) for ``backend=`` and the
    deprecated ``engine=`` alias (module docstring)."""
    if engine is not None:
        warnings.warn(f"{kernel}(engine=...) is deprecated and will be removed in the next release; use backend= "
                      "('numba' -> 'cpu', 'numpy' -> 'reference', 'auto' -> 'auto')", DeprecationWarning, stacklevel=3)
        if backend is not None:
            raise TypeError(f"{kernel}: pass backend= only (engine= is its deprecated alias), not both")
        if not isinstance(engine, str) or engine not in ENGINE_ALIASES:
            raise ValueError(f"engine must be one of {tuple(ENGINE_ALIASES)}, got {engine!r}")
        backend = ENGINE_ALIASES[engine]
    explicit = backend is not None and backend != "auto"
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel=kernel)
    if name == "cpu" and not _numba_installed():
        if explicit:
            raise BackendUnavailableError(f"backend 'cpu' requested for {kernel} but numba is not installed "
                                          "(pip install numba), or pass backend='reference'")
        return "reference"
    return name


def evaluate_sets(scores: ArrayLike, labels: ArrayLike, thresholds: ArrayLike, *, class_conditional: bool = False,
                  backend: str | None = None, engine: str | None = None) -> SetMetrics:
    """Coverage, set size and per-class conditional metrics of prediction sets (spec §3-§4).

    Parameters
    ----------
    scores : float [T, n, C] or [n, C] - score of every candidate class (column) for every
        test point; T = trials. float32 APS scores are compared exactly (no rounding).
    labels : int [T, n] or [n] - column index of the true class, in [0, C)
    thresholds : float [T, ...] (or [...] without the trial axis when scores are 2-D);
        with ``class_conditional=True`` the last axis is the candidate class, [T, ..., C].
        ``...`` is any batch (e.g. method x alpha), possibly empty.
    class_conditional : whether thresholds carry a per-class last axis
    backend : None (process setting) | "auto" | "cpu" (numba) | "reference" (numpy); module docstring
    engine : deprecated alias of ``backend`` ("numba" | "numpy" | "auto"); DeprecationWarning

    Returns
    -------
    :class:`SetMetrics` with arrays shaped like ``thresholds`` without the class axis
    (plus a trailing C axis for the per-class arrays).
    """
    if not isinstance(class_conditional, (bool, np.bool_)):
        raise TypeError(f"class_conditional must be a bool, got {type(class_conditional).__name__}")
    eng = _backend(backend, engine, "evaluate_sets")
    s = float_array(scores, "scores", ndim=(2, 3))
    squeeze = s.ndim == 2
    s = s[None] if squeeze else s
    T, n, C = s.shape
    lab = int_array(labels, "labels", ndim=(1, 2))
    lab = lab[None] if lab.ndim == 1 else lab
    if lab.shape != (T, n):
        raise ValueError(f"labels has shape {lab.shape if not squeeze else lab.shape[1:]} but scores is "
                         f"{(T, n, C) if not squeeze else (n, C)}; expected one label per test point")
    if ((lab < 0) | (lab >= C)).any():
        raise ValueError(f"labels out of range: they index the {C} score columns, so must lie in [0, {C})")
    thr, batch = _set_thresholds(thresholds, squeeze, T, C, class_conditional)
    Q = thr.shape[1]
    cover = np.zeros((T, Q, C), dtype=np.int64)
    size = np.zeros((T, Q, C), dtype=np.int64)
    counts = np.zeros((T, C), dtype=np.int64)
    if Q and n:
        if eng == "cpu":
            _numba_set_kernel()(np.ascontiguousarray(s), np.ascontiguousarray(lab), thr, cover, size, counts)
        else:
            _sets_numpy(s, lab, thr, cover, size, counts)
    return _finish_sets(cover, size, _class_counts(lab, C), n, T, batch, squeeze)


def _set_thresholds(thresholds: ArrayLike, squeeze: bool, T: int, C: int, class_conditional: bool):
    q = float_array(thresholds, "thresholds", ndim=None, allow_empty=True)
    q = q[None] if squeeze else q
    if q.ndim < 1 or q.shape[0] != T:
        raise ValueError(f"thresholds must have a leading trial axis of size {T}, got shape {q.shape}")
    if class_conditional:
        if q.ndim < 2 or q.shape[-1] != C:
            raise ValueError(f"class-conditional thresholds need a last axis of size C = {C}, got shape {q.shape}")
        batch = q.shape[1:-1]
        thr = q.reshape(T, -1, C)
    else:
        batch = q.shape[1:]
        thr = np.broadcast_to(q.reshape(T, -1, 1), (T, int(np.prod(batch, dtype=np.int64)), C))
    return np.ascontiguousarray(thr, dtype=np.float64), batch


def _class_counts(lab: np.ndarray, C: int) -> np.ndarray:
    return np.stack([np.bincount(row, minlength=C) for row in lab]).astype(np.int64) if lab.shape[0] else \
        np.zeros((0, C), dtype=np.int64)


def _finish_sets(cover, size, counts, n, T, batch, squeeze) -> SetMetrics:
    C = cover.shape[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = counts[:, None, :].astype(np.float64)
        class_cov = cover / cc
        class_size = size / cc
        coverage = cover.sum(axis=2) / n if n else np.full(cover.shape[:2], np.nan)
        mean_size = size.sum(axis=2) / n if n else np.full(cover.shape[:2], np.nan)
    shape = (T,) + tuple(batch)
    out = SetMetrics(coverage.reshape(shape), mean_size.reshape(shape),
                     class_cov.reshape(shape + (C,)), class_size.reshape(shape + (C,)), counts)
    if squeeze:
        out = SetMetrics(out.coverage[0], out.size[0], out.class_coverage[0], out.class_size[0], counts[0])
    return out


def evaluate_aps_sets(Z: ArrayLike, P: ArrayLike, index: ArrayLike, eps: ArrayLike, labels: ArrayLike,
                      thresholds: ArrayLike, *,
                      class_conditional: bool = False, backend: str | None = None,
                      engine: str | None = None) -> SetMetrics:
    """:func:`evaluate_sets` for randomized APS straight from the per-image precompute (spec §8 step 4).

    The [T, n, C] score tensor is never materialised: each test row's scores
    ``max(f32(f64(Z) - f64(P) eps), 0)`` are formed in the kernel and compared at once.

    Z, P : float32 [n_pool, C] from :func:`~synthperf.conformal.scores.aps_precompute` (the
        candidate-class columns); index : int [T, n] test rows of the pool; eps : float64 [T, n];
    labels : int [T, n] true-class column; thresholds : as in :func:`evaluate_sets`.
    backend, engine : as in :func:`evaluate_sets` ("cpu" fuses the score into the numba kernel,
        "reference" materialises the [T, n, C] scores and runs the numpy path).
    """
    from .scores import aps_from_precomputed

    eng = _backend(backend, engine, "evaluate_aps_sets")
    Zp = np.ascontiguousarray(float_array(Z, "Z", ndim=2), dtype=np.float32)
    Pp = np.ascontiguousarray(float_array(P, "P", ndim=2), dtype=np.float32)
    if Zp.shape != Pp.shape:
        raise ValueError(f"Z and P must have the same shape, got {Zp.shape} and {Pp.shape}")
    idx = int_array(index, "index", ndim=2)
    T, n = idx.shape
    C = Zp.shape[1]
    if idx.size and ((idx < 0) | (idx >= Zp.shape[0])).any():
        raise ValueError(f"index out of range: rows of Z/P are 0..{Zp.shape[0] - 1}")
    e = float_array(eps, "eps", ndim=2, allow_empty=True).astype(np.float64, copy=False)
    lab = int_array(labels, "labels", ndim=2)
    if e.shape != (T, n) or lab.shape != (T, n):
        raise ValueError(f"eps {e.shape} and labels {lab.shape} must match index {(T, n)}")
    if ((lab < 0) | (lab >= C)).any():
        raise ValueError(f"labels out of range: they index the {C} score columns, so must lie in [0, {C})")
    if eng == "reference":
        return evaluate_sets(aps_from_precomputed(Zp[idx], Pp[idx], e[..., None]), lab, thresholds,
                             class_conditional=class_conditional, backend="reference")
    thr, batch = _set_thresholds(thresholds, False, T, C, class_conditional)
    Q = thr.shape[1]
    cover = np.zeros((T, Q, C), dtype=np.int64)
    size = np.zeros((T, Q, C), dtype=np.int64)
    counts = np.zeros((T, C), dtype=np.int64)
    if Q and n:
        _numba_aps_set_kernel()(Zp, Pp, np.ascontiguousarray(idx), np.ascontiguousarray(e),
                                np.ascontiguousarray(lab), thr, cover, size, counts)
    return _finish_sets(cover, size, _class_counts(lab, C), n, T, batch, False)


def evaluate_intervals(intervals: ArrayLike, y: ArrayLike, thresholds: ArrayLike) -> IntervalMetrics:
    """Coverage and mean length of ``[lo - q, hi + q]`` (spec §3), batched over trials and alpha.

    Parameters
    ----------
    intervals : float [T, n, 2] or [n, 2] - [lo, hi] per test point (CQR quantiles); for
        residual scores pass ``np.stack([pred, pred], -1)``
    y : float [T, n] or [n] - targets
    thresholds : float [T, ...] or [...] (without trial axis for 2-D intervals); may be +/-inf

    Returns
    -------
    :class:`IntervalMetrics` with float64 arrays shaped like ``thresholds``. The interval
    endpoints are formed in ``result_type(intervals, y, thresholds)`` (float32 for upstream's
    MEPS arrays and float32 thresholds), so coverage matches upstream exactly.
    """
    iv = float_array(intervals, "intervals", ndim=(2, 3))
    if iv.shape[-1] != 2:
        raise ValueError(f"intervals must have a last axis of size 2 ([lower, upper]), got shape {iv.shape}")
    squeeze = iv.ndim == 2
    iv = iv[None] if squeeze else iv
    T, n, _ = iv.shape
    yy = float_array(y, "y", ndim=(1, 2))
    yy = yy[None] if yy.ndim == 1 else yy
    if yy.shape != (T, n):
        raise ValueError(f"y has shape {yy.shape} but intervals imply {(T, n)}; one target per interval")
    q = float_array(thresholds, "thresholds", ndim=None, allow_empty=True)
    q = q[None] if squeeze else q
    if q.ndim < 1 or q.shape[0] != T:
        raise ValueError(f"thresholds must have a leading trial axis of size {T}, got shape {q.shape}")
    batch = q.shape[1:]
    dt = np.result_type(iv.dtype, yy.dtype, q.dtype)
    qf = q.reshape(T, -1, 1).astype(dt)  # [T, Q, 1]
    lo = iv[:, None, :, 0].astype(dt) - qf  # [T, Q, n]
    hi = iv[:, None, :, 1].astype(dt) + qf
    target = yy[:, None, :].astype(dt)
    empty = np.isneginf(qf)
    inside = (lo <= target) & (target <= hi) & ~empty
    coverage = inside.sum(axis=2) / n
    with np.errstate(invalid="ignore"):
        widths = np.where(empty, 0.0, hi - lo)
    length = widths.mean(axis=2, dtype=np.float64)
    shape = (T,) + batch
    cov, ln = coverage.reshape(shape), length.reshape(shape)
    return IntervalMetrics(cov[0], ln[0]) if squeeze else IntervalMetrics(cov, ln)
