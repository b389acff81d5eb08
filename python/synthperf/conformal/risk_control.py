"""Conformal risk control (Angelopoulos, Bates, Fisch, Lei and Schuster 2022, "Conformal
risk control", Theorem 1).

Each calibration point i gives a loss curve L_i(lambda) on an ascending grid, bounded in
[0, B] and non-increasing in lambda. With R_n(lambda) = mean_i L_i(lambda),

    lambda_hat = min{ lambda : n / (n + 1) * R_n(lambda) + B / (n + 1) <= alpha }

controls the expected test loss: E[L_{n+1}(lambda_hat)] <= alpha, provided the largest
lambda in the grid has L_i(lambda_max) <= alpha for every i (the paper's assumption; if no
grid value satisfies the inequality, ValueError). With i.i.d. continuous losses the risk is
also >= alpha - 2B / (n + 1) (Theorem 2). The miscoverage loss 1[y not in C_lambda(x)]
recovers split conformal.

Loss builders (each [n, G] float64, non-increasing along the grid):
- :func:`false_negative_losses`: multilabel false-negative rate of C_lambda(x) = {k : p_k >= 1 - lambda};
- :func:`selective_error_losses`: 1[selected and wrong] with selection {confidence > lambda},
  which bounds P(selected and wrong) <= alpha for selective prediction.
"""
from __future__ import annotations


import numpy as np

from .._typing import ArrayLike
from .._validation import float_array, open_unit_interval, real_scalar


def _grid(lambdas: ArrayLike) -> np.ndarray:
    lam = float_array(lambdas, "lambdas", ndim=1).astype(np.float64, copy=False)
    if not np.isfinite(lam).all() or (np.diff(lam) <= 0).any():
        raise ValueError("lambdas must be finite and strictly increasing")
    return lam


def conformal_risk_control(losses: ArrayLike, lambdas: ArrayLike, alpha: ArrayLike, *, bound: float = 1.0):
    """lambda_hat of conformal risk control (module docstring).

    Parameters
    ----------
    losses : float [n, G] loss of calibration point i at lambdas[g]; in [0, bound] and
        non-increasing along the grid (checked)
    lambdas : float [G] strictly increasing grid
    alpha : float or [A] target risk level(s) in (0, 1)
    bound : B, the loss upper bound (> 0)

    Returns a float (scalar alpha) or float64 [A].
    """
    L = float_array(losses, "losses", ndim=2).astype(np.float64, copy=False)
    lam = _grid(lambdas)
    if L.shape[1] != lam.shape[0]:
        raise ValueError(f"losses has {L.shape[1]} columns but lambdas has {lam.shape[0]} values")
    B = real_scalar(bound, "bound", allow_inf=False)
    if B <= 0:
        raise ValueError(f"bound must be > 0, got {B}")
    if (L < 0).any() or (L > B).any() or not np.isfinite(L).all():
        raise ValueError(f"losses must lie in [0, bound={B}]")
    if (np.diff(L, axis=1) > 0).any():
        raise ValueError("losses must be non-increasing in lambda along each row")
    levels = np.atleast_1d(open_unit_interval(np.asarray(alpha, dtype=float)
                                              if isinstance(alpha, (list, tuple)) else alpha, "alpha"))
    n = L.shape[0]
    adjusted = (n / (n + 1.0)) * L.mean(axis=0) + B / (n + 1.0)  # [G], non-increasing
    ok = adjusted[None, :] <= levels[:, None]  # [A, G]
    if not ok[:, -1].all():
        a = float(levels[~ok[:, -1]][0])
        raise ValueError(f"no lambda in the grid controls the risk at alpha={a}: the adjusted risk at the largest "
                         f"lambda is {float(adjusted[-1]):.4g}; extend lambdas or use more calibration points "
                         f"(need n + 1 > bound / alpha)")
    out = lam[np.argmax(ok, axis=1)]
    return float(out[0]) if np.ndim(alpha) == 0 else out


def false_negative_losses(probs: ArrayLike, label_matrix: ArrayLike, lambdas: ArrayLike) -> np.ndarray:
    """Multilabel false-negative rate of C_lambda(x) = {k : p_k >= 1 - lambda}.

    probs : float [n, K] per-label scores in [0, 1]; label_matrix : bool [n, K] true labels
    (each row with at least one); lambdas : [G] increasing. Returns float64 [n, G] in [0, 1].
    """
    p = float_array(probs, "probs", ndim=2).astype(np.float64, copy=False)
    if (p < 0).any() or (p > 1).any():
        raise ValueError("probs must lie in [0, 1]")
    y = np.asarray(label_matrix)
    if y.dtype != bool:
        raise TypeError(f"label_matrix must be a bool array, got dtype {y.dtype}")
    if y.shape != p.shape:
        raise ValueError(f"label_matrix has shape {y.shape} but probs has shape {p.shape}; they must match")
    n_true = y.sum(axis=1)
    if (n_true == 0).any():
        raise ValueError(f"label_matrix row {int(np.flatnonzero(n_true == 0)[0])} has no true label")
    lam = _grid(lambdas)
    inside = p[:, :, None] >= 1.0 - lam[None, None, :]  # [n, K, G]
    missed = (y[:, :, None] & ~inside).sum(axis=1)
    return missed / n_true[:, None]


def selective_error_losses(confidence: ArrayLike, correct: ArrayLike, lambdas: ArrayLike) -> np.ndarray:
    """1[confidence > lambda and not correct]: the loss of selecting a wrong prediction.

    confidence : float [n]; correct : bool [n]; lambdas : [G] increasing. Returns float64
    [n, G] in {0, 1}; conformal_risk_control on it bounds P(selected and wrong) <= alpha.
    """
    c = float_array(confidence, "confidence", ndim=1).astype(np.float64, copy=False)
    ok = np.asarray(correct)
    if ok.dtype != bool:
        raise TypeError(f"correct must be a bool array, got dtype {ok.dtype}")
    if ok.shape != c.shape:
        raise ValueError(f"correct has shape {ok.shape} but confidence has shape {c.shape}; they must match")
    lam = _grid(lambdas)
    return ((c[:, None] > lam[None, :]) & ~ok[:, None]).astype(np.float64)
