"""SPPI vs split conformal on scikit-learn digits, with MAPIE 1.x verbs (no download).

A logistic regression is trained on half the digits; 20 real labelled images and 560
"synthetic" ones (other real images plus Gaussian pixel noise, a stand-in for a generator) are
the calibration data. Split conformal uses only the 20 real points; SPPI transports the 560
synthetic scores onto the real ones and keeps a finite-sample guarantee whatever the synthetic
data are: its expected coverage (over calibration draws) lies in ``coverage_bounds``. One draw's
empirical coverage on ~600 test images scatters around that.
Run: ``python examples/conformal_sppi.py``.
"""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from synthperf.conformal import SplitConformalClassifier, SPPIClassifier, coverage_bounds

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_rest, y_train, y_rest = train_test_split(X, y, train_size=0.5, random_state=0, stratify=y)
X_cal, X_test, y_cal, y_test = X_rest[:20], X_rest[300:], y_rest[:20], y_rest[300:]
rng = np.random.default_rng(0)
X_synth = np.clip(X_rest[20:300].repeat(2, axis=0) + rng.normal(0, 0.15, (560, 64)), 0, 1)
y_synth = y_rest[20:300].repeat(2)

model = LogisticRegression(max_iter=2000).fit(X_train, y_train)
alpha = 0.1

split = SplitConformalClassifier(estimator=model, confidence_level=1 - alpha, conformity_score="aps",
                                 prefit=True, random_state=0).conformalize(X_cal, y_cal)
_, sets_split = split.predict_set(X_test)  # [n, n_classes, 1]
sppi = SPPIClassifier(alpha, estimator=model, prefit=True, score="aps", random_state=0)
sppi.conformalize(X_cal, y_cal, X_synth, y_synth)
_, sets_sppi = sppi.predict_set(X_test)

for name, sets in (("split conformal (20 real)", sets_split), ("SPPI (20 real + 560 synth)", sets_sppi)):
    s = sets[..., 0]
    cov = s[np.arange(len(y_test)), y_test].mean()
    print(f"{name:<28} coverage {cov:.3f}  mean set size {s.sum(1).mean():.2f}")
lo, hi = coverage_bounds(20, 560, alpha)
print(f"SPPI guaranteed coverage range for n=20, N=560, alpha={alpha}: [{lo:.3f}, {hi:.3f}]")
