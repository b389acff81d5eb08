"""MAPIE 1.x-compatible split-conformal estimators (issue 16; spec ``sppi.md`` §3 baselines).

``SplitConformalClassifier`` and ``SplitConformalRegressor`` take MAPIE 1.x's signature
(``estimator``, ``confidence_level``, ``conformity_score``, ``prefit``, ``n_jobs``,
``verbose``, ``random_state``) and verbs, so a MAPIE snippet runs with only the import
changed::

    clf = SplitConformalClassifier(estimator=LogisticRegression(), confidence_level=[0.9, 0.95],
                                   prefit=False).fit(X_train, y_train).conformalize(X_cal, y_cal)
    y_pred, y_pred_set = clf.predict_set(X_test)      # [n], bool [n, n_classes, n_levels]
    reg = SplitConformalRegressor(estimator=Ridge(), prefit=False).fit(X_train, y_train)
    y_pred, intervals = reg.conformalize(X_cal, y_cal).predict_interval(X_test)  # [n], [n, 2, n_levels]

The level axis is last, as in MAPIE. ``estimator=None`` means X already *is* the model output
(probabilities [n, C]; point predictions [n]; (pred, sigma) or (lower, upper) [n, 2]).

Score-level API (kept from before): ``calibrate(outputs, y)`` and ``predict_sets`` /
``predict_intervals`` work on model outputs with ``alpha=`` and a *leading* level axis
([A, n, C] / [A, n, 2], no level axis for a scalar alpha). ``alpha`` (keyword), when given,
overrides ``confidence_level`` (alpha = 1 - confidence_level).

sklearn conventions: ``__init__`` stores parameters only; validation happens in ``fit`` /
``conformalize``; fitted attributes end in ``_``; ``check_is_fitted`` passes once conformalized
(``__sklearn_is_fitted__``) and ``clone`` works. ``clone`` clones the wrapped estimator too
(unfitted), as sklearn does; wrap a prefit model in ``sklearn.frozen.FrozenEstimator`` to keep
it fitted across ``clone``. Refitting or re-conformalizing recomputes (no "already called" error).

Thresholds are exact split-conformal order statistics, rank ceil((1 - alpha)(n + 1)), from
``thresholds.split_conformal_thresholds`` (the one rank helper); ``top`` when the rank exceeds n.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from .._typing import ArrayLike
from .._validation import float_array, int_array, open_unit_interval, real_scalar
from ..backend import backend_option
from .scores import (APS_TOP, abs_residual_scores, aps_scores, cqr_asymmetric_scores, cqr_scores, gamma_scores,
                     lac_scores, normalized_residual_scores, raps_scores, saps_scores, topk_scores)
from .thresholds import split_conformal_thresholds

CLASSIFICATION_SCORES = ("lac", "aps", "raps", "saps", "top_k")
REGRESSION_SCORES = ("absolute", "gamma", "residual_normalized", "cqr", "cqr_asymmetric")
_REGRESSION_ALIASES = {"abs": "absolute"}
_SCORE_PARAMS = {"lac": {}, "top_k": {}, "aps": {"randomized": True},
                 "raps": {"penalty": 0.01, "kreg": 1, "randomized": True},
                 "saps": {"weight": 0.2, "randomized": True}}
SOURCES = ("real", "synthetic")


def _choice(value: object, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _levels(alpha: ArrayLike, confidence_level: ArrayLike | None) -> tuple[np.ndarray, bool]:
    """Miscoverage levels [A] (float64) and whether the level was a scalar."""
    if alpha is not None:
        value, name = alpha, "alpha"
    else:
        value, name = confidence_level, "confidence_level"
    if isinstance(value, (list, tuple)):
        value = np.asarray(value, dtype=float)
    levels = np.atleast_1d(open_unit_interval(value, name))
    if name == "confidence_level":
        # 1 - 0.8 is 0.19999999999999996 in binary; the exact rank helper would then take one
        # rank more than the user's decimal intent. Round to the nearest 1e-12 (the level the
        # user typed); a level that is not a short decimal moves by < 1e-12.
        levels = np.round(1.0 - levels, 12)
    return levels, np.ndim(value) == 0


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


class _ModelMixin:
    """fit / prefit handling of a wrapped sklearn estimator (MAPIE 1.x lifecycle)."""

    def fit(self, X: ArrayLike, y: ArrayLike, fit_params: dict | None = None):
        """Fit a clone of ``estimator`` on (X, y) (``prefit=False`` only). Returns self."""
        if _check_bool(self.prefit, "prefit"):
            raise ValueError("fit() called with prefit=True: the estimator is used as already fitted; "
                             "skip fit(...) or pass prefit=False")
        if self.estimator is None:
            raise ValueError("estimator is None: there is no model to fit; pass estimator=... or call "
                             "conformalize(...) on model outputs")
        model = clone(self.estimator)
        model.fit(X, y, **(fit_params or {}))
        self.estimator_ = model
        self._fit_extra(X, y, model)
        for attr in ("thresholds_", "conformity_scores_", "calibration_weights_", "bin_thresholds_"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self

    def _fit_extra(self, X: ArrayLike, y: ArrayLike, model: object) -> None:
        """Hook for auxiliary models (the regressor's ``sigma_estimator``)."""

    def _model(self) -> object:
        """The fitted wrapped estimator, or None (X are model outputs)."""
        if self.estimator is None:
            return None
        if _check_bool(self.prefit, "prefit"):
            try:
                check_is_fitted(self.estimator)
            except NotFittedError as err:
                raise NotFittedError(f"prefit=True but the estimator is not fitted ({err}); fit it first, "
                                     "or pass prefit=False and call fit(X_train, y_train)") from None
            self.estimator_ = self.estimator
            return self.estimator
        if not hasattr(self, "estimator_"):
            raise NotFittedError(f"this {type(self).__name__} has prefit=False: call fit(X_train, y_train) "
                                 "before conformalize(...)")
        return self.estimator_

    _calibrated_attr = "thresholds_"  # the weighted estimators keep calibration_weights_ instead

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, self._calibrated_attr)

    def _check_conformalized(self) -> None:
        if not hasattr(self, self._calibrated_attr):
            raise NotFittedError(f"this {type(self).__name__} is not conformalized yet; call conformalize(...) "
                                 "(or calibrate(...)) first")


# ----------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------
class _ClassifierCore(_ModelMixin):
    """Scores, thresholds and sets shared by the split and SPPI classifiers."""

    _score_attr = "conformity_score"  # the SPPI classes call it "score"

    def _score_name(self) -> str:
        return _choice(getattr(self, self._score_attr), self._score_attr, CLASSIFICATION_SCORES)

    def _params(self) -> dict:
        name = self._score_name()
        given = {} if self.score_params is None else self.score_params
        if not isinstance(given, dict):
            raise TypeError(f"score_params must be a dict or None, got {type(given).__name__}")
        unknown = set(given) - set(_SCORE_PARAMS[name])
        if unknown:
            raise ValueError(f"score_params has keys {sorted(unknown)} that score {name!r} does not take; "
                             f"allowed: {sorted(_SCORE_PARAMS[name])}")
        return {**_SCORE_PARAMS[name], **given}

    def _top(self) -> float:
        if self.top is not None:
            return real_scalar(self.top, "top")
        return APS_TOP if self._score_name() == "aps" else math.inf

    def _scores(self, probs: np.ndarray, labels: np.ndarray, u: ArrayLike) -> np.ndarray:
        name, par = self._score_name(), self._params()
        if name == "lac":
            return lac_scores(probs, labels)
        if name == "top_k":
            return topk_scores(probs, labels)
        if name == "aps":
            return aps_scores(probs, labels, u=u, randomized=par["randomized"])
        if name == "raps":
            return raps_scores(probs, labels, u, penalty=par["penalty"], kreg=par["kreg"], randomized=par["randomized"])
        return saps_scores(probs, labels, u, weight=par["weight"], randomized=par["randomized"])

    def _true_scores(self, probs, labels, u, rng, name: str):
        """Calibration scores [n] of the true labels; u None draws from ``rng``."""
        p = float_array(probs, f"{name}_probs", ndim=2)
        lab = int_array(labels, f"{name}_labels", ndim=1)
        if lab.shape[0] != p.shape[0]:
            raise ValueError(f"{name}_labels has {lab.shape[0]} entries but {name}_probs has {p.shape[0]} rows")
        if u is None and self._score_name() in ("aps", "raps", "saps"):
            u = rng.uniform(size=p.shape[0])
        return self._scores(p, lab, u), lab, p.shape[1]

    def _all_scores(self, probs, u):
        self._check_conformalized()
        p = float_array(probs, "probs", ndim=2)
        if p.shape[1] != self.n_classes_:
            raise ValueError(f"probs has {p.shape[1]} columns but the estimator was calibrated with {self.n_classes_}")
        if u is None and self._score_name() in ("aps", "raps", "saps"):
            u = np.random.default_rng(self.random_state).uniform(size=p.shape[0])
        return self._scores(p, np.broadcast_to(np.arange(p.shape[1]), p.shape), u)

    def _sets(self, probs, u) -> np.ndarray:
        """bool [A, n, C]: {y : s(x, y) <= q}."""
        scores = self._all_scores(probs, u)
        q = self.thresholds_
        q = q[:, None, None] if q.ndim == 1 else q[:, None, :]
        return scores[None, :, :] <= q

    def predict_sets(self, probs: ArrayLike, u: ArrayLike | None = None) -> np.ndarray:
        """Score-level sets from model outputs: bool [n, C] (scalar alpha) or [A, n, C].

        probs : float [n, C] probabilities; u : optional eps [n] for randomized scores.
        """
        sets = self._sets(probs, u)
        return sets[0] if self._scalar_alpha else sets

    # MAPIE verbs ---------------------------------------------------------------------
    def _model_probs(self, X: ArrayLike, name: str = "X") -> np.ndarray:
        model = self._model()
        return float_array(X, name, ndim=2) if model is None else np.asarray(model.predict_proba(X), dtype=float)

    def _label_index(self, y: ArrayLike) -> np.ndarray:
        """Column index of each label: the wrapped model's ``classes_``, else the label itself."""
        model = self._model()
        if model is None:
            return int_array(y, "y", ndim=1)
        classes = np.asarray(model.classes_)
        yy = np.asarray(y)
        if yy.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {yy.shape}")
        order = np.argsort(classes, kind="stable")
        pos = np.clip(np.searchsorted(classes, yy, sorter=order), 0, classes.shape[0] - 1)
        idx = order[pos]
        bad = classes[idx] != yy
        if bad.any():
            raise ValueError(f"y holds label {yy[bad][0].item()!r} that the estimator was not fitted on "
                             f"(classes_ = {classes.tolist()})")
        return idx.astype(np.int64)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Point predictions [n]: the wrapped model's ``predict``, else argmax of the probabilities."""
        self._check_conformalized()
        model = self._model()
        if model is not None:
            return np.asarray(model.predict(X))
        return np.argmax(float_array(X, "X", ndim=2), axis=1)

    def predict_set(self, X: ArrayLike, u: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """MAPIE 1.x: (y_pred [n], y_pred_set bool [n, n_classes, n_levels]); the level axis is
        last, even for one level. Columns follow the wrapped model's ``classes_``."""
        sets = self._sets(self._model_probs(X), u)
        return self.predict(X), np.moveaxis(sets, 0, -1)


class SplitConformalClassifier(_ClassifierCore, BaseEstimator):
    """Split-conformal prediction sets, MAPIE 1.x signature (spec §3: SC / SC (synth)).

    Parameters
    ----------
    estimator : sklearn classifier with ``predict_proba`` and ``classes_``, or None (X are
        probabilities [n, C], labels are column indices)
    confidence_level : float or list of floats in (0, 1), default 0.9
    conformity_score : "lac" (1 - p_y, default, as MAPIE), "aps" (randomized APS, upstream
        float32; ``top`` = 1), "raps", "saps", "top_k"
    prefit : True (default, as MAPIE): ``estimator`` is fitted; False: call ``fit`` first
    n_jobs, verbose : accepted for MAPIE signature compatibility; the computation is one
        vectorised pass, so they change nothing
    random_state : seed of the randomized scores' eps when ``u`` is not given
    alpha : keyword-only; miscoverage level(s), overriding ``confidence_level``
    score_params : dict or None: {"randomized"} for aps; {"penalty", "kreg", "randomized"}
        for raps; {"weight", "randomized"} for saps
    source : "real" or "synthetic" (labels the baseline; synthetic data give no guarantee)
    class_conditional : one threshold per class seen in calibration (Mondrian by label)
    top : trivial threshold; None = 1 for APS, +inf otherwise
    backend : threshold kernel backend; None = the process setting (``synthperf.backend``)

    Fitted attributes
    -----------------
    thresholds_ : [A] or [A, C] (class-conditional; -inf for classes absent from calibration).
    conformity_scores_ : [n] calibration scores. classes_ : column indices seen in
    calibration. n_classes_ : C. estimator_ : the fitted wrapped model (when one is given).
    """

    def __init__(self, estimator=None, confidence_level=0.9, conformity_score="lac", prefit=True, n_jobs=None,
                 verbose=0, random_state=None, *, alpha=None, score_params=None, source="real",
                 class_conditional=False, top=None, backend=None):
        self.estimator = estimator
        self.confidence_level = confidence_level
        self.conformity_score = conformity_score
        self.prefit = prefit
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.random_state = random_state
        self.alpha = alpha
        self.score_params = score_params
        self.source = source
        self.class_conditional = class_conditional
        self.top = top
        self.backend = backend

    def calibrate(self, probs: ArrayLike, labels: ArrayLike, *, u: ArrayLike | None = None):
        """Score-level calibration: probs float [n, C], labels int [n] (column indices). Returns self."""
        alphas, self._scalar_alpha = _levels(self.alpha, self.confidence_level)
        _choice(self.source, "source", SOURCES)
        rng = np.random.default_rng(self.random_state)
        scores, lab, C = self._true_scores(probs, labels, u, rng, "calibration")
        self.n_classes_ = C
        self.classes_ = np.unique(lab)
        self.conformity_scores_ = scores
        top = self._top()
        if not _check_bool(self.class_conditional, "class_conditional"):
            self.thresholds_ = split_conformal_thresholds(scores[None], alphas, top,
                                                          backend=backend_option(self.backend))[0]
            return self
        groups = [scores[lab == c] for c in self.classes_]
        n = np.array([g.shape[0] for g in groups])
        G = np.zeros((len(groups), n.max()), dtype=scores.dtype)
        for i, g in enumerate(groups):
            G[i, : g.shape[0]] = g
        q = split_conformal_thresholds(G, alphas, top, lengths=n, backend=backend_option(self.backend))  # [classes, A]
        thr = np.full((alphas.shape[0], C), -np.inf, dtype=q.dtype)
        thr[:, self.classes_] = q.T
        self.thresholds_ = thr
        return self

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike, *, u: ArrayLike | None = None):
        """MAPIE 1.x: calibrate on held-out (X, y) through the wrapped model. Returns self."""
        return self.calibrate(self._model_probs(X_conformalize, "X_conformalize"), self._label_index(y_conformalize),
                              u=u)


# ----------------------------------------------------------------------------------------
# Regression
# ----------------------------------------------------------------------------------------
class _RegressorCore(_ModelMixin):
    """Scores and intervals shared by the split, Mondrian and SPPI regressors.

    Model outputs per score: "absolute", "gamma": pred [n]; "residual_normalized": [n, 2]
    (pred, sigma); "cqr", "cqr_asymmetric": [n, 2] (lower, upper). Thresholds: [A] for the
    symmetric scores, [A, 2] (q_lower, q_upper, each at alpha / 2) for "cqr_asymmetric".
    """

    _score_attr = "conformity_score"  # the SPPI regressor calls it "score"

    def _score_name(self) -> str:
        attr = self._score_attr
        value = getattr(self, attr)
        return _choice(_REGRESSION_ALIASES.get(value, value) if isinstance(value, str) else value, attr,
                       REGRESSION_SCORES)

    def _outputs(self, out: ArrayLike, name: str) -> np.ndarray:
        kind = self._score_name()
        p = float_array(out, name, ndim=(1, 2))
        if kind in ("absolute", "gamma"):
            if p.ndim != 1:
                raise ValueError(f"{name} must be [n] point predictions for score {kind!r}, got shape {p.shape}")
        elif p.ndim != 2 or p.shape[1] != 2:
            what = "(pred, sigma)" if kind == "residual_normalized" else "(lower, upper)"
            raise ValueError(f"{name} must be [n, 2] {what} for score {kind!r}, got shape {p.shape}")
        return p

    def _reg_scores(self, out: ArrayLike, y: ArrayLike, name: str) -> np.ndarray:
        """[n] scores, or [n, 2] (lower side, upper side) for "cqr_asymmetric"."""
        kind = self._score_name()
        p = self._outputs(out, f"{name}_pred")
        yy = float_array(y, f"{name}_y", ndim=1)
        if p.shape[0] != yy.shape[0]:
            raise ValueError(f"{name}_pred has {p.shape[0]} rows but {name}_y has {yy.shape[0]}")
        if kind == "absolute":
            return abs_residual_scores(p, yy)
        if kind == "gamma":
            return gamma_scores(p, yy)
        if kind == "residual_normalized":
            return normalized_residual_scores(p[:, 0], p[:, 1], yy)
        if kind == "cqr":
            return cqr_scores(p, yy)
        return cqr_asymmetric_scores(p, yy)

    def _split_thresholds(self, scores: np.ndarray, alphas: np.ndarray, lengths: ArrayLike | None = None) -> np.ndarray:
        """scores [G, n] -> [G, A], or [G, n, 2] -> [G, A, 2] at alpha / 2 per side."""
        bk = backend_option(self.backend)
        if scores.ndim == 2:
            return split_conformal_thresholds(scores, alphas, math.inf, lengths=lengths, backend=bk)
        return np.stack([split_conformal_thresholds(np.ascontiguousarray(scores[..., j]), alphas / 2, math.inf,
                                                    lengths=lengths, backend=bk) for j in (0, 1)], axis=-1)

    def _interval_bounds(self, out: ArrayLike, q: np.ndarray) -> np.ndarray:
        """Intervals [A, n, 2] from outputs [n] / [n, 2] and thresholds q [A], [A, 2], [n, A] or [n, A, 2]."""
        kind = self._score_name()
        p = self._outputs(out, "pred")
        dt = np.result_type(p.dtype, q.dtype)
        per_sample = q.ndim == 3 or (q.ndim == 2 and kind != "cqr_asymmetric")
        q = q.astype(dt)
        if q.ndim == (3 if per_sample else 2):
            q_lo, q_hi = q[..., 0], q[..., 1]
        else:
            q_lo = q_hi = q
        if per_sample:  # [n, A] -> [A, n]
            q_lo, q_hi = q_lo.T, q_hi.T
        else:
            q_lo, q_hi = q_lo[:, None], q_hi[:, None]
        p = p.astype(dt)
        if kind == "absolute":
            lo, hi = p - q_lo, p + q_hi
        elif kind == "gamma":
            lo, hi = p * (1 - q_lo), p * (1 + q_hi)
        elif kind == "residual_normalized":
            lo, hi = p[:, 0] - q_lo * p[:, 1], p[:, 0] + q_hi * p[:, 1]
        else:
            lo, hi = p[:, 0] - q_lo, p[:, 1] + q_hi
        return np.stack([lo, hi], axis=-1)

    def predict_intervals(self, pred: ArrayLike) -> np.ndarray:
        """Score-level intervals from model outputs: [n, 2] (scalar alpha) or [A, n, 2].

        absolute: pred -+ q; gamma: pred (1 -+ q); residual_normalized: pred -+ q sigma;
        cqr: [lo - q, hi + q]; cqr_asymmetric: [lo - q_lo, hi + q_hi]. q = inf gives (-inf, inf).
        """
        self._check_conformalized()
        out = self._interval_bounds(pred, self.thresholds_)
        return out[0] if self._scalar_alpha else out

    # MAPIE verbs ---------------------------------------------------------------------
    def _fit_extra(self, X: ArrayLike, y: ArrayLike, model: object) -> None:
        if self.sigma_estimator is not None:
            resid = np.abs(np.asarray(y, dtype=float) - np.asarray(model.predict(X), dtype=float))
            self.sigma_estimator_ = clone(self.sigma_estimator).fit(X, resid)

    def _model_outputs(self, X: ArrayLike, name: str = "X") -> np.ndarray:
        """Model outputs for X, validated for the score (errors name ``name``)."""
        return self._outputs(self._raw_outputs(X, name), name)

    def _raw_outputs(self, X: ArrayLike, name: str) -> np.ndarray:
        model = self._model()
        if model is None:
            return float_array(X, name, ndim=(1, 2))
        pred = np.asarray(model.predict(X), dtype=float)
        if self._score_name() != "residual_normalized":
            return pred
        if self.sigma_estimator is None:
            raise ValueError("conformity_score='residual_normalized' with an estimator needs sigma_estimator= "
                             "(a regressor of |y - pred|)")
        if _check_bool(self.prefit, "prefit"):
            check_is_fitted(self.sigma_estimator)
            self.sigma_estimator_ = self.sigma_estimator
        elif not hasattr(self, "sigma_estimator_"):
            raise NotFittedError("call fit(X_train, y_train) first (prefit=False)")
        return np.stack([pred, np.asarray(self.sigma_estimator_.predict(X), dtype=float)], axis=1)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Point predictions [n]: pred, or the midpoint of (lower, upper) for the CQR scores."""
        self._check_conformalized()
        out = self._model_outputs(X)
        if self._score_name() in ("absolute", "gamma"):
            return out
        return out[:, 0] if self._score_name() == "residual_normalized" else out.mean(axis=1)

    def predict_interval(self, X: ArrayLike, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """MAPIE 1.x: (y_pred [n], intervals [n, 2, n_levels]); the level axis is last.

        MAPIE's ``minimize_interval_width`` / ``allow_infinite_bounds`` are not offered
        (intervals are infinite when alpha < 1/(n+1)); passing them raises TypeError."""
        if kwargs:
            raise TypeError(f"predict_interval got unsupported arguments {sorted(kwargs)}")
        self._check_conformalized()
        out = self._model_outputs(X)
        return self.predict(X), np.moveaxis(self._interval_bounds(out, self.thresholds_), 0, -1)


class SplitConformalRegressor(_RegressorCore, BaseEstimator):
    """Split-conformal intervals, MAPIE 1.x signature (spec §3: SC / SC (synth)).

    Parameters
    ----------
    estimator : sklearn regressor or None (X are model outputs, see ``_RegressorCore``)
    confidence_level : float or list in (0, 1), default 0.9
    conformity_score : "absolute" (default, as MAPIE; alias "abs"), "gamma" (symmetric
        |y - pred| / pred), "residual_normalized" (|y - pred| / sigma), "cqr", "cqr_asymmetric"
    prefit : True (default): ``estimator`` is fitted; False: call ``fit`` first
    n_jobs, verbose : accepted for MAPIE compatibility; they change nothing
    alpha : keyword-only miscoverage level(s), overriding ``confidence_level``
    sigma_estimator : regressor of |y - pred| for "residual_normalized" with an estimator
        (fitted in ``fit`` on the training residuals when ``prefit=False``)
    source : "real" or "synthetic"; backend : None = the process setting

    Fitted: ``thresholds_`` [A] ([A, 2] for "cqr_asymmetric"), ``conformity_scores_``.
    """

    def __init__(self, estimator=None, confidence_level=0.9, conformity_score="absolute", prefit=True, n_jobs=None,
                 verbose=0, *, alpha=None, sigma_estimator=None, source="real", backend=None):
        self.estimator = estimator
        self.confidence_level = confidence_level
        self.conformity_score = conformity_score
        self.prefit = prefit
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.alpha = alpha
        self.sigma_estimator = sigma_estimator
        self.source = source
        self.backend = backend

    def calibrate(self, pred: ArrayLike, y: ArrayLike):
        """Score-level calibration on model outputs (see class docstring) and targets [n]. Returns self."""
        alphas, self._scalar_alpha = _levels(self.alpha, self.confidence_level)
        _choice(self.source, "source", SOURCES)
        s = self._reg_scores(pred, y, "calibration")
        self.conformity_scores_ = s
        self.thresholds_ = self._split_thresholds(s[None], alphas)[0]
        return self

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike):
        """MAPIE 1.x: calibrate on held-out (X, y) through the wrapped model. Returns self."""
        return self.calibrate(self._model_outputs(X_conformalize, "X_conformalize"), y_conformalize)


class MondrianConformalRegressor(SplitConformalRegressor):
    """Mondrian (group-conditional) split conformal regression (Vovk et al. 2003; crepes'
    ``bins=``): one threshold per bin, so coverage >= 1 - alpha holds within every bin.

    ``calibrate(pred, y, bins)`` / ``conformalize(X, y, bins)`` with bins int [n];
    ``predict_intervals(pred, bins)`` / ``predict_interval(X, bins)``. A bin with fewer than
    1/alpha - 1 calibration points, or never seen in calibration, gets (-inf, inf).
    Fitted: ``bins_`` [G] (sorted bin values), ``bin_thresholds_`` [G, A] ([G, A, 2] for
    "cqr_asymmetric"), ``bin_counts_`` [G]; ``thresholds_`` is ``bin_thresholds_``.
    """

    def calibrate(self, pred: ArrayLike, y: ArrayLike, bins: ArrayLike | None = None):
        alphas, self._scalar_alpha = _levels(self.alpha, self.confidence_level)
        _choice(self.source, "source", SOURCES)
        if bins is None:
            raise ValueError("bins is required: one int bin label per calibration sample")
        s = self._reg_scores(pred, y, "calibration")
        b = int_array(bins, "bins", ndim=1)
        if b.shape[0] != s.shape[0]:
            raise ValueError(f"bins has {b.shape[0]} entries but there are {s.shape[0]} calibration samples")
        self.bins_, inverse, counts = np.unique(b, return_inverse=True, return_counts=True)
        G = np.zeros((self.bins_.shape[0], int(counts.max())) + s.shape[1:], dtype=s.dtype)
        order = np.argsort(inverse, kind="stable")
        pos = np.arange(s.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
        G[inverse[order], pos] = s[order]
        self.conformity_scores_ = s
        self.bin_counts_ = counts
        self.bin_thresholds_ = self._split_thresholds(G, alphas, lengths=counts)
        self.thresholds_ = self.bin_thresholds_
        return self

    def conformalize(self, X_conformalize: ArrayLike, y_conformalize: ArrayLike, bins: ArrayLike | None = None):
        return self.calibrate(self._model_outputs(X_conformalize, "X_conformalize"), y_conformalize, bins)

    def _per_sample(self, bins: ArrayLike, n: int) -> np.ndarray:
        self._check_conformalized()
        if bins is None:
            raise ValueError("bins is required: one int bin label per test sample")
        b = int_array(bins, "bins", ndim=1)
        if b.shape[0] != n:
            raise ValueError(f"bins has {b.shape[0]} entries but there are {n} test samples")
        idx = np.clip(np.searchsorted(self.bins_, b), 0, self.bins_.shape[0] - 1)
        q = self.bin_thresholds_[idx].copy()  # [n, A] or [n, A, 2]
        q[self.bins_[idx] != b] = np.inf  # bin never seen in calibration: trivial interval
        return q

    def predict_intervals(self, pred: ArrayLike, bins: ArrayLike | None = None) -> np.ndarray:
        """[n, 2] (scalar alpha) or [A, n, 2] intervals with each sample's bin threshold."""
        out = self._outputs(pred, "pred")
        res = self._interval_bounds(out, self._per_sample(bins, out.shape[0]))
        return res[0] if self._scalar_alpha else res

    def predict_interval(self, X: ArrayLike, bins: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(y_pred [n], intervals [n, 2, n_levels]) with each sample's bin threshold."""
        out = self._model_outputs(X)
        res = self._interval_bounds(out, self._per_sample(bins, out.shape[0]))
        return self.predict(X), np.moveaxis(res, 0, -1)
