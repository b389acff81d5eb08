"""SPPI transport windows and worst-case coverage bounds (specs/sppi.md §1a-§1c).

For m = n_real + 1 real ranks and N synthetic scores, rank r's bucket k (k-1 synthetic
scores below the r-th real score) has pmf P_r(k), i.e. k-1 ~ BetaBinomial(N, r, m+1-r).
With F_r(k) = sum_{k' <= k} P_r(k') accumulated in double from k = 1:

    L_r = min{k >= 1 : F_r(k) > beta/2}                  (strict)
    U_r = min(min{k >= L_r : F_r(k) >= 1 - beta/2}, N)   (search stops at N+1)
    L_r = U_r = -1 when L_r = N+1 (empty row; counts as "<= K" everywhere)

Upstream evaluates every pmf value with big-int binomials (correctly rounded doubles) in
O(m N) big-int operations per call (541 s at N=30000, m=451). Here the C++ core walks
the recurrence p_{j+1}/p_j = (j+r)(N-j) / ((j+1)(N-j+m-r)) and stops at U_r; every row
whose running sum came within 1e-8 of a threshold at a decisive bucket is recomputed
exactly the upstream way, so the integers agree with upstream's double evaluation.
Results are cached by (n_real, n_synth, beta).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .. import _native
from .._validation import open_unit_interval, positive_int

#: Rows whose running sum passes a threshold closer than this are recomputed exactly.
EXACT_RECHECK_MARGIN = 1e-8


def _validate_sizes(n_real: int, n_synth: int, beta: float) -> tuple[int, int, float]:
    n_real = positive_int(n_real, "n_real", minimum=1)
    n_synth = positive_int(n_synth, "n_synth", minimum=1)
    if n_synth < n_real + 2:
        raise ValueError(f"n_synth must be >= n_real + 2 (upstream requires n_real + 1 < n_synth); "
                         f"got n_real={n_real}, n_synth={n_synth}")
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
    L, U, margin = _native.transport_windows_f64(n_real, n_synth, beta)
    for r in np.flatnonzero(margin < EXACT_RECHECK_MARGIN) + 1:
        L[r - 1], U[r - 1] = exact_window_row(n_synth, m, int(r), beta)
    L.setflags(write=False)
    U.setflags(write=False)
    return L, U


def transport_windows(n_real: int, n_synth: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows (L, U) of the SPPI score transporter (specs/sppi.md §1b).

    Parameters
    ----------
    n_real : int >= 1, number of real calibration scores n (m = n + 1 ranks).
    n_synth : int >= n_real + 2, number of synthetic scores N.
    beta : float in (0, 1), window slack.

    Returns
    -------
    (L, U) : int64 arrays of length n_real + 1 (read-only, cached). Entry r-1 holds rank r's
    1-based bucket window; -1 marks an empty window (the r-th real score lies above all
    synthetic scores with high probability). Both are non-decreasing before the sentinels.
    """
    return _windows_cached(*_validate_sizes(n_real, n_synth, beta))


def coverage_bounds(n_real: int, n_synth: int, alpha, beta: float = 0.4):
    """Worst-case coverage bounds of SPPI, ``(r_plus/(n+1), r_minus/(n+1))`` rounded to 3 decimals.

    They hold whatever the synthetic scores are (specs/sppi.md §1c). ``r_plus`` (``r_minus``)
    is the largest rank whose U (L) window bound is <= K = ceil((1-alpha)(N+1)), computed as
    an int as upstream's ``get_wc_bounds``. Scalar alpha gives floats, array alpha arrays.
    """
    n_real, n_synth, beta = _validate_sizes(n_real, n_synth, beta)
    alphas = open_unit_interval(alpha, "alpha")
    L, U = transport_windows(n_real, n_synth, beta)
    K = np.array([math.ceil((1 - a) * (n_synth + 1)) for a in np.atleast_1d(alphas)], dtype=np.int64)
    r_plus = np.array([_last_rank_at_most(U, k) for k in K])
    r_minus = np.array([_last_rank_at_most(L, k) for k in K])
    lower = np.round(r_plus / (n_real + 1), 3)
    upper = np.round(r_minus / (n_real + 1), 3)
    if np.ndim(alpha) == 0:
        return float(lower[0]), float(upper[0])
    return lower, upper


def _last_rank_at_most(W: np.ndarray, K: int) -> int:
    """max{r : W[r-1] <= K}, a -1 sentinel counting as satisfied; 0 when none qualifies."""
    ok = (W <= K) | (W < 0)
    idx = np.flatnonzero(ok)
    return int(idx[-1]) + 1 if idx.size else 0
