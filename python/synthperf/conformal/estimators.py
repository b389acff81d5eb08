"""Scikit-learn / MAPIE-style conformal estimators (spec §1, §3, §4).

``SPPIClassifier`` / ``SPPIRegressor`` calibrate on a few real and many synthetic scores with
the SPPI threshold; ``SplitConformalClassifier`` / ``SplitConformalRegressor`` are the
baselines on one source (``"real"`` = SC, ``"synthetic"`` = SC (synth)). All four:

- store their parameters in ``__init__`` only (keyword-only after ``alpha``); validation
  happens in ``calibrate``, which returns ``self``; fitted attributes end in ``_``;
- take ``alpha`` as a float or a list: with a list every output gains a leading alpha axis;
- work on model *outputs* (softmax probabilities, quantile predictions), not on models.

Classification: sets are ``{y : s(x, y) <= q}``; randomized APS uses ``top = 1`` (pitfall
P3), LAC ``top = +inf``. With ``class_conditional=True`` there is one threshold per class seen
in the real calibration data, from that class's real scores and the synthetic pool of the
same class (``synth_pool="same_class"``) or all synthetic scores (``"pooled"``); classes
never seen in calibration are never predicted. ``subset_k`` turns SPPI into SPPI-Subset:
the k synthetic classes closest in CvM distance form the pool (spec §2).

Randomization: APS eps are ``default_rng(random_state)`` draws unless given explicitly
(``real_u``, ``synth_u``, ``u``), so results are deterministic for a fixed random_state.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .._validation import float_array, int_array, open_unit_interval, positive_int, real_scalar
from .scores import APS_TOP, abs_residual_scores, aps_scores, cqr_scores, lac_scores
from .subset import CRITERIA, sppi_subset_select
from .thresholds import split_conformal_thresholds, sppi_thresholds
from .windows import coverage_bounds

CLASSIFICATION_SCORES = ("aps", "lac")
REGRESSION_SCORES = ("cqr", "abs")
SOURCES = ("real", "synthetic")
SYNTH_POOLS = ("same_class", "pooled")


def _choice(value: Any, name: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _alphas(alpha: Any) -> tuple[np.ndarray, bool]:
    arr = open_unit_interval(np.asarray(alpha, dtype=float) if isinstance(alpha, (list, tuple)) else alpha, "alpha")
    return np.atleast_1d(arr), np.ndim(alpha) == 0


def _beta(beta: Any) -> float:
    if isinstance(beta, (list, tuple, np.ndarray)):
        raise TypeError(f"beta must be a scalar in (0, 1), got {beta!r}")
    return float(open_unit_interval(beta, "beta"))


def _check_fitted(est: Any) -> None:
    if not hasattr(est, "thresholds_"):
        raise NotFittedError(f"this {type(est).__name__} is not calibrated yet; call calibrate(...) first")


class _ClassifierMixin:
    """Score handling shared by the two classifiers."""

    def _score_fn(self):
        return _choice(self.score, "score", CLASSIFICATION_SCORES)

    def _top(self) -> float:
        if self.top is not None:
            return real_scalar(self.top, "top")
        return APS_TOP if self._score_fn() == "aps" else math.inf

    def _true_scores(self, probs, labels, u, rng, name: str):
        p = float_array(probs, f"{name}_probs", ndim=2)
        lab = int_array(labels, f"{name}_labels", ndim=1)
        if lab.shape[0] != p.shape[0]:
            raise ValueError(f"{name}_labels has {lab.shape[0]} entries but {name}_probs has {p.shape[0]} rows")
        if self._score_fn() == "lac":
            return lac_scores(p, lab), lab, p.shape[1]
        if u is None:
            u = rng.uniform(size=p.shape[0])
        return aps_scores(p, lab, u=u), lab, p.shape[1]

    def _all_scores(self, probs, u):
        _check_fitted(self)
        p = float_array(probs, "probs", ndim=2)
        if p.shape[1] != self.n_classes_:
            raise ValueError(f"probs has {p.shape[1]} columns but the estimator was calibrated with {self.n_classes_}")
        labels = np.broadcast_to(np.arange(p.shape[1]), p.shape)
        if self._score_fn() == "lac":
            return lac_scores(p, labels)
        if u is None:
            u = np.random.default_rng(self.random_state).uniform(size=p.shape[0])
        return aps_scores(p, labels, u=u)

    def predict_sets(self, probs: Any, u: Any = None) -> np.ndarray:
        """Prediction sets, bool [n, C] (scalar alpha) or [A, n, C] (alpha list).

        probs : float [n, C] softmax outputs; u : optional eps [n] for APS (one per sample).
        """
        scores = self._all_scores(probs, u)  # [n, C]
        q = self.thresholds_  # [A] or [A, C]
        q = q[:, None, None] if q.ndim == 1 else q[:, None, :]
        sets = scores[None, :, :] <= q
        return sets[0] if self._scalar_alpha else sets


class SPPIClassifier(_ClassifierMixin, BaseEstimator):
    """SPPI prediction sets from real + synthetic softmax outputs (spec §1, §2, §4).

    Parameters
    ----------
    alpha : float or list of floats in (0, 1) - miscoverage level(s)
    beta : float in (0, 1) - window slack (default 0.4, as upstream)
    score : "aps" (randomized APS, top = 1) or "lac"
    class_conditional : one threshold per real class
    synth_pool : "same_class" or "pooled" synthetic scores per class (class-conditional mode)
    subset_k : None, or k for SPPI-Subset (k nearest synthetic classes by ``dist_criterion``)
    dist_criterion : "cramer-von-mises" or "wasserstein"
    top : value of a trivial threshold; None = 1 for APS (upstream, pitfall P3), +inf for LAC
    backend : kernel backend for the batched thresholds ("auto", "reference", "cpu", ...)
    random_state : seed of the APS randomization when eps are not given

    Fitted attributes
    -----------------
    thresholds_ : [A] (marginal) or [A, C] (class-conditional; -inf for classes absent from
        calibration). classes_ : classes seen in the real calibration labels. n_classes_ : C.
    coverage_bounds_ : (lower, upper) worst-case coverage bounds, [A] or [A, C] (NaN for absent classes).
    subset_classes_ : chosen synthetic classes ([k] or {class: [k]}) when ``subset_k`` is set.
    """

    def __init__(self, alpha=0.1, *, beta=0.4, score="aps", class_conditional=False, synth_pool="same_class",
                 subset_k=None, dist_criterion="cramer-von-mises", top=None, backend="auto", random_state=None):
        self.alpha = alpha
        self.top = top
        self.beta = beta
        self.score = score
        self.class_conditional = class_conditional
        self.synth_pool = synth_pool
        self.subset_k = subset_k
        self.dist_criterion = dist_criterion
        self.backend = backend
        self.random_state = random_state

    def calibrate(self, real_probs, real_labels, synth_probs, synth_labels, *, real_u=None, synth_u=None):
        """Compute the SPPI thresholds. real_*: [n, C] / [n]; synth_*: [N, C] / [N]. Returns self."""
        alphas, self._scalar_alpha = _alphas(self.alpha)
        beta = _beta(self.beta)
        pool = _choice(self.synth_pool, "synth_pool", SYNTH_POOLS)
        crit = _choice(self.dist_criterion, "dist_criterion", CRITERIA)
        k = None if self.subset_k is None else positive_int(self.subset_k, "subset_k")
        rng = np.random.default_rng(self.random_state)
        r_scores, r_lab, C = self._true_scores(real_probs, real_labels, real_u, rng, "real")
        s_scores, s_lab, C_s = self._true_scores(synth_probs, synth_labels, synth_u, rng, "synth")
        if C_s != C:
            raise ValueError(f"real_probs has {C} columns but synth_probs has {C_s}; they must match")
        top = self._top()
        self.n_classes_ = C
        if not self.class_conditional:
            self.classes_ = np.unique(r_lab)
            pool_scores = s_scores
            if k is not None:
                self.subset_classes_ = sppi_subset_select(r_scores, s_scores, s_lab, k, crit)
                pool_scores = s_scores[np.isin(s_lab, self.subset_classes_)]
            self.thresholds_ = sppi_thresholds(r_scores[None], pool_scores[None], alphas, beta, top,
                                               backend=self.backend)[0]
            self.coverage_bounds_ = tuple(np.atleast_1d(b) for b in
                                          coverage_bounds(r_scores.shape[0], pool_scores.shape[0], alphas, beta))
            return self
        self.classes_ = np.unique(r_lab)
        reals, synths, subsets = [], [], {}
        for c in self.classes_:
            rc = r_scores[r_lab == c]
            if pool == "same_class":
                sc, sl = s_scores[s_lab == c], s_lab[s_lab == c]
                if sc.shape[0] == 0:
                    raise ValueError(f"class {int(c)} has no synthetic scores; use synth_pool='pooled'")
            else:
                sc, sl = s_scores, s_lab
            if k is not None:
                subsets[int(c)] = sppi_subset_select(rc, sc, sl, k, crit)
                sc = sc[np.isin(sl, subsets[int(c)])]
            reals.append(rc)
            synths.append(sc)
        if k is not None:
            self.subset_classes_ = subsets
        n = np.array([r.shape[0] for r in reals])
        N = np.array([s.shape[0] for s in synths])
        R = np.zeros((len(reals), n.max()), dtype=r_scores.dtype)
        S = np.zeros((len(synths), N.max()), dtype=s_scores.dtype)
        for i, (r, s) in enumerate(zip(reals, synths)):
            R[i, : r.shape[0]] = r
            S[i, : s.shape[0]] = s
        q = sppi_thresholds(R, S, alphas, beta, top, real_lengths=n, synth_lengths=N, backend=self.backend)  # [G, A]
        thr = np.full((alphas.shape[0], C), -np.inf, dtype=q.dtype)
        thr[:, self.classes_] = q.T
        self.thresholds_ = thr
        lower = np.full((alphas.shape[0], C), np.nan)
        upper = np.full((alphas.shape[0], C), np.nan)
        for i, c in enumerate(self.classes_):
            lo, up = coverage_bounds(int(n[i]), int(N[i]), alphas, beta)
            lower[:, c], upper[:, c] = lo, up
        self.coverage_bounds_ = (lower, upper)
        return self


class SplitConformalClassifier(_ClassifierMixin, BaseEstimator):
    """Split-conformal sets from one source: SC (``source="real"``) or SC (synth) (spec §3).

    ``calibrate(probs, labels)`` takes that source's calibration outputs (``source`` only
    labels the baseline; "synthetic" calibration carries no guarantee for real data).
    Fitted: ``thresholds_`` [A] or [A, C] (class-conditional, -inf for unseen classes),
    ``classes_``, ``n_classes_``.
    """

    def __init__(self, alpha=0.1, *, score="aps", source="real", class_conditional=False, top=None, backend="auto",
                 random_state=None):
        self.alpha = alpha
        self.top = top
        self.score = score
        self.source = source
        self.class_conditional = class_conditional
        self.backend = backend
        self.random_state = random_state

    def calibrate(self, probs, labels, *, u=None):
        """Compute split-conformal thresholds from [n, C] probs and [n] labels. Returns self."""
        alphas, self._scalar_alpha = _alphas(self.alpha)
        _choice(self.source, "source", SOURCES)
        rng = np.random.default_rng(self.random_state)
        scores, lab, C = self._true_scores(probs, labels, u, rng, "calibration")
        self.n_classes_ = C
        self.classes_ = np.unique(lab)
        top = self._top()
        if not self.class_conditional:
            self.thresholds_ = split_conformal_thresholds(scores[None], alphas, top, backend=self.backend)[0]
            return self
        groups = [scores[lab == c] for c in self.classes_]
        n = np.array([g.shape[0] for g in groups])
        X = np.zeros((len(groups), n.max()), dtype=scores.dtype)
        for i, g in enumerate(groups):
            X[i, : g.shape[0]] = g
        q = split_conformal_thresholds(X, alphas, top, lengths=n, backend=self.backend)
        thr = np.full((alphas.shape[0], C), -np.inf, dtype=q.dtype)
        thr[:, self.classes_] = q.T
        self.thresholds_ = thr
        return self


# ----------------------------------------------------------------------------------------
# Regression
# ----------------------------------------------------------------------------------------
class _RegressorMixin:
    def _scores(self, pred, y, name: str):
        kind = _choice(self.score, "score", REGRESSION_SCORES)
        p = float_array(pred, f"{name}_pred", ndim=(1, 2))
        yy = float_array(y, f"{name}_y", ndim=1)
        if kind == "cqr":
            if p.ndim != 2 or p.shape[1] != 2:
                raise ValueError(f"{name}_pred must be [n, 2] (lower, upper) for score='cqr', got shape {p.shape}")
            if p.shape[0] != yy.shape[0]:
                raise ValueError(f"{name}_pred has {p.shape[0]} rows but {name}_y has {yy.shape[0]}")
            return cqr_scores(p, yy)
        if p.ndim != 1:
            raise ValueError(f"{name}_pred must be [n] point predictions for score='abs', got shape {p.shape}")
        return abs_residual_scores(p, yy)

    def predict_intervals(self, pred: Any) -> np.ndarray:
        """Intervals [n, 2] (scalar alpha) or [A, n, 2]: [lo - q, hi + q] (cqr) or [pred - q, pred + q] (abs).

        An infinite threshold gives [-inf, +inf]; a threshold of -inf an empty interval (lo > hi).
        """
        _check_fitted(self)
        p = float_array(pred, "pred", ndim=(1, 2))
        if self.score == "cqr":
            if p.ndim != 2 or p.shape[1] != 2:
                raise ValueError(f"pred must be [n, 2] for score='cqr', got shape {p.shape}")
            lo, hi = p[:, 0], p[:, 1]
        else:
            if p.ndim != 1:
                raise ValueError(f"pred must be [n] for score='abs', got shape {p.shape}")
            lo = hi = p
        dt = np.result_type(p.dtype, self.thresholds_.dtype)
        q = self.thresholds_.astype(dt)[:, None]
        out = np.stack([lo.astype(dt)[None] - q, hi.astype(dt)[None] + q], axis=-1)  # [A, n, 2]
        return out[0] if self._scalar_alpha else out


class SPPIRegressor(_RegressorMixin, BaseEstimator):
    """SPPI intervals from real + synthetic regression outputs (spec §1, §3, MEPS).

    ``calibrate(real_pred, real_y, synth_pred, synth_y)``; pred is [n, 2] quantiles for
    ``score="cqr"`` or [n] point predictions for ``"abs"``. Fitted: ``thresholds_`` [A],
    ``coverage_bounds_`` (lower [A], upper [A]).
    """

    def __init__(self, alpha=0.1, *, beta=0.4, score="cqr", backend="auto"):
        self.alpha = alpha
        self.beta = beta
        self.score = score
        self.backend = backend

    def calibrate(self, real_pred, real_y, synth_pred, synth_y):
        alphas, self._scalar_alpha = _alphas(self.alpha)
        beta = _beta(self.beta)
        r = self._scores(real_pred, real_y, "real")
        s = self._scores(synth_pred, synth_y, "synth")
        self.thresholds_ = sppi_thresholds(r[None], s[None], alphas, beta, math.inf, backend=self.backend)[0]
        self.coverage_bounds_ = tuple(np.atleast_1d(b) for b in coverage_bounds(r.shape[0], s.shape[0], alphas, beta))
        return self


class SplitConformalRegressor(_RegressorMixin, BaseEstimator):
    """Split-conformal intervals from one source (SC or SC (synth), spec §3)."""

    def __init__(self, alpha=0.1, *, score="cqr", source="real", backend="auto"):
        self.alpha = alpha
        self.score = score
        self.source = source
        self.backend = backend

    def calibrate(self, pred, y):
        alphas, self._scalar_alpha = _alphas(self.alpha)
        _choice(self.source, "source", SOURCES)
        s = self._scores(pred, y, "calibration")
        self.thresholds_ = split_conformal_thresholds(s[None], alphas, math.inf, backend=self.backend)[0]
        return self
