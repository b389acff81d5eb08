"""SPPI transport windows and worst-case coverage bounds (specs/sppi.md §1a-§1c).

For m = n_real + 1 real ranks and N synthetic scores, rank r's bucket k (k-1 synthetic
scores below the r-th real score) has pmf P_r(k), i.e. k-1 ~ BetaBinomial(N, r, m+1-r).
With F_r(k) = sum_{k' <= k} P_r(k') accumulated in double from k = 1:

    L_r = min{k >= 1 : F_r(k) > beta/2}                  (strict)
    U_r = min(min{k >= L_r : F_r(k) >= 1 - beta/2}, N)   (search stops at N+1)
    L_r = U_r = -1 when L_r = N+1 (empty row; counts as "<= K" everywhere)

Upstream evaluates every pmf value with big-int binomials (correctly rounded doubles) in
O(m N) big-int operations per call (541 s at N=30000, m=451). Here the C++ core
(``csrc/cpu/sppi.cpp``) walks the recurrence p_{j+1}/p_j = (j+r)(N-j) / ((j+1)(N-j+m-r)) and
stops at U_r. Every decision (F > beta/2, F >= 1-beta/2) is certified against upstream's
double evaluation by a rigorous *relative* error bound (start product, recurrence and both
sequential sums); the rare rows whose running sum lies within that bound of a threshold are
redone in double-double, where each term's correct rounding is known or bracketed, which
settles them exactly; rows still open after that (status 2, ~1e-7 per row) are recomputed
with big integers (:func:`exact_window_row`). So the integers always agree with upstream's.
Results are cached by (n_real, n_synth, beta); :func:`window_recheck_counts` reports how many
rows needed each stage.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .. import _native
from .._validation import open_unit_interval, positive_int

#: (n_real, n_synth, beta) -> {"double_double": rows settled in double-double,
#: "big_int": rows recomputed with big integers}, filled when the windows are computed.
_RECHECKS: dict[tuple[int, int, float], dict[str, int]] = {}

#: Largest (n_real + 1) * n_synth accepted: the windows cost O((n_real + 1) n_synth) recurrence
#: steps (about 95 s single-threaded at (15, 10**8) = 1.6e9, where every row needs the
#: double-double pass). Beyond this bound a call would run for hours or fail to allocate
#: (issue 17: ``transport_windows(10**12, 10**13)`` raised MemoryError), so it is refused.
MAX_WINDOW_WORK = 10 ** 10


def _validate_sizes(n_real: int, n_synth: int, beta: float) -> tuple[int, int, float]:
    n_real = positive_int(n_real, "n_real", minimum=1)
    n_synth = positive_int(n_synth, "n_synth", minimum=1)
    if n_synth < n_real + 2:
        raise ValueError(f"n_synth must be >= n_real + 2 (upstream requires n_real + 1 < n_synth); "
                         f"got n_real={n_real}, n_synth={n_synth}")
    if (n_real + 1) * n_synth > MAX_WINDOW_WORK:
        raise ValueError(f"n_real={n_real}, n_synth={n_synth} is too large: the transport windows take "
                         f"(n_real + 1) * n_synth = {(n_real + 1) * n_synth:.3g} steps, above the limit "
                         f"{MAX_WINDOW_WORK:.0e} (hours of work); subsample the synthetic scores")
    if isinstance(beta, (list, tuple, np.ndarray)):
        raise TypeError(f"beta must be a scalar in (0, 1), got {beta!r}")
    beta_f = float(open_unit_interval(beta, "beta"))
    return n_real, n_synth, beta_f


def exact_window_row(n_synth: int, m: int, r: int, beta: float) -> tuple[int, int]:
    """One rank's (L_r, U_r) evaluated exactly as upstream (big-int pmf, sequential double sum).

    O(N) big-integer operations; used for rows near a threshold and in tests.
    """
    N = n_synth
    lo, hi = beta / 2.0, 1.0 - beta / 2.0
    denom = math.comb(N + m, m)
    # P_r(k) = C(k+r-2, r-1) C(N+m-k-r+1, m-r) / C(N+m, m); both binomials updated exactly.
    c1 = 1  # C(r-1, r-1) at k = 1
    c2 = math.comb(N + m - r, m - r)  # at k = 1
    F = 0.0
    L = None
    for k in range(1, N + 2):
        F += (c1 * c2) / denom  # int / int true division: correctly rounded double
        if L is None and F > lo:
            L = k
        if L is not None and F >= hi:
            return (-1, -1) if L == N + 1 else (L, min(k, N))
        if k <= N:
            c1 = c1 * (k + r - 1) // k
            top = N + m - k - r + 1  # C(top, m-r) -> C(top-1, m-r)
            c2 = c2 * (top - (m - r)) // top if top > 0 else 0
    if L is None or L == N + 1:
        return -1, -1
    return L, N


@lru_cache(maxsize=512)
def _windows_cached(n_real: int, n_synth: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
    m = n_real + 1
    L, U, status = _native.transport_windows_f64(n_real, n_synth, beta)
    open_rows = np.flatnonzero(status == 2) + 1
    for r in open_rows:
        L[r - 1], U[r - 1] = exact_window_row(n_synth, m, int(r), beta)
    _RECHECKS[(n_real, n_synth, beta)] = {"double_double": int((status == 1).sum()), "big_int": int(open_rows.size)}
    L.setflags(write=False)
    U.setflags(write=False)
    return L, U


def window_recheck_counts(n_real: int, n_synth: int, beta: float) -> dict[str, int]:
    """How many rows of ``transport_windows(n_real, n_synth, beta)`` were not settled by the fast
    double pass: ``{"double_double": ..., "big_int": ...}`` (computes the windows if needed)."""
    key = _validate_sizes(n_real, n_synth, beta)
    _windows_cached(*key)
    if key not in _RECHECKS:  # cached before the counts were recorded (cannot happen); recompute
        _windows_cached.cache_clear()
        _windows_cached(*key)
    return dict(_RECHECKS[key])


def transport_windows(n_real: int, n_synth: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows (L, U) of the SPPI score transporter (specs/sppi.md §1b).

    Parameters
    ----------
    n_real : int >= 1, number of real calibration scores n (m = n + 1 ranks).
    n_synth : int >= n_real + 2, number of synthetic scores N; (n_real + 1) * n_synth must not
        exceed :data:`MAX_WINDOW_WORK` (ValueError).
    beta : float in (0, 1), window slack.

    Returns
    -------
    (L, U) : int64 arrays of length n_real + 1 (read-only, cached). Entry r-1 holds rank r's
    1-based bucket window; -1 marks an empty window (the r-th real score lies above all
    synthetic scores with high probability). Both are non-decreasing before the sentinels.
    """
    return _windows_cached(*_validate_sizes(n_real, n_synth, beta))


def coverage_bounds(n_real: int, n_synth: int, alpha, beta: float = 0.4, *, upstream: bool = False):
    """Worst-case coverage bounds of SPPI, ``(r_plus/(n+1), r_minus/(n+1))`` (specs/sppi.md §1c).

    The coverage of ``{s <= q}`` on a new real point lies in these bounds whatever the
    synthetic scores, because q is clipped to [S_(r_plus), S_(r_minus)].

    Default: ``r_plus``/``r_minus`` are the ranks the threshold uses (the one rank helper of
    :mod:`.thresholds`: exact K = ceil((1-alpha)(N+1))), so the bounds are exact fractions
    and always describe ``sppi_threshold(..., upstream=False)``. ``r_plus = 0`` gives a lower
    bound 0, ``r_minus = n+1`` an upper bound 1.

    ``upstream=True``: upstream's ``get_wc_bounds``: K = ``math.ceil((1-alpha)*(N+1))`` in
    double (which can differ from the K of upstream's own threshold, spec §1d) and both
    bounds rounded to 3 decimals. Only for comparing with upstream outputs.

    Scalar alpha gives a float pair, array alpha a pair of float arrays [A].
    """
    n_real, n_synth, beta = _validate_sizes(n_real, n_synth, beta)
    if not isinstance(upstream, (bool, np.bool_)):
        raise TypeError(f"upstream must be a bool, got {type(upstream).__name__} {upstream!r}")
    alphas = np.atleast_1d(open_unit_interval(alpha, "alpha")).astype(np.float64)
    L, U = transport_windows(n_real, n_synth, beta)
    if upstream:
        K = np.array([math.ceil((1 - a) * (n_synth + 1)) for a in alphas.tolist()], dtype=np.int64)
        r_plus = np.array([_last_rank_at_most(U, k) for k in K])
        r_minus = np.array([_last_rank_at_most(L, k) for k in K])
        lower = np.round(r_plus / (n_real + 1), 3)
        upper = np.round(r_minus / (n_real + 1), 3)
    else:
        from .thresholds import sppi_rank_arrays

        _, r_plus, r_minus = sppi_rank_arrays(np.array([n_real]), np.array([n_synth]), alphas, beta)
        lower = r_plus[0] / (n_real + 1)
        upper = r_minus[0] / (n_real + 1)
    if np.ndim(alpha) == 0:
        return float(lower[0]), float(upper[0])
    return lower, upper


def _last_rank_at_most(W: np.ndarray, K: int) -> int:
    """max{r : W[r-1] <= K}, a -1 sentinel counting as satisfied; 0 when none qualifies."""
    ok = (W <= K) | (W < 0)
    idx = np.flatnonzero(ok)
    return int(idx[-1]) + 1 if idx.size else 0
