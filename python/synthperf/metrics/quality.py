"""CAS, per-class accuracy and two-sample score distances (see :mod:`synthperf.metrics`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["CASResult", "ScoreDistances", "classification_accuracy_score", "per_class_accuracy", "score_distances",
           "default_cas_classifier"]


def _features(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) \
            or a.dtype == bool:
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    if a.ndim < 2:
        raise ValueError(f"{name} must be [N, ...] with N samples, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _labels(y: Any, n: int, name: str, n_classes: int | None = None) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must be a 1-D integer array, got dtype {a.dtype} and shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} labels for {n} samples")
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {a.min()}")
    if n_classes is not None and a.size and a.max() >= n_classes:
        raise ValueError(f"{name} must be < n_classes={n_classes}, got {a.max()}")
    return a.astype(np.int64)


@dataclass(frozen=True)
class CASResult:
    """CAS over classifier seeds: ``mean``, ``se`` (NaN for one seed) and each seed's ``scores``."""

    mean: float
    se: float
    scores: tuple[float, ...]


def default_cas_classifier(seed: int):
    """The shared CAS protocol: ``MLPClassifier((128,), alpha=1e-3, max_iter=500)``."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500, random_state=seed)


def classification_accuracy_score(x_syn: Any, y_syn: Any, x_real: Any, y_real: Any, *,
                                  classifier: Callable[[int], Any] | None = None,
                                  seeds: Sequence[int] = (0, 1, 2)) -> CASResult:
    """CAS: train ``classifier(seed)`` on (x_syn [M, ...], y_syn [M]) only, accuracy on (x_real, y_real).

    ``classifier``: a factory ``seed -> unfitted sklearn-style estimator`` (``fit``/``predict``);
    default :func:`default_cas_classifier`. Features are flattened to [N, D]. Returns the mean
    and standard error over ``seeds`` (the spread of classifier training, not of the data).
    """
    xs, xr = _features(x_syn, "x_syn"), _features(x_real, "x_real")
    if xs.shape[1] != xr.shape[1]:
        raise ValueError(f"x_syn has {xs.shape[1]} features but x_real has {xr.shape[1]}")
    ys, yr = _labels(y_syn, xs.shape[0], "y_syn"), _labels(y_real, xr.shape[0], "y_real")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    if classifier is not None and not callable(classifier):
        raise TypeError("classifier must be a callable seed -> estimator")
    make = classifier or default_cas_classifier
    if len(np.unique(ys)) < 2:
        raise ValueError("y_syn must contain at least two classes to train a classifier")
    scores = []
    import warnings

    for s in seeds:
        est = make(int(s))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at max_iter is part of the protocol
            est.fit(xs, ys)
        scores.append(float(np.mean(np.asarray(est.predict(xr)) == yr)))
    arr = np.asarray(scores)
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else float("nan")
    return CASResult(float(arr.mean()), se, tuple(scores))


def per_class_accuracy(pred: Any, y: Any, *, n_classes: int | None = None) -> np.ndarray:
    """Accuracy of predictions ``pred`` [N] against labels ``y`` [N] per class: float64 [n_classes]
    (NaN for a class with no sample). ``n_classes`` defaults to ``max(y) + 1``."""
    p = np.asarray(pred)
    if p.ndim != 1:
        raise ValueError(f"pred must be 1-D, got shape {p.shape}")
    y = _labels(y, p.shape[0], "y", n_classes)
    if p.shape[0] == 0:
        raise ValueError("pred must not be empty")
    k = int(n_classes if n_classes is not None else y.max() + 1)
    out = np.full(k, np.nan)
    for c in range(k):
        m = y == c
        if m.any():
            out[c] = float(np.mean(p[m] == c))
    return out


@dataclass(frozen=True)
class ScoreDistances:
    """Two-sample distances between score samples ``a`` and ``b``."""

    ks: float            # sup |F_a - F_b|
    ks_pvalue: float     # scipy's two-sample KS test (exact or asymptotic, scipy's choice)
    wasserstein: float   # integral |F_a - F_b| (W1)
    cvm: float           # Cramer-von Mises two-sample criterion T (scipy.stats.cramervonmises_2samp)
    cvm_pvalue: float


def _scores(a: Any, name: str) -> np.ndarray:
    x = np.asarray(a)
    if x.dtype == object or x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be a numeric 1-D array, got dtype {x.dtype}")
    x = x.astype(np.float64).reshape(-1) if x.ndim <= 1 else None
    if x is None:
        raise ValueError(f"{name} must be 1-D, got shape {np.asarray(a).shape}")
    if x.size < 2:
        raise ValueError(f"{name} needs at least 2 scores, got {x.size}")
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    return x


def score_distances(real_scores: Any, synth_scores: Any) -> ScoreDistances:
    """KS (with p-value), Wasserstein-1 and Cramer-von Mises between two 1-D score samples."""
    from scipy import stats

    a, b = _scores(real_scores, "real_scores"), _scores(synth_scores, "synth_scores")
    ks = stats.ks_2samp(a, b)
    cvm = stats.cramervonmises_2samp(a, b)
    return ScoreDistances(float(ks.statistic), float(ks.pvalue), float(stats.wasserstein_distance(a, b)),
                          float(cvm.statistic), float(cvm.pvalue))
