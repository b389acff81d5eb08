"""Benchmark setup: pinned thread counts, progress off, Triton interpreter when no GPU.

Timings on a busy 2-core machine swing several-fold unless threads are pinned, so every
benchmark runs with OMP (synthperf._native), torch and BLAS threads fixed:
SYNTHPERF_BENCH_THREADS (default 2) for the compiled backends, 1 for numpy/torch baselines.
Run: ``pytest benchmarks --benchmark-only`` ; compare groups with ``python benchmarks/compare.py``.
"""
from __future__ import annotations

import os

THREADS = int(os.environ.get("SYNTHPERF_BENCH_THREADS", "2"))
os.environ["OMP_NUM_THREADS"] = str(THREADS)
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("SYNTHPERF_PROGRESS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
torch.set_num_threads(THREADS)

from synthperf import _native  # noqa: E402

_native.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def bench_threads() -> int:
    return THREADS
