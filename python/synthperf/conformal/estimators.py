"""Scikit-learn / MAPIE-style conformal estimators (spec §1, §3, §4; issue 16).

``SPPIClassifier`` / ``SPPIRegressor`` calibrate on a few real and many synthetic scores with
the SPPI threshold; ``SplitConformalClassifier`` / ``SplitConformalRegressor`` (MAPIE 1.x
signature, defined in :mod:`.mapie_api` and re-exported here) are the baselines on one
source (``"real"`` = SC, ``"synthetic"`` = SC (synth)); ``MondrianConformalRegressor`` adds
one threshold per bin. All of them:

- store their parameters in ``__init__`` only; validation happens in ``calibrate`` /
  ``conformalize``, which return ``self``; fitted attributes end in ``_``; sklearn's
  ``check_is_fitted`` passes once calibrated and ``clone`` works;
- offer two layers: score-level ``calibrate(outputs, ...)`` + ``predict_sets`` /
  ``predict_intervals`` on model outputs (``alpha`` float or list; a list adds a *leading*
  level axis), and MAPIE 1.x verbs ``fit`` (wrapped ``estimator``, ``prefit=False``),
  ``conformalize``, ``predict_set`` / ``predict_interval`` (level axis *last*:
  [n, n_classes, A] / [n, 2, A]);
- take ``backend=None`` = the process setting (``synthperf.backend.get_backend``).

Classification: sets are ``{y : s(x, y) <= q}``; randomized APS uses ``top = 1`` (pitfall
P3), the other scores ``top = +inf``. With ``class_conditional=True`` there is one threshold
per class seen in the real calibration data, from that class's real scores and the synthetic
pool of the same class (``synth_pool="same_class"``) or all synthetic scores (``"pooled"``);
classes never seen in calibration are never predicted. ``subset_k`` turns SPPI into
SPPI-Subset: the k synthetic classes closest in CvM distance form the pool (spec §2).

Randomization: eps of the randomized scores (aps, raps, saps) are ``default_rng(random_state)``
draws unless given explicitly (``real_u``, ``synth_u``, ``u``), so results are deterministic
for a fixed random_state.
"""
from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator

from .._typing import ArrayLike
from .._validation import open_unit_interval, positive_int
from ..backend import backend_option
from .mapie_api import (CLASSIFICATION_SCORES, REGRESSION_SCORES, SOURCES, MondrianConformalRegressor,
                        SplitConformalClassifier, SplitConformalRegressor, _check_bool, _choice, _ClassifierCore,
                        _levels, _RegressorCore)
from .subset import CRITERIA, sppi_subset_select
from .thresholds import sppi_thresholds
from .windows import coverage_bounds

__all__ = ["CLASSIFICATION_SCORES", "REGRESSION_SCORES", "SOURCES", "MondrianConformalRegressor", "SPPIClassifier",
           "SPPIRegressor", "SplitConformalClassifier", "SplitConformalRegressor"]

SYNTH_POOLS = ("same_class", "pooled")


def _beta(beta: object) -> float:
    if isinstance(beta, (list, tuple, np.ndarray)):
        raise TypeError(f"beta must be a scalar in (0, 1), got {beta!r}")
    return float(open_unit_interval(beta, "beta"))


class SPPIClassifier(_ClassifierCore, BaseEstimator):
    """SPPI prediction sets from real + synthetic softmax outputs (spec §1, §2, §4).

    Parameters
    ----------
    alpha : float or list of floats in (0, 1) - miscoverage level(s)
    estimator : sklearn classifier (``predict_proba``, ``classes_``) for the MAPIE verbs, or
        None (X are probabilities); prefit : as in :class:`SplitConformalClassifier`
    beta : float in (0, 1) - window slack (default 0.4, as upstream)
    score : "aps" (randomized APS, top = 1), "lac", "raps", "saps" or "top_k";
        score_params : as in :class:`SplitConformalClassifier`
    class_conditional : one threshold per real class
    synth_pool : "same_class" or "pooled" synthetic scores per class (class-conditional mode)
    subset_k : None, or k for SPPI-Subset (k nearest synthetic classes by ``dist_criterion``)
    dist_criterion : "cramer-von-mises" or "wasserstein"
    top : value of a trivial threshold; None = 1 for APS (upstream, pitfall P3), +inf otherwise
    backend : threshold kernel backend; None = the process setting
    random_state : seed of the randomization when eps are not given

    Fitted attributes
    -----------------
    thresholds_ : [A] (marginal) or [A, C] (class-conditional; -inf for classes absent from
        calibration). classes_ : classes seen in the real calibration labels. n_classes_ : C.
    coverage_bounds_ : (lower, upper) worst-case coverage bounds, [A] or [A, C] (NaN for absent classes).
    subset_classes_ : chosen synthetic classes ([k] or {class: [k]}) when ``subset_k`` is set.
    """

    _score_attr = "score"

    def __init__(self, alpha=0.1, *, estimator=None, prefit=True, beta=0.4, score="aps", score_params=None,
                 class_conditional=False, synth_pool="same_class", subset_k=None, dist_criterion="cramer-von-mises",
                 top=None, backend=None, random_state=None):
        self.alpha = alpha
        self.estimator = estimator
        self.prefit = prefit
        self.top = top
        self.beta = beta
        self.score = score
        self.score_params = score_params
        self.class_conditional = class_conditional
        self.synth_pool = synth_pool
        self.subset_k = subset_k
        self.dist_criterion = dist_criterion
        self.backend = backend
        self.random_state = random_state

    def conformalize(self, X_real: ArrayLike, y_real: ArrayLike, X_synth: ArrayLike, y_synth: ArrayLike, *, real_u: ArrayLike | None = None,
                     synth_u: ArrayLike | None = None):
        """MAPIE-style: real and synthetic (X, y) through the wrapped model. Returns self."""
        return self.calibrate(self._model_probs(X_real, "X_real"), self._label_index(y_real),
                              self._model_probs(X_synth, "X_synth"), self._label_index(y_synth), real_u=real_u,
                              synth_u=synth_u)

    def calibrate(self, real_probs, real_labels, synth_probs, synth_labels, *, real_u=None, synth_u=None):
        """Compute the SPPI thresholds. real_*: [n, C] / [n]; synth_*: [N, C] / [N]. Returns self."""
        if self.alpha is None:
            raise ValueError("alpha must be a float or a list of floats in (0, 1), got None")
        alphas, self._scalar_alpha = _levels(self.alpha, None)
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
        self.conformity_scores_ = r_scores
        if not _check_bool(self.class_conditional, "class_conditional"):
            self.classes_ = np.unique(r_lab)
            pool_scores = s_scores
            if k is not None:
                self.subset_classes_ = sppi_subset_select(r_scores, s_scores, s_lab, k, crit)
                pool_scores = s_scores[np.isin(s_lab, self.subset_classes_)]
            self.thresholds_ = sppi_thresholds(r_scores[None], pool_scores[None], alphas, beta, top,
                                               backend=backend_option(self.backend))[0]
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
        q = sppi_thresholds(R, S, alphas, beta, top, real_lengths=n, synth_lengths=N,
                            backend=backend_option(self.backend))  # [G, A]
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


class SPPIRegressor(_RegressorCore, BaseEstimator):
    """SPPI intervals from real + synthetic regression outputs (spec §1, §3, MEPS).

    ``calibrate(real_pred, real_y, synth_pred, synth_y)`` on model outputs, or
    ``conformalize(X_real, y_real, X_synth, y_synth)`` through ``estimator``. ``score``:
    "cqr" (pred [n, 2] quantiles), "absolute" (alias "abs"; pred [n]), "gamma" (pred [n] > 0)
    or "residual_normalized" ((pred, sigma) [n, 2]; with an estimator, ``sigma_estimator``).
    "cqr_asymmetric" is not offered: the worst-case bounds are for one threshold.
    Fitted: ``thresholds_`` [A], ``coverage_bounds_`` (lower [A], upper [A]).
    """

    _score_attr = "score"

    def __init__(self, alpha=0.1, *, estimator=None, prefit=True, beta=0.4, score="cqr", sigma_estimator=None,
                 backend=None):
        self.alpha = alpha
        self.estimator = estimator
        self.prefit = prefit
        self.beta = beta
        self.score = score
        self.sigma_estimator = sigma_estimator
        self.backend = backend

    def calibrate(self, real_pred, real_y, synth_pred, synth_y):
        """Compute the SPPI thresholds from real [n] and synthetic [N] outputs/targets. Returns self."""
        if self.alpha is None:
            raise ValueError("alpha must be a float or a list of floats in (0, 1), got None")
        alphas, self._scalar_alpha = _levels(self.alpha, None)
        beta = _beta(self.beta)
        if self._score_name() == "cqr_asymmetric":
            raise ValueError("score='cqr_asymmetric' is not supported by SPPIRegressor; use 'cqr'")
        r = self._reg_scores(real_pred, real_y, "real")
        s = self._reg_scores(synth_pred, synth_y, "synth")
        self.conformity_scores_ = r
        self.thresholds_ = sppi_thresholds(r[None], s[None], alphas, beta, math.inf,
                                           backend=backend_option(self.backend))[0]
        self.coverage_bounds_ = tuple(np.atleast_1d(b) for b in coverage_bounds(r.shape[0], s.shape[0], alphas, beta))
        return self

    def conformalize(self, X_real: ArrayLike, y_real: ArrayLike, X_synth: ArrayLike, y_synth: ArrayLike):
        """MAPIE-style: real and synthetic (X, y) through the wrapped model. Returns self."""
        return self.calibrate(self._model_outputs(X_real, "X_real"), y_real, self._model_outputs(X_synth, "X_synth"),
                              y_synth)
