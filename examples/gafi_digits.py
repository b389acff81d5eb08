"""GaFi on scikit-learn digits with the tiny budget: unfiltered vs Dynamic Sample Filtering.

A conditional BigGAN-deep is trained for two epochs (``budget="tiny"``: plumbing only, far
from converged; ``budget="demo"`` is the demo's setting). Dynamic Sample Filtering keeps a
generated sample only when a filter classifier gives its label a probability >= tau (0.5
here); the filter is a logistic regression fitted on the real training digits, passed as
``filter_fn`` (the default trains GaFi's ResNet-20). Both sets are judged by the
classification accuracy score (CAS: a classifier trained on the synthetic data only, accuracy
on the real held-out digits). The GAN is trained once and reused from the cache folder.
No download. Run: ``python examples/gafi_digits.py``.
"""
from __future__ import annotations

import tempfile

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from synthperf.gafi.digits import make_digits_synthetic
from synthperf.metrics import classification_accuracy_score, digits_split

x_train, y_train, x_test, y_test = digits_split(0)  # shared protocol: x [N, 64] in [0, 1], y in 0..9
judge = LogisticRegression(max_iter=1000).fit(x_train, y_train)


def filter_fn(images: torch.Tensor) -> torch.Tensor:
    """Generator output (B, 1, 8, 8) in [-1, 1] -> (B, 10) log-probabilities."""
    x01 = ((images.reshape(len(images), 64).double() + 1.0) / 2.0).clamp(0, 1).numpy()
    return torch.from_numpy(np.log(judge.predict_proba(x01) + 1e-12))


with tempfile.TemporaryDirectory() as out:
    for method in ("unfiltered", "gafi"):
        x, y, info = make_digits_synthetic(x_train, y_train, per_class=20, out_dir=out, seed=0, budget="tiny",
                                           method=method, filter_fn=filter_fn if method == "gafi" else None)
        cas = classification_accuracy_score(x, y, x_test, y_test, seeds=(0,))
        print(f"{method:<10} synthetic {x.shape} tau {info['tau']:.1f} acceptance {info['acceptance_rate']:.3f} "
              f"capped classes {info['capped_classes']}  CAS {cas.mean:.3f} (binomial SE {cas.binomial_se:.3f})")
