"""CAS, per-class accuracy and two-sample score distances (see :mod:`synthperf.metrics`).

Shared CAS protocol (docs: notes/common.md, issue 13 item 2): real data are scikit-learn's
digits, ``x = images.reshape(-1, 64) / 16`` (float32), split by
``train_test_split(idx, test_size=0.5, random_state=0, stratify=y)`` into a train half
(generators train on it) and a held-out half (899 images, the CAS test set); the classifier is a
fresh ``MLPClassifier((128,), alpha=1e-3, max_iter=500, random_state=seed)`` trained on the
synthetic data only. Pixels are expected in [0, 1].
"""
from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .._typing import Estimator, FloatArray, Predictor

__all__ = ["CASResult", "ClassAccuracy", "ScoreDistances", "classification_accuracy_score", "per_class_accuracy",
           "classifier_accuracy", "score_distances", "default_cas_classifier", "digits_split"]


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------
def _features(x: Any, name: str) -> np.ndarray:
    """Numeric [N, ...] -> float64 [N, D] (flattened), finite, N >= 1."""
    a = np.asarray(x)
    if a.dtype == object or a.dtype == bool or not (np.issubdtype(a.dtype, np.floating)
                                                    or np.issubdtype(a.dtype, np.integer)):
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
    """Integer labels [n] in 0..n_classes-1 -> int64."""
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


def _n_classes(n_classes: Any) -> int | None:
    if n_classes is None:
        return None
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def _se(v: np.ndarray) -> float:
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


# ----------------------------------------------------------------------------------------
# CAS
# ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _digits_split_cached(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.reshape(-1, 64) / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.5, random_state=int(seed), stratify=y)
    for a in (x, y):
        a.setflags(write=False)
    return x[tr], y[tr], x[te], y[te]


def digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared protocol's digits halves ``(x_train, y_train, x_test, y_test)``.

    x: float32 [898|899, 64] in [0, 1]; y: int64 in 0..9. Copies (the cached arrays stay intact).
    ``seed``: the stratified split's ``random_state``; 0 (default) is the CAS protocol's split,
    which the demo, the long-tail experiment and the Frechet network share.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return tuple(a.copy() for a in _digits_split_cached(int(seed)))  # type: ignore[return-value]


@dataclass(frozen=True)
class CASResult:
    """CAS over classifier seeds: ``mean``, ``se`` (std(ddof=1)/sqrt(S); NaN for one seed) and
    each seed's accuracy in ``scores``. ``n_test``: real test images; ``binomial_se``: the test-set
    sampling SE sqrt(mean (1 - mean) / n_test) of one accuracy (the noise of the test half)."""

    mean: float
    se: float
    scores: tuple[float, ...]
    n_test: int = 0
    binomial_se: float = float("nan")


def default_cas_classifier(seed: int):
    """The shared CAS protocol: ``MLPClassifier((128,), alpha=1e-3, max_iter=500, random_state=seed)``."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=500, random_state=seed)


def _factory(classifier: Any) -> Callable[[int], Any]:
    """``classifier``: None (protocol MLP), a callable ``seed -> estimator``, or an (unfitted)
    sklearn-style estimator, cloned per seed with ``random_state=seed`` when it has that parameter."""
    if classifier is None:
        return default_cas_classifier
    if hasattr(classifier, "fit") and hasattr(classifier, "predict"):
        def make(seed: int):
            from sklearn.base import clone

            try:
                est = clone(classifier)
            except TypeError as exc:
                raise TypeError(f"classifier could not be cloned (sklearn.base.clone): {exc}") from None
            params = est.get_params() if hasattr(est, "get_params") else {}
            if "random_state" in params:
                est.set_params(random_state=seed)
            return est

        return make
    if callable(classifier):
        return classifier
    raise TypeError(f"classifier must be an sklearn-style estimator or a callable seed -> estimator, "
                    f"got {type(classifier).__name__}")


def classification_accuracy_score(x_syn: ArrayLike, y_syn: ArrayLike, x_real: ArrayLike | None = None,
                                  y_real: ArrayLike | None = None, *,
                                  classifier: Estimator | Callable[[int], Estimator] | None = None, seeds: Sequence[int] = (0, 1, 2),
                                  n_classes: int | None = None) -> CASResult:
    """CAS: a fresh classifier trained on (x_syn [M, ...], y_syn [M]) only, accuracy on real data.

    ``x_real`` [N, ...] / ``y_real`` [N]: the real held-out set; both None = the shared protocol's
    digits held-out half (:func:`digits_split`, 899 images, pixels in [0, 1]). Features are
    flattened to [N, D] float64. ``classifier``: None = :func:`default_cas_classifier`; an unfitted
    sklearn-style estimator (cloned per seed, ``random_state`` set to the seed if it has one); or
    a callable ``seed -> unfitted estimator``. Returns mean and SE over ``seeds`` (the spread of
    classifier training) plus the binomial SE of the test set. ``n_classes`` bounds the labels.
    """
    if (x_real is None) != (y_real is None):
        raise ValueError("x_real and y_real must be given together (or both None for the digits held-out half)")
    if x_real is None:
        _, _, x_real, y_real = _digits_split_cached()
    k = _n_classes(n_classes)
    xs, xr = _features(x_syn, "x_syn"), _features(x_real, "x_real")
    if xs.shape[1] != xr.shape[1]:
        raise ValueError(f"x_syn has {xs.shape[1]} features but x_real has {xr.shape[1]}")
    ys, yr = _labels(y_syn, xs.shape[0], "y_syn", k), _labels(y_real, xr.shape[0], "y_real", k)
    if isinstance(seeds, (int, np.integer)):
        seeds = (int(seeds),)
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers, got {seeds!r}")
    make = _factory(classifier)
    if len(np.unique(ys)) < 2:
        raise ValueError("y_syn must contain at least two classes to train a classifier")
    scores = []
    for s in seeds:
        est = make(int(s))
        if not (hasattr(est, "fit") and hasattr(est, "predict")):
            raise TypeError(f"classifier({s}) returned {type(est).__name__}, which has no fit/predict")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at max_iter is part of the protocol
            est.fit(xs, ys)
        scores.append(float(np.mean(np.asarray(est.predict(xr)) == yr)))
    arr = np.asarray(scores)
    mean = float(arr.mean())
    return CASResult(mean, _se(arr), tuple(scores), int(len(yr)), float(math.sqrt(mean * (1 - mean) / len(yr))))


# ----------------------------------------------------------------------------------------
# accuracy on synthetic samples
# ----------------------------------------------------------------------------------------
def per_class_accuracy(pred: ArrayLike, y: ArrayLike, *, n_classes: int | None = None) -> np.ndarray:
    """Accuracy of predictions ``pred`` [N] against labels ``y`` [N] per class: float64 [n_classes]
    (NaN for a class with no sample). ``n_classes`` defaults to ``max(y) + 1``."""
    p = np.asarray(pred)
    if p.ndim != 1:
        raise ValueError(f"pred must be 1-D, got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("pred must not be empty")
    k = _n_classes(n_classes)
    y = _labels(y, p.shape[0], "y", k)
    k = int(k if k is not None else y.max() + 1)
    out = np.full(k, np.nan)
    for c in range(k):
        m = y == c
        if m.any():
            out[c] = float(np.mean(p[m] == c))
    return out


@dataclass(frozen=True)
class ClassAccuracy:
    """A classifier's accuracy on labelled samples: ``overall`` (+ binomial ``overall_se``),
    ``per_class`` float64 [K] (NaN where a class has no sample), ``per_class_se`` (binomial
    sqrt(p (1-p) / n_c)) and ``counts`` int64 [K]."""

    overall: float
    overall_se: float
    per_class: np.ndarray = field(repr=False)
    per_class_se: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)


def classifier_accuracy(classifier: Predictor | Callable[[FloatArray], ArrayLike], x: ArrayLike, y: ArrayLike, *, n_classes: int | None = None) -> ClassAccuracy:
    """Accuracy of a fitted ``classifier`` (``predict``) on samples x [N, ...] with labels y [N].

    With a real-data classifier and synthetic samples this is "does the real classifier recognise
    the synthetic digits", per class. ``classifier`` may also be a callable x -> predicted labels.
    """
    xa = _features(x, "x")
    k = _n_classes(n_classes)
    ya = _labels(y, xa.shape[0], "y", k)
    predict = getattr(classifier, "predict", None) or (classifier if callable(classifier) else None)
    if predict is None:
        raise TypeError(f"classifier must have predict() or be callable, got {type(classifier).__name__}")
    pred = np.asarray(predict(xa))
    if pred.shape != (xa.shape[0],):
        raise ValueError(f"classifier returned predictions of shape {pred.shape}, expected ({xa.shape[0]},)")
    k = int(k if k is not None else ya.max() + 1)
    acc = per_class_accuracy(pred, ya, n_classes=k)
    counts = np.bincount(ya, minlength=k).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(acc * (1 - acc) / counts)
    overall = float(np.mean(pred == ya))
    return ClassAccuracy(overall, float(math.sqrt(overall * (1 - overall) / len(ya))), acc, se, counts)


# ----------------------------------------------------------------------------------------
# two-sample score distances
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreDistances:
    """Two-sample distances between score samples ``a`` (real) and ``b`` (synthetic).

    ``ks`` = sup |F_a - F_b| with scipy's two-sample KS p-value; ``wasserstein`` = integral
    |F_a - F_b| (W1, in score units); ``cvm`` = the Cramer-von Mises two-sample criterion T
    (Anderson 1962, ``scipy.stats.cramervonmises_2samp``) with its p-value. ``per_class``:
    {class: ScoreDistances} when labels were given (NaN fields where a class has < 2 scores in
    either sample).
    """

    ks: float
    ks_pvalue: float
    wasserstein: float
    cvm: float
    cvm_pvalue: float
    n_real: int = 0
    n_synth: int = 0
    per_class: dict[int, "ScoreDistances"] | None = field(default=None, repr=False)


def _scores(a: Any, name: str) -> np.ndarray:
    x = np.asarray(a)
    if x.dtype == object or x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be a numeric 1-D array, got dtype {x.dtype}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    x = x.astype(np.float64)
    if x.size < 2:
        raise ValueError(f"{name} needs at least 2 scores, got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _distances(a: np.ndarray, b: np.ndarray) -> ScoreDistances:
    from scipy import stats

    ks = stats.ks_2samp(a, b)
    cvm = stats.cramervonmises_2samp(a, b)
    return ScoreDistances(float(ks.statistic), float(ks.pvalue), float(stats.wasserstein_distance(a, b)),
                          float(cvm.statistic), float(cvm.pvalue), int(a.size), int(b.size))


def score_distances(real_scores: ArrayLike, synth_scores: ArrayLike, *, real_labels: ArrayLike | None = None,
                    synth_labels: ArrayLike | None = None, n_classes: int | None = None) -> ScoreDistances:
    """KS (with p-value), Wasserstein-1 and Cramer-von Mises between two 1-D score samples.

    ``real_scores`` [n], ``synth_scores`` [m]: finite floats (e.g. calibration scores of the true
    label, the distributions SPPI transports; spec sppi.md), at least 2 each. With
    ``real_labels`` [n] and ``synth_labels`` [m] (integers in 0..n_classes-1) the result also holds
    the distances per class in ``per_class`` (classes 0..K-1, K = n_classes or max label + 1).
    """
    a, b = _scores(real_scores, "real_scores"), _scores(synth_scores, "synth_scores")
    out = _distances(a, b)
    if real_labels is None and synth_labels is None:
        if n_classes is not None:
            raise ValueError("n_classes needs real_labels and synth_labels")
        return out
    if real_labels is None or synth_labels is None:
        raise ValueError("real_labels and synth_labels must be given together")
    k = _n_classes(n_classes)
    la, lb = _labels(real_labels, a.size, "real_labels", k), _labels(synth_labels, b.size, "synth_labels", k)
    k = int(k if k is not None else max(la.max(), lb.max()) + 1)
    nan = float("nan")
    per: dict[int, ScoreDistances] = {}
    for c in range(k):
        ac, bc = a[la == c], b[lb == c]
        per[c] = _distances(ac, bc) if ac.size >= 2 and bc.size >= 2 else \
            ScoreDistances(nan, nan, nan, nan, nan, int(ac.size), int(bc.size))
    return ScoreDistances(out.ks, out.ks_pvalue, out.wasserstein, out.cvm, out.cvm_pvalue, out.n_real, out.n_synth,
                          per)
