"""SPPI-Subset (specs/sppi.md §2): CvM statistic only, batched, ties to the smaller label."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from synthperf.conformal.subset import (class_distances, cvm_statistics, select_nearest, sppi_subset_select,
                                        wasserstein_distances)


def test_cvm_matches_scipy_statistic_exactly_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(150):
        nx, ny = rng.integers(2, 25, size=2)
        decimals = int(rng.integers(0, 3))  # coarse rounding forces ties inside and across samples
        x = np.round(rng.normal(size=nx), decimals)
        y = np.round(rng.normal(0.3, 1.2, size=ny), decimals)
        assert cvm_statistics(x, y) == st.cramervonmises_2samp(x, y, method="asymptotic").statistic


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(1)
    for _ in range(50):
        x = np.round(rng.normal(size=rng.integers(1, 20)), 1)
        y = np.round(rng.normal(size=rng.integers(1, 20)), 1)
        assert wasserstein_distances(x, y) == pytest.approx(st.wasserstein_distance(x, y), abs=1e-12)


def test_batched_equals_pairwise_loop():
    rng = np.random.default_rng(2)
    real = rng.random((3, 4, 15)).astype(np.float32)  # [trial, real class, n]
    synth = rng.random((3, 9, 15)).astype(np.float32)  # [trial, synthetic class, M]
    d = class_distances(real, synth[:, None])  # [3, 4, 9]
    for t in range(3):
        for g in range(4):
            for c in range(9):
                assert d[t, g, c] == cvm_statistics(real[t, g], synth[t, c])


def test_selection_and_tie_break_to_smaller_label():
    rng = np.random.default_rng(3)
    real = rng.normal(size=15)
    labels = np.repeat([7, 3, 11, 5], 15)
    synth = np.concatenate([real + 5, real.copy(), real + 2, real.copy()])  # classes 3 and 5 identical to real
    chosen = sppi_subset_select(real, synth, labels, k=3)
    np.testing.assert_array_equal(chosen, [3, 5, 11])  # tie 3 vs 5 -> smaller label first
    assert select_nearest(np.array([[1.0, 0.5, 0.5, 0.2]]), 2).tolist() == [[3, 1]]


def test_selection_with_unequal_class_sizes_and_wasserstein():
    rng = np.random.default_rng(4)
    real = rng.normal(size=12)
    synth = np.concatenate([rng.normal(3, 1, 20), rng.normal(0, 1, 7), rng.normal(1, 1, 30)])
    labels = np.concatenate([np.zeros(20, int), np.ones(7, int), np.full(30, 2)])
    d = [st.cramervonmises_2samp(real, synth[labels == c]).statistic for c in range(3)]
    assert sppi_subset_select(real, synth, labels, k=2).tolist() == list(np.argsort(d, kind="stable")[:2])
    w = [st.wasserstein_distance(real, synth[labels == c]) for c in range(3)]
    assert sppi_subset_select(real, synth, labels, k=1, criterion="wasserstein").tolist() == [int(np.argmin(w))]


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cvm_statistics([1.0], [1.0, 2.0]), ValueError, "at least two"),
    (lambda: cvm_statistics([1.0, np.nan], [1.0, 2.0]), ValueError, "NaN"),
    (lambda: sppi_subset_select(np.ones(3), np.ones(4), np.array([0, 0, 1, 1]), k=3), ValueError, "exceeds"),
    (lambda: sppi_subset_select(np.ones(3), np.ones(4), np.array([0, 0, 1]), k=1), ValueError, "synth_labels"),
    (lambda: sppi_subset_select(np.ones(3), np.ones(4), np.array([0, 0, 1, 1]), criterion="ks"), ValueError, "criterion"),
    (lambda: sppi_subset_select(np.ones(3), np.ones(4), np.array([0, 0, 1, 1]), k=0), ValueError, "k must be"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
