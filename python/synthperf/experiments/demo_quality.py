"""Quality of one synthetic digits set, as the demo reports it (issue 13 item 2).

:func:`digits_quality` returns scalars:

- ``cas_mean`` / ``cas_se``: classification accuracy score, a fresh MLP trained on the synthetic
  set only and tested on real held-out digits, over classifier seeds;
- ``real_cas_mean`` / ``real_cas_se``: the same classifier trained on real data (reference);
- ``real_clf_accuracy`` (+ ``_min_class``): the real-data classifier's accuracy on the samples;
- ``frechet``: Frechet distance between real and synthetic features of a digits network;
- ``score_ks`` / ``score_ks_pvalue`` / ``score_wasserstein``: two-sample distances between the
  real and synthetic calibration-score distributions (non-randomized APS of the true label),
  which is what SPPI transports.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["digits_quality"]


def _metrics():
    from .. import metrics

    return metrics


def digits_quality(x_syn: np.ndarray, y_syn: np.ndarray, *, x_real_train: np.ndarray, y_real_train: np.ndarray,
                   x_real_test: np.ndarray, y_real_test: np.ndarray, real_classifier: Any,
                   seeds: Sequence[int] = (0, 1, 2), real_cas: Any = None) -> dict[str, float]:
    """Scalars describing ``(x_syn [M, 64] float in [0,1], y_syn int [M])`` against real digits.

    ``real_classifier``: a fitted sklearn classifier with ``predict`` / ``predict_proba`` on the
    64 pixels (the one whose prediction sets the demo calibrates). ``real_cas``: the reference
    CAS of the real training split (a :class:`synthperf.metrics.CASResult`), computed here when
    None; pass it to compare several synthetic sets without refitting it.
    """
    from ..conformal import aps_scores

    m = _metrics()
    cas = m.classification_accuracy_score(x_syn, y_syn, x_real_test, y_real_test, seeds=seeds)
    real = real_cas if real_cas is not None else m.classification_accuracy_score(
        x_real_train, y_real_train, x_real_test, y_real_test, seeds=seeds)
    per_class = m.per_class_accuracy(real_classifier.predict(x_syn), y_syn, n_classes=10)
    fd = m.frechet_distance(x_real_test, x_syn)
    s_real = aps_scores(real_classifier.predict_proba(x_real_test), y_real_test, randomized=False)
    s_syn = aps_scores(real_classifier.predict_proba(x_syn), y_syn, randomized=False)
    dist = m.score_distances(s_real, s_syn)
    return {"real_cas": real, "cas_mean": cas.mean, "cas_se": cas.se, "real_cas_mean": real.mean, "real_cas_se": real.se,
            "real_clf_accuracy": float(np.mean(real_classifier.predict(x_syn) == y_syn)),
            "real_clf_accuracy_min_class": float(np.nanmin(per_class)), "frechet": float(fd),
            "score_ks": dist.ks, "score_ks_pvalue": dist.ks_pvalue, "score_wasserstein": dist.wasserstein,
            "score_cvm": dist.cvm}
