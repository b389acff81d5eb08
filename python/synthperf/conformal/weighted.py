"""Weighted (covariate-shift) split conformal (Tibshirani, Foygel Barber, Candes and Ramdas
2019, "Conformal prediction under covariate shift", Corollary 1).

When calibration covariates follow P and test covariates follow Q with likelihood ratio
w(x) = dQ/dP(x) (known up to a constant), e.g. real vs synthetic inputs, put mass

    p_i(x) = w(X_i) / (sum_j w(X_j) + w(x))   on each calibration score S_i,
    p_{n+1}(x) = w(x) / (sum_j w(X_j) + w(x))  on +inf,

and take q(x) = the (1 - alpha)-quantile of that distribution: the smallest S_(k) with
sum_{j <= k} p_(j)(x) >= 1 - alpha, and ``top`` (+inf) when no calibration score reaches it.
Then P{S_{n+1} <= q(X_{n+1})} >= 1 - alpha under the shift. Equal weights give the usual
split-conformal rank ceil((1 - alpha)(n + 1)) (up to the float rounding of (1 - alpha) * total).
The threshold depends on the test point through w(x), so there is one per test point.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._validation import float_array, open_unit_interval, real_scalar


def _weights(w: Any, name: str) -> np.ndarray:
    arr = float_array(w, name, ndim=1).astype(np.float64, copy=False)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 (likelihood ratios dQ/dP)")
    return arr


def weighted_split_conformal_thresholds(scores: Any, calibration_weights: Any, test_weights: Any, alpha: Any,
                                        top: float = math.inf) -> np.ndarray:
    """Weighted split-conformal thresholds, one per test point (module docstring).

    Parameters
    ----------
    scores : float [n] calibration scores (no NaN)
    calibration_weights : float [n] >= 0, w(X_i) (any common scale)
    test_weights : float [m] >= 0, w(x) of each test point (same scale)
    alpha : float or [A] in (0, 1)
    top : value when the quantile is the point mass at +inf (default +inf)

    Returns float64 [m] (scalar alpha) or [m, A]. Sets / intervals use {s <= q(x)}.
    """
    s = float_array(scores, "scores", ndim=1).astype(np.float64, copy=False)
    wc = _weights(calibration_weights, "calibration_weights")
    wt = _weights(test_weights, "test_weights")
    if wc.shape[0] != s.shape[0]:
        raise ValueError(f"calibration_weights has {wc.shape[0]} entries but scores has {s.shape[0]}")
    if wc.sum() <= 0:
        raise ValueError("calibration_weights sum to 0; at least one calibration weight must be > 0")
    levels = np.atleast_1d(open_unit_interval(np.asarray(alpha, dtype=float)
                                              if isinstance(alpha, (list, tuple)) else alpha, "alpha"))
    top = real_scalar(top, "top")
    order = np.argsort(s, kind="stable")
    s_sorted, cw = s[order], np.cumsum(wc[order])
    total = cw[-1] + wt  # [m]
    target = (1.0 - levels)[None, :] * total[:, None]  # [m, A]
    idx = np.searchsorted(cw, target, side="left")  # first k (0-based) with cw[k] >= target
    out = np.where(idx < s.shape[0], s_sorted[np.minimum(idx, s.shape[0] - 1)], top)
    return out[:, 0] if np.ndim(alpha) == 0 else out


def gaussian_shift_likelihood_ratio(x: Any, mean_p: Any, mean_q: Any, scale: float = 1.0) -> np.ndarray:
    """dQ/dP(x) for P = N(mean_p, scale^2 I) and Q = N(mean_q, scale^2 I); x float [n, d] or
    [n] (d = 1). Returns float64 [n]. A convenience for simulations and tests."""
    xx = float_array(x, "x", ndim=(1, 2)).astype(np.float64)
    xx = xx[:, None] if xx.ndim == 1 else xx
    mp = np.broadcast_to(np.asarray(mean_p, dtype=np.float64), (xx.shape[1],))
    mq = np.broadcast_to(np.asarray(mean_q, dtype=np.float64), (xx.shape[1],))
    sc = real_scalar(scale, "scale", allow_inf=False)
    if sc <= 0:
        raise ValueError(f"scale must be > 0, got {sc}")
    log_r = (((xx - mp) ** 2).sum(1) - ((xx - mq) ** 2).sum(1)) / (2 * sc * sc)
    return np.exp(log_r)
