"""Batched order statistics, B=3000 rows x n=1000, 6 ranks (Foundation benchmark).

Groups: the `cpu` backend (C++ multi-select, OpenMP) vs `np.partition` per row vs
`np.sort(axis=1)` + gather. Ratios: ``python benchmarks/compare.py .benchmarks/...json``.
"""
from __future__ import annotations

import numpy as np
import pytest

from synthperf.ops import order_statistics

B, N, RANKS = 3000, 1000, np.array([1, 15, 250, 500, 901, 1000])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((B, N))


def _numpy_sort(x):
    return np.sort(x, axis=1)[:, RANKS - 1]


def _numpy_partition_per_row(x):
    out = np.empty((x.shape[0], RANKS.shape[0]))
    for b in range(x.shape[0]):
        out[b] = np.partition(x[b], RANKS - 1)[RANKS - 1]
    return out


@pytest.mark.benchmark(group="order_statistics")
def test_cpu_backend(benchmark, data):
    got = benchmark(order_statistics, data, RANKS, backend="cpu")
    np.testing.assert_array_equal(got, _numpy_sort(data))


@pytest.mark.benchmark(group="order_statistics")
def test_numpy_partition_per_row(benchmark, data):
    benchmark(_numpy_partition_per_row, data)


@pytest.mark.benchmark(group="order_statistics")
def test_numpy_sort_axis1(benchmark, data):
    benchmark(_numpy_sort, data)
