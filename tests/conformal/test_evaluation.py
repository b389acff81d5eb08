"""Set/interval evaluation batched over trials and alpha (specs/sppi.md §3, §8 step 4)."""
from __future__ import annotations

import numpy as np
import pytest

from synthperf.conformal.evaluation import evaluate_aps_sets, evaluate_intervals, evaluate_sets
from synthperf.conformal.scores import aps_from_precomputed


def _brute(scores, labels, thr, C):
    """Plain loops: thr [Q, C] per trial."""
    T, n, _ = scores.shape
    Q = thr.shape[1]
    cov, size = np.zeros((T, Q)), np.zeros((T, Q))
    for t in range(T):
        for j in range(Q):
            inside = scores[t] <= thr[t, j][None, :]
            cov[t, j] = inside[np.arange(n), labels[t]].mean()
            size[t, j] = inside.sum(1).mean()
    return cov, size


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_sets_match_brute_force_marginal_and_class_conditional(backend):
    rng = np.random.default_rng(0)
    T, n, C = 3, 40, 5
    scores = rng.random((T, n, C)).astype(np.float32)
    labels = rng.integers(0, C, size=(T, n))
    q = rng.random((T, 2, 3)).astype(np.float32)  # [T, method, alpha]
    q[0, 0, 0], q[1, 1, 2] = np.inf, -np.inf
    m = evaluate_sets(scores, labels, q, backend=backend)
    cov, size = _brute(scores, labels, np.repeat(q.reshape(T, 6, 1), C, axis=2), C)
    np.testing.assert_array_equal(m.coverage, cov.reshape(T, 2, 3))
    np.testing.assert_allclose(m.size, size.reshape(T, 2, 3), rtol=1e-15)
    assert m.coverage[0, 0, 0] == 1.0 and m.size[0, 0, 0] == C
    assert m.coverage[1, 1, 2] == 0.0 and m.size[1, 1, 2] == 0.0
    qc = rng.random((T, 4, C))
    mc = evaluate_sets(scores, labels, qc, class_conditional=True, backend=backend)
    cov, size = _brute(scores, labels, qc, C)
    np.testing.assert_array_equal(mc.coverage, cov)
    np.testing.assert_allclose(mc.size, size, rtol=1e-15)
    # per-class conditional metrics
    for t in range(T):
        for c in range(C):
            rows = labels[t] == c
            inside = scores[t][rows] <= qc[t, 1][None, :]
            assert mc.class_coverage[t, 1, c] == pytest.approx(inside[:, c].mean())
            assert mc.class_size[t, 1, c] == pytest.approx(inside.sum(1).mean())
            assert mc.class_counts[t, c] == rows.sum()


def test_absent_class_gives_nan_and_2d_input():
    scores = np.array([[0.1, 0.9], [0.2, 0.3]])
    m = evaluate_sets(scores, [0, 0], np.array([0.5]))
    assert m.coverage.shape == (1,) and m.coverage[0] == 1.0 and m.size[0] == 1.5
    assert np.isnan(m.class_coverage[0, 1]) and m.class_counts.tolist() == [2, 0]


def test_fused_aps_kernel_equals_materialised_scores():
    rng = np.random.default_rng(1)
    Z = rng.random((50, 6)).astype(np.float32)
    P = (rng.random((50, 6)) * 0.3).astype(np.float32)
    idx = rng.integers(0, 50, size=(4, 30))
    eps = rng.uniform(size=(4, 30))
    lab = rng.integers(0, 6, size=(4, 30))
    thr = rng.random((4, 3, 2, 6)).astype(np.float32)
    thr[0, 0, 0] = 1.0
    fused = evaluate_aps_sets(Z, P, idx, eps, lab, thr, class_conditional=True)
    mat = evaluate_sets(aps_from_precomputed(Z[idx], P[idx], eps[..., None]), lab, thr, class_conditional=True,
                        backend="reference")
    for a, b in zip((fused.coverage, fused.size, fused.class_size), (mat.coverage, mat.size, mat.class_size)):
        np.testing.assert_array_equal(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1))
    numpy_path = evaluate_aps_sets(Z, P, idx, eps, lab, thr, class_conditional=True, backend="reference")
    np.testing.assert_array_equal(numpy_path.coverage, fused.coverage)


def test_intervals_finite_and_infinite():
    rng = np.random.default_rng(2)
    iv = np.sort(rng.normal(size=(2, 25, 2)), axis=-1).astype(np.float32)
    y = rng.normal(size=(2, 25)).astype(np.float32)
    q = np.array([[0.3, np.inf, -np.inf], [-0.1, 0.0, 1.0]], dtype=np.float32)
    m = evaluate_intervals(iv, y, q)
    for t in range(2):
        for j in (0,) if t == 0 else (0, 1, 2):
            lo, hi = iv[t, :, 0] - q[t, j], iv[t, :, 1] + q[t, j]
            assert m.coverage[t, j] == np.mean((lo <= y[t]) & (y[t] <= hi))
            assert m.length[t, j] == pytest.approx(np.mean(hi - lo), rel=1e-6)
    assert m.coverage[0, 1] == 1.0 and np.isinf(m.length[0, 1])
    assert m.coverage[0, 2] == 0.0 and m.length[0, 2] == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: evaluate_sets(np.zeros((2, 3)), [0, 3], np.array([0.5])), "labels out of range"),
    (lambda: evaluate_sets(np.zeros((2, 3)), [0, 1, 1], np.array([0.5])), "labels has shape"),
    (lambda: evaluate_sets(np.zeros((2, 3)), [0, 1], np.zeros(2), class_conditional=True), "last axis of size C"),
    (lambda: evaluate_sets(np.full((2, 3), np.nan), [0, 1], np.array([0.5])), "NaN"),
    (lambda: evaluate_sets(np.zeros((2, 3)), [0, 1], np.array([0.5]), backend="gpu"), "backend"),
    (lambda: evaluate_sets(np.zeros((2, 3)), [0, 1], np.array([0.5]), backend="cuda"), "no 'cuda' backend"),
    (lambda: evaluate_intervals(np.zeros((3, 3)), np.zeros(3), np.array([0.1])), "size 2"),
    (lambda: evaluate_intervals(np.zeros((3, 2)), np.zeros(4), np.array([0.1])), "y has shape"),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def _engine_case():
    rng = np.random.default_rng(3)
    scores = rng.random((2, 30, 4))
    labels = rng.integers(0, 4, size=(2, 30))
    q = rng.random((2, 3))
    return scores, labels, q


@pytest.mark.parametrize("engine, backend", [("numba", "cpu"), ("numpy", "reference"), ("auto", "auto")])
def test_engine_is_a_deprecated_alias_of_backend(engine, backend, monkeypatch):
    """engine= (issue 14 item 3) warns DeprecationWarning and selects the same path as its backend name."""
    import synthperf.conformal.evaluation as ev

    scores, labels, q = _engine_case()
    calls = []
    real = ev._sets_numpy
    monkeypatch.setattr(ev, "_sets_numpy", lambda *a: (calls.append("reference"), real(*a)))
    with pytest.warns(DeprecationWarning, match="engine=.*deprecated.*backend="):
        old = evaluate_sets(scores, labels, q, engine=engine)
    new = evaluate_sets(scores, labels, q, backend=backend)
    np.testing.assert_array_equal(old.coverage, new.coverage)
    np.testing.assert_array_equal(old.size, new.size)
    assert calls == (["reference", "reference"] if backend == "reference" else [])
    Z = np.random.default_rng(4).random((10, 4)).astype(np.float32)
    args = (Z, Z * 0.1, np.zeros((1, 3), int), np.zeros((1, 3)), np.zeros((1, 3), int), np.ones((1, 2)))
    with pytest.warns(DeprecationWarning):
        old = evaluate_aps_sets(*args, engine=engine)
    np.testing.assert_array_equal(old.size, evaluate_aps_sets(*args, backend=backend).size)


def test_engine_and_backend_together_or_unknown_engine_raise():
    scores, labels, q = _engine_case()
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="not both"):
        evaluate_sets(scores, labels, q, backend="cpu", engine="numba")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="engine must be one of"):
        evaluate_sets(scores, labels, q, engine="gpu")


def test_backend_follows_the_process_setting(monkeypatch):
    """backend=None is the process preference: SYNTHPERF_BACKEND=cuda falls back to the numba
    kernel, =reference runs numpy; without numba a preference falls back to reference but an
    explicit backend='cpu' raises BackendUnavailableError."""
    import synthperf.conformal.evaluation as ev
    from synthperf.backend import BackendUnavailableError, use_backend

    scores, labels, q = _engine_case()
    calls = []
    real = ev._sets_numpy
    monkeypatch.setattr(ev, "_sets_numpy", lambda *a: (calls.append(1), real(*a)))
    want = evaluate_sets(scores, labels, q, backend="reference")
    calls.clear()
    with use_backend("cuda"):
        got = evaluate_sets(scores, labels, q)
    assert calls == []
    np.testing.assert_array_equal(got.coverage, want.coverage)
    with use_backend("reference"):
        evaluate_sets(scores, labels, q)
    assert calls == [1]
    monkeypatch.setattr(ev, "_numba_installed", lambda: False)
    calls.clear()
    with use_backend("cpu"):
        evaluate_sets(scores, labels, q)
    evaluate_sets(scores, labels, q, backend="auto")
    assert calls == [1, 1]
    with pytest.raises(BackendUnavailableError, match="numba is not installed"):
        evaluate_sets(scores, labels, q, backend="cpu")
