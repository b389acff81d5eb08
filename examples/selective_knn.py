"""Selective prediction with a KNN distance score on embeddings (seapig API, exact faiss KNN).

Reference embeddings are a 16-D Gaussian blob; queries are half in-distribution, half shifted.
``EuclideanScore(k=5)`` scores each query by its mean distance to the 5 nearest reference
points, ``set_threshold(0.95)`` accepts about 95% of calibration-like data, and ``select``
returns the scores and the accept mask (lower score = accept). Run:
``python examples/selective_knn.py`` (faiss-cpu from the ``test`` or ``faiss`` extra).
"""
from __future__ import annotations

import torch

from synthperf.selective import EuclideanScore, aurc

g = torch.Generator().manual_seed(0)
reference = torch.randn(2000, 16, generator=g)
calibration = torch.randn(500, 16, generator=g)
query_in = torch.randn(300, 16, generator=g)
query_out = torch.randn(300, 16, generator=g) + 1.5  # shifted: should be rejected
query = torch.cat([query_in, query_out])

scorer = EuclideanScore(k=5, stat="mean").fit(reference, calibration)
threshold = scorer.set_threshold(0.95)
out = scorer.select(query)  # {"score": (600,), "selected": (600,) bool}
accepted = out["selected"]

print(f"threshold {float(threshold):.4f}")
print(f"accepted in-distribution {accepted[:300].float().mean():.3f}, shifted {accepted[300:].float().mean():.3f}")
# a risk-coverage summary: residual 1 for a shifted query (an error we would like to reject)
residuals = torch.cat([torch.zeros(300), torch.ones(300)])
print(f"AURC {aurc(out['score'], residuals):.4f}")
