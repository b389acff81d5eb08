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

``WeightedSplitConformalRegressor`` / ``WeightedSplitConformalClassifier`` wrap it in the
MAPIE-style estimators: weights come from ``sample_weight=`` / ``test_weight=`` (or
``weights`` at score level), else from ``likelihood_ratio(X)``.
"""
from __future__ import annotations

import math

import numpy as np

from .._typing import ArrayLike
from .._validation import float_array, open_unit_interval, real_scalar
from .mapie_api import SOURCES, SplitConformalClassifier, SplitConformalRegressor, _check_bool, _choice, _levels


def _weights(w: ArrayLike, name: str) -> np.ndarray:
    arr = float_array(w, name, ndim=1).astype(np.float64, copy=False)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and >= 0 (likelihood ratios dQ/dP)")
    return arr


def weighted_split_conformal_thresholds(scores: ArrayLike, calibration_weights: ArrayLike, test_weights: ArrayLike, alpha: ArrayLike,
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


def gaussian_shift_likelihood_ratio(x: ArrayLike, mean_p: ArrayLike, mean_q: ArrayLike, scale: float = 1.0) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------
# Estimators: one threshold per test point, from its weight
# ----------------------------------------------------------------------------------------
class _WeightedMixin:
    """Weights from ``sample_weight=`` or ``likelihood_ratio(X)``; per-sample thresholds."""

    _calibrated_attr = "calibration_weights_"

    def _resolve_weights(self, weights: ArrayLike, X: ArrayLike, n: int, name: str) -> np.ndarray:
        if weights is None:
            if X is None:  # score-level call: no features to evaluate likelihood_ratio on
                raise ValueError(f"{name} is required: one weight w(X_i) >= 0 per sample")
            if self.likelihood_ratio is None:
                raise ValueError(f"{name} is required (or set likelihood_ratio=, a callable X -> dQ/dP(X))")
            if not callable(self.likelihood_ratio):
                raise TypeError(f"likelihood_ratio must be callable, got {type(self.likelihood_ratio).__name__}")
            weights = self.likelihood_ratio(X)
        w = _weights(weights, name)
        if w.shape[0] != n:
            raise ValueError(f"{name} has {w.shape[0]} entries but there are {n} samples")
        return w

    def _store(self, scores: np.ndarray, w: np.ndarray) -> None:
        if scores.ndim == 2:  # cqr_asymmetric: each side at alpha / 2
            raise ValueError("conformity_score='cqr_asymmetric' is not supported by the weighted estimators")
        if w.sum() <= 0:
            raise ValueError("calibration weights sum to 0; at least one must be > 0")
        self.conformity_scores_ = scores
        self.calibration_weights_ = w

    def _per_sample_thresholds(self, test_w: np.ndarray, top: float) -> np.ndarray:
        """[m, A] thresholds for test weights [m]."""
        self._check_conformalized()
        alphas, _ = _levels(self.alpha, self.confidence_level)
        q = weighted_split_conformal_thresholds(self.conformity_scores_, self.calibration_weights_, test_w,
                                                list(alphas), top)
        return q


class WeightedSplitConformalRegressor(_WeightedMixin, SplitConformalRegressor):
    """Weighted split-conformal intervals under covariate shift (module docstring).

    Parameters as :class:`SplitConformalRegressor`, plus ``likelihood_ratio``: None or a
    callable X -> w(X) float [n] (dQ/dP up to a constant), used when no weights are passed.
    ``calibrate(pred, y, weights)`` / ``conformalize(X, y, sample_weight=None)``;
    ``predict_intervals(pred, weights)`` ([n, 2] or [A, n, 2]) / ``predict_interval(X,
    test_weight=None)`` ([n], [n, 2, A]). Scores: all symmetric ones ("cqr_asymmetric" raises).
    Fitted: ``conformity_scores_`` [n], ``calibration_weights_`` [n].
    """

    def __init__(self, estimator=None, confidence_level=0.9, conformity_score="absolute", prefit=True, n_jobs=None,
                 verbose=0, *, alpha=None, likelihood_ratio=None, sigma_estimator=None, source="real", backend=None):
        super().__init__(estimator, confidence_level, conformity_score, prefit, n_jobs, verbose, alpha=alpha,
                         sigma_estimator=sigma_estimator, source=source, backend=backend)
        self.likelihood_ratio = likelihood_ratio

    def calibrate(self, pred: ArrayLike, y: ArrayLike, weights: ArrayLike | None = None):
        """Calibration outputs, targets [n] and weights [n] (w(X_i)). Returns self."""
        _, self._scalar_alpha = _levels(self.alpha, self.confidence_level)
        _choice(self.source, "source", SOURCES)
        s = self._reg_scores(pred, y, "calibration")
        self._store(s, self._resolve_weights(weights, None, s.shape[0], "weights"))
        return self

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike, sample_weight: ArrayLike | None = None):
        out = self._model_outputs(X_conformalize, "X_conformalize")
        w = self._resolve_weights(sample_weight, X_conformalize, out.shape[0], "sample_weight")
        return self.calibrate(out, y_conformalize, w)

    def predict_intervals(self, pred: ArrayLike, weights: ArrayLike | None = None) -> np.ndarray:
        out = self._outputs(pred, "pred")
        q = self._per_sample_thresholds(self._resolve_weights(weights, None, out.shape[0], "weights"), math.inf)
        res = self._interval_bounds(out, q)
        return res[0] if self._scalar_alpha else res

    def predict_interval(self, X: ArrayLike, test_weight: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        out = self._model_outputs(X)
        q = self._per_sample_thresholds(self._resolve_weights(test_weight, X, out.shape[0], "test_weight"), math.inf)
        return self.predict(X), np.moveaxis(self._interval_bounds(out, q), 0, -1)


class WeightedSplitConformalClassifier(_WeightedMixin, SplitConformalClassifier):
    """Weighted split-conformal sets under covariate shift (marginal; ``class_conditional``
    must be False). Parameters as :class:`SplitConformalClassifier` plus ``likelihood_ratio``.
    ``calibrate(probs, labels, weights)`` / ``conformalize(X, y, sample_weight=None)``;
    ``predict_sets(probs, weights)`` / ``predict_set(X, test_weight=None)``.
    """

    def __init__(self, estimator=None, confidence_level=0.9, conformity_score="lac", prefit=True, n_jobs=None,
                 verbose=0, random_state=None, *, alpha=None, likelihood_ratio=None, score_params=None,
                 source="real", top=None, backend=None):
        super().__init__(estimator, confidence_level, conformity_score, prefit, n_jobs, verbose, random_state,
                         alpha=alpha, score_params=score_params, source=source, top=top, backend=backend)
        self.likelihood_ratio = likelihood_ratio

    def calibrate(self, probs: ArrayLike, labels: ArrayLike, weights: ArrayLike | None = None, *, u: ArrayLike | None = None):
        _, self._scalar_alpha = _levels(self.alpha, self.confidence_level)
        _choice(self.source, "source", SOURCES)
        if _check_bool(self.class_conditional, "class_conditional"):
            raise ValueError("class_conditional=True is not supported by WeightedSplitConformalClassifier")
        scores, lab, C = self._true_scores(probs, labels, u, np.random.default_rng(self.random_state), "calibration")
        self.n_classes_, self.classes_ = C, np.unique(lab)
        self._store(np.asarray(scores, dtype=np.float64), self._resolve_weights(weights, None, lab.shape[0], "weights"))
        return self

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike, sample_weight: ArrayLike | None = None, *, u: ArrayLike | None = None):
        p = self._model_probs(X_conformalize, "X_conformalize")
        w = self._resolve_weights(sample_weight, X_conformalize, p.shape[0], "sample_weight")
        return self.calibrate(p, self._label_index(y_conformalize), w, u=u)

    def _weighted_sets(self, probs: ArrayLike, w: np.ndarray, u: ArrayLike) -> np.ndarray:
        scores = self._all_scores(probs, u)  # [n, C]
        q = self._per_sample_thresholds(w, self._top())  # [n, A]
        return scores[None, :, :] <= q.T[:, :, None]  # [A, n, C]

    def predict_sets(self, probs: ArrayLike, weights: ArrayLike | None = None, u: ArrayLike | None = None) -> np.ndarray:
        n = np.shape(probs)[0]
        sets = self._weighted_sets(probs, self._resolve_weights(weights, None, n, "weights"), u)
        return sets[0] if self._scalar_alpha else sets

    def predict_set(self, X: ArrayLike, test_weight: ArrayLike | None = None, u: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        p = self._model_probs(X)
        sets = self._weighted_sets(p, self._resolve_weights(test_weight, X, p.shape[0], "test_weight"), u)
        return self.predict(X), np.moveaxis(sets, 0, -1)
