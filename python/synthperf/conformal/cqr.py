"""Conformalized quantile regression with MAPIE 1.x's ``ConformalizedQuantileRegressor``
signature (Romano, Patterson and Candes 2019; issue 16).

``fit`` fits three clones of a quantile-loss regressor at the levels (1 - c)/2, (1 + c)/2 and
0.5 (c = ``confidence_level``); with ``prefit=True`` the estimator is a list of three fitted
regressors (lower, upper, median), as in MAPIE. ``conformalize`` computes both corrections:

- asymmetric (MAPIE's default, ``symmetric_correction=False``): scores (lo - y, y - hi), each
  side at alpha / 2, interval [lo - q_lo, hi + q_hi];
- symmetric: the CQR score max(lo - y, y - hi) at alpha, interval [lo - q, hi + q].

Thresholds are exact split-conformal order statistics (``thresholds.split_conformal_thresholds``).
``predict_interval`` returns (median [n], intervals [n, 2, 1]), the shapes MAPIE returns.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .._typing import ArrayLike
from .._validation import float_array, open_unit_interval
from ..backend import backend_option
from .mapie_api import _check_bool
from .scores import cqr_asymmetric_scores, cqr_scores
from .thresholds import split_conformal_thresholds


def _with_quantile(estimator: object, q: float) -> object:
    """A clone of ``estimator`` set to predict the q-quantile (sklearn / LightGBM conventions)."""
    est = clone(estimator)
    params = est.get_params()
    if "quantile" in params:  # QuantileRegressor, HistGradientBoostingRegressor
        return est.set_params(quantile=q, **({"loss": "quantile"} if "loss" in params else {}))
    if "loss" in params and "alpha" in params:  # GradientBoostingRegressor
        return est.set_params(loss="quantile", alpha=q)
    if "objective" in params and "alpha" in params:  # lightgbm.LGBMRegressor
        return est.set_params(objective="quantile", alpha=q)
    raise ValueError(f"estimator {type(estimator).__name__} has no quantile loss parameter (expected 'quantile', "
                     "loss='quantile' with 'alpha', or objective='quantile'); pass e.g. QuantileRegressor()")


class ConformalizedQuantileRegressor(BaseEstimator):
    """CQR intervals, MAPIE 1.x signature (module docstring).

    Parameters
    ----------
    estimator : a regressor with a quantile loss (``prefit=False``), or a list of three fitted
        regressors [lower, upper, median] (``prefit=True``)
    confidence_level : float in (0, 1), default 0.9 (one level, as MAPIE)
    prefit : False (default, as MAPIE) or True
    backend : threshold kernel backend; None = the process setting

    Fitted: ``estimators_`` [lower, upper, median]; ``thresholds_`` (q_lo, q_hi) [2] for the
    asymmetric correction; ``symmetric_threshold_`` float; ``conformity_scores_`` [n, 2].
    """

    def __init__(self, estimator=None, confidence_level=0.9, prefit=False, *, backend=None):
        self.estimator = estimator
        self.confidence_level = confidence_level
        self.prefit = prefit
        self.backend = backend

    def _alpha(self) -> float:
        if isinstance(self.confidence_level, (list, tuple, np.ndarray)):
            raise ValueError("confidence_level must be a single float for ConformalizedQuantileRegressor (as MAPIE)")
        return 1.0 - float(open_unit_interval(self.confidence_level, "confidence_level"))

    def fit(self, X: ArrayLike, y: ArrayLike, fit_params: dict | None = None):
        """Fit the lower, upper and median quantile models (``prefit=False``). Returns self."""
        if _check_bool(self.prefit, "prefit"):
            raise ValueError("fit() called with prefit=True: pass three fitted regressors and skip fit(...)")
        if self.estimator is None or isinstance(self.estimator, (list, tuple)):
            raise ValueError("estimator must be one quantile-loss regressor when prefit=False")
        a = self._alpha()
        self.estimators_ = [_with_quantile(self.estimator, q).fit(X, y, **(fit_params or {}))
                            for q in (a / 2, 1 - a / 2, 0.5)]
        for attr in ("thresholds_", "symmetric_threshold_", "conformity_scores_"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self

    def _models(self) -> list:
        if not _check_bool(self.prefit, "prefit"):
            if not hasattr(self, "estimators_"):
                raise NotFittedError("prefit=False: call fit(X_train, y_train) before conformalize(...)")
            return self.estimators_
        if not isinstance(self.estimator, (list, tuple)) or len(self.estimator) != 3:
            raise ValueError("prefit=True needs estimator = [lower, upper, median] (three fitted regressors)")
        for est in self.estimator:
            check_is_fitted(est)
        self.estimators_ = list(self.estimator)
        return self.estimators_

    def _bounds(self, X: ArrayLike, name: str) -> np.ndarray:
        lo, hi, _ = self._models()
        return float_array(np.stack([np.asarray(lo.predict(X), dtype=float), np.asarray(hi.predict(X), dtype=float)],
                                    axis=1), name, ndim=2)

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike):
        """Compute both corrections on held-out (X, y). Returns self."""
        a = self._alpha()
        iv = self._bounds(X_conformalize, "X_conformalize")
        y = float_array(y_conformalize, "y_conformalize", ndim=1)
        if y.shape[0] != iv.shape[0]:
            raise ValueError(f"y_conformalize has {y.shape[0]} entries but X_conformalize has {iv.shape[0]} rows")
        bk = backend_option(self.backend)
        s = cqr_asymmetric_scores(iv, y)
        self.conformity_scores_ = s
        self.thresholds_ = np.array([split_conformal_thresholds(np.ascontiguousarray(s[None, :, j]), [a / 2], math.inf,
                                                                backend=bk)[0, 0] for j in (0, 1)])
        self.symmetric_threshold_ = float(split_conformal_thresholds(cqr_scores(iv, y)[None], [a], math.inf,
                                                                     backend=bk)[0, 0])
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "thresholds_")

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Median predictions [n]."""
        if not hasattr(self, "thresholds_"):
            raise NotFittedError("this ConformalizedQuantileRegressor is not conformalized yet; call conformalize(...)")
        return np.asarray(self.estimators_[2].predict(X), dtype=float)

    def predict_interval(self, X: ArrayLike, minimize_interval_width: bool = False, allow_infinite_bounds: bool = False,
                         symmetric_correction: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(median [n], intervals [n, 2, 1]). Infinite bounds (too few conformalization points
        for the level: n < 2/alpha - 1 asymmetric, 1/alpha - 1 symmetric) raise ValueError
        unless ``allow_infinite_bounds``. ``minimize_interval_width=True`` is not offered."""
        if _check_bool(minimize_interval_width, "minimize_interval_width"):
            raise ValueError("minimize_interval_width=True is not offered (it applies to MAPIE's ensemble methods)")
        pred = self.predict(X)
        iv = self._bounds(X, "X")
        if _check_bool(symmetric_correction, "symmetric_correction"):
            q_lo = q_hi = self.symmetric_threshold_
        else:
            q_lo, q_hi = self.thresholds_
        if not _check_bool(allow_infinite_bounds, "allow_infinite_bounds") and math.isinf(max(q_lo, q_hi)):
            raise ValueError("the conformalization set is too small for this confidence_level (infinite bounds); "
                             "use more conformalization points or pass allow_infinite_bounds=True")
        return pred, np.stack([iv[:, 0] - q_lo, iv[:, 1] + q_hi], axis=1)[:, :, None]
