"""Scores (specs/sppi.md §4, §8 steps 1-2): APS bit-exact with upstream's float32 recipe."""
from __future__ import annotations

import numpy as np
import pytest

from synthperf.conformal import scores as sc
from synthperf.conformal.scores import (APS_TOP, abs_residual_scores, aps_from_precomputed, aps_precompute,
                                        aps_scores, cqr_scores, lac_scores)


def upstream_aps(p_row: np.ndarray, y: int, eps: float) -> np.float32:
    """Upstream's per-row recipe: argsort(-p), float32 cumsum, round 9, in-place f32 -= f64."""
    order = np.argsort(-p_row)
    z = np.round(np.cumsum(p_row[order]), 9)
    rank = int(np.flatnonzero(order == y)[0])
    z[rank] -= eps * p_row[y]
    return np.maximum(z[rank], np.float32(0))


def _probs(rng, n, C=200, ties=True):
    logits = rng.normal(size=(n, C)) * 3
    p = np.exp(logits)
    p = (p / p.sum(1, keepdims=True)).astype(np.float32)
    if ties:
        p[: n // 4, :10] = p[: n // 4, 10:11]  # tied block containing candidate labels
        p[n // 4: n // 3] = np.float32(1.0 / C)  # all tied
        p[n // 3: n // 2, 3] = 0.0
        p64 = p.astype(np.float64)  # renormalise (equal entries stay equal): valid probability rows
        p = (p64 / p64.sum(1, keepdims=True)).astype(np.float32)
    return p


def test_aps_bit_exact_with_upstream_recipe():
    rng = np.random.default_rng(0)
    p = _probs(rng, 120)
    labels = rng.integers(0, 40, size=(120, 12))
    eps = rng.uniform(size=120)
    got = aps_scores(p, labels, u=eps)
    ref = np.array([[upstream_aps(p[i], labels[i, j], eps[i]) for j in range(12)] for i in range(120)])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, ref.astype(np.float32))


def test_aps_on_real_clip_probs(shared_dir):
    path = shared_dir / "data/sppi/imagenet/models/CLIP-ViT-B-32-laion2B-s34B-b79K/imagenet_train/0392/probs.npy"
    p = np.load(path, allow_pickle=False)[:60]
    cand = np.array([16, 207, 250, 626, 852, 862, 444, 17, 676, 217, 392, 0])
    eps = np.random.default_rng(1).uniform(size=p.shape[0])
    got = aps_scores(p, np.broadcast_to(cand, (p.shape[0], cand.size)), u=eps)
    ref = np.array([[upstream_aps(p[i], c, eps[i]) for c in cand] for i in range(p.shape[0])], dtype=np.float32)
    np.testing.assert_array_equal(got, ref)


def test_float32_rounding_is_kept():
    """The float64 result must be rounded to float32 (pitfall P4), not kept in float64."""
    rng = np.random.default_rng(2)
    p = _probs(rng, 50, ties=False)
    lab = rng.integers(0, 200, size=50)
    eps = rng.uniform(size=50)
    Z, P = aps_precompute(p, lab)
    exact64 = Z.astype(np.float64) - P.astype(np.float64) * eps
    got = aps_scores(p, lab, u=eps)
    assert np.array_equal(got, np.maximum(exact64.astype(np.float32), 0))
    assert (got.astype(np.float64) != exact64).any()


def test_numba_and_numpy_rank_paths_agree():
    rng = np.random.default_rng(3)
    p = _probs(rng, 80)
    neg = np.sort(-p, axis=1)
    target = -np.take_along_axis(p, rng.integers(0, 200, size=(80, 7)), axis=1)
    a = sc._rank_and_cumsum(neg, target)
    b = sc._rank_and_cumsum_numpy(neg, target)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_precompute_gather_matches_direct_and_non_randomized():
    rng = np.random.default_rng(4)
    p = _probs(rng, 30)
    lab = rng.integers(0, 200, size=(30, 5))
    eps = rng.uniform(size=30)
    Z, P = aps_precompute(p, lab)
    np.testing.assert_array_equal(aps_from_precomputed(Z, P, eps[:, None]), aps_scores(p, lab, u=eps))
    np.testing.assert_array_equal(aps_scores(p, lab, randomized=False), np.maximum(Z, 0))
    np.testing.assert_array_equal(aps_scores(p, lab, random_state=7), aps_scores(p, lab, random_state=7))
    assert APS_TOP == 1.0


def test_regression_and_lac_scores():
    iv = np.array([[0.0, 1.0], [2.0, 3.0], [-1.0, 1.0]], dtype=np.float32)
    y = np.array([1.5, 1.0, 0.0], dtype=np.float32)
    np.testing.assert_array_equal(cqr_scores(iv, y), np.array([0.5, 1.0, -1.0], dtype=np.float32))
    assert cqr_scores(iv, y).dtype == np.float32
    np.testing.assert_array_equal(abs_residual_scores([1.0, 2.0], [0.5, 3.0]), [0.5, 1.0])
    p = np.array([[0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(lac_scores(p, [1, 1]), [0.2, 0.6])


@pytest.mark.parametrize("call, match", [
    (lambda: aps_scores(np.full((2, 3), np.nan, np.float32), [0, 1]), "NaN"),
    (lambda: aps_scores(np.full((2, 3), 1 / 3, np.float32), [0, 3]), "labels out of range"),
    (lambda: aps_scores(np.full((2, 3), 1 / 3, np.float32), [0, 1, 2]), "labels has 3 rows"),
    (lambda: aps_scores(np.full((2, 3), 1 / 3, np.float32), [0, 1], u=[0.5, 2.0]), "u must lie"),
    (lambda: aps_scores(np.full((2, 3), 1 / 3, np.float32), [0.0, 1.0]), "labels must hold integers"),
    (lambda: cqr_scores(np.zeros((3, 3)), np.zeros(3)), "last axis of size 2"),
    (lambda: cqr_scores(np.zeros((3, 2)), np.zeros(4)), "must match"),
    (lambda: abs_residual_scores([1.0, np.nan], [1.0, 2.0]), "NaN"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("fn", ["aps", "lac"])
def test_invalid_probabilities_rejected(fn):
    """Issue 17: NaN, negative, > 1 and rows not summing to 1 raise ValueError naming probs."""
    from synthperf.conformal import aps_scores, lac_scores

    call = (lambda p: aps_scores(p, np.zeros(p.shape[0], dtype=int), random_state=0)) if fn == "aps" \
        else (lambda p: lac_scores(p, np.zeros(p.shape[0], dtype=int)))
    good = np.full((3, 4), 0.25, dtype=np.float32)
    call(good)
    for bad, match in [(np.where(np.eye(3, 4, dtype=bool), np.nan, 0.25), "probs.*NaN"),
                       (good - np.eye(3, 4) * 0.5, "probs row 0 .*outside"),
                       (good + np.eye(3, 4) * 0.9, "probs row 0 .*outside"),
                       (good * 0.5, "probs row 0 sums to"),
                       (np.full((3, 4), np.inf), "probs row 0 .*inf")]:
        with pytest.raises(ValueError, match=match):
            call(bad)
    nearly = good.copy()
    nearly[0, 0] += 1e-6  # float32 softmax rounding (spec P3) stays accepted
    call(nearly)
