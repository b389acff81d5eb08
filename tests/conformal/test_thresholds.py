"""SPPI and split-conformal thresholds: spec formulas, batched == single, backends agree."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthperf.conformal import (
    split_conformal_threshold,
    split_conformal_thresholds,
    sppi_threshold,
    sppi_thresholds,
    transport_windows,
)
from synthperf.conformal.thresholds import sppi_ranks

BACKENDS = ["reference", "cpu", "triton"]


def test_split_conformal_is_kth_smallest():
    s = np.arange(1.0, 16.0)[::-1].copy()  # n = 15
    for alpha in (0.1, 0.2, 0.3):
        k = math.ceil((15 + 1) * (1 - alpha))
        assert split_conformal_threshold(s, alpha) == k
    assert split_conformal_threshold(s, 0.05) == math.inf  # alpha < 1/(n+1): trivial
    assert split_conformal_threshold(s, 0.05, top=1.0) == 1.0
    np.testing.assert_array_equal(split_conformal_threshold(s, [0.1, 0.2]), [15.0, 13.0])


def test_spec_worked_example_ranks():
    L, U = transport_windows(15, 1000, 0.4)
    table = {0.10: (902, 13, 15), 0.05: (952, 15, 16), 0.02: (982, 15, 16), 0.20: (802, 11, 14)}
    for alpha, want in table.items():
        assert sppi_ranks(15, 1000, alpha, L, U) == want


def test_spec_float_quirk_K_plus_one():
    # N=24, alpha=0.2: (1-a)(N+1) = 20 but the double product rounds up to K = 21 (spec §1d)
    N, alpha = 24, 0.2
    assert math.ceil(N * ((1.0 - alpha) * (1.0 + 1.0 / N))) == 21


def test_sppi_threshold_clips_between_real_order_statistics():
    rng = np.random.default_rng(0)
    real = rng.random(15)
    synth = rng.random(1000) + 5.0  # synthetic far above: q clipped to the upper real bound
    q = sppi_threshold(real, synth, 0.1)
    assert q == np.sort(real)[14]  # r- = 15
    synth_low = rng.random(1000) - 5.0
    assert sppi_threshold(real, synth_low, 0.1) == np.sort(real)[12]  # r+ = 13


def test_upstream_crash_case_is_defined():
    """alpha so large that no rank has U_r <= K: r+ = 0 means s+ = -inf (spec §1d)."""
    rng = np.random.default_rng(1)
    real, synth = rng.random(15), rng.random(1000)
    # alpha = 0.95: K = 51 < U_1 = 97 (r+ = 0) while L_1 = 14 <= 51 < L_2 (r- = 1)
    q = sppi_threshold(real, synth, 0.95)
    assert q == min(np.sort(synth)[51], np.sort(real)[0])
    # alpha = 0.995: K = 6 < L_1 = 14 as well, so both clips are -inf
    assert sppi_threshold(real, synth, 0.995) == -math.inf


def _ragged(rng, B, n_max, N_max, dtype, ties):
    R = rng.random((B, n_max)).astype(dtype)
    S = rng.random((B, N_max)).astype(dtype)
    if ties:
        R = np.round(R * 4) / 4
        S = np.round(S * 4) / 4
    n = rng.integers(1, n_max + 1, B)
    N = np.array([rng.integers(k + 2, N_max + 1) for k in n])
    for b in range(B):
        R[b, n[b]:] = np.nan
        S[b, N[b]:] = np.nan
    return R, S, n, N


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batched_equals_single_group_loop(backend, dtype):
    rng = np.random.default_rng(5)
    B = 6 if backend == "triton" else 40  # the Triton interpreter runs each program in Python
    R, S, n, N = _ragged(rng, B, 20, 80, dtype, ties=True)
    alphas = np.array([0.01, 0.02, 0.05, 0.1, 0.3, 0.9, 0.99])
    got = sppi_thresholds(R, S, alphas, 0.4, 1.0, n, N, backend=backend)
    loop = np.stack([sppi_threshold(R[b, : n[b]], S[b, : N[b]], alphas, 0.4, 1.0) for b in range(B)])
    assert got.dtype == dtype and got.shape == (B, alphas.shape[0])
    np.testing.assert_array_equal(got, loop)
    sc = split_conformal_thresholds(R, alphas, 1.0, n, backend=backend)
    sc_loop = np.stack([split_conformal_threshold(R[b, : n[b]], alphas, 1.0) for b in range(B)])
    np.testing.assert_array_equal(sc, sc_loop)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_selection_paths_agree(dtype):
    """The C++ core with its AVX-512 row selection and with the portable one (simd=False,
    what CPUs without AVX-512 run) give the same thresholds as the reference."""
    from synthperf import _native
    from synthperf.conformal.thresholds import _window_tables

    rng = np.random.default_rng(8)
    R, S, n, N = _ragged(rng, 30, 20, 400, dtype, ties=True)
    alphas = np.array([0.02, 0.05, 0.1, 0.2, 0.5])
    want = sppi_thresholds(R, S, alphas, 0.4, math.inf, n, N, backend="reference")
    L_flat, U_flat, offsets = _window_tables(n.astype(np.int64), N.astype(np.int64), 0.4)
    fn = _native.sppi_thresholds_f32 if dtype == np.float32 else _native.sppi_thresholds_f64
    for simd in (True, False):
        out = np.empty((R.shape[0], alphas.shape[0]), dtype=dtype)
        status = fn(R, n.astype(np.int64), S, N.astype(np.int64), alphas, L_flat, U_flat, offsets, math.inf, out, simd)
        assert status[0] == 0
        np.testing.assert_array_equal(out, want)


_HYP_ALPHAS = st.lists(st.sampled_from([1e-4, 0.01, 0.05, 0.1, 0.5, 0.9, 0.999]), min_size=1, max_size=4)


def _hyp_case(seed, B, n, extra):
    rng = np.random.default_rng(seed)
    N = n + 2 + extra  # includes the minimum N = n + 2
    R = rng.integers(0, 4, (B, n)).astype(np.float64)  # small integers: heavy ties
    S = rng.integers(0, 4, (B, N)).astype(np.float64)
    return R, S


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 5), n=st.integers(1, 8), extra=st.integers(0, 200),
       beta=st.sampled_from([0.1, 0.4, 0.8]), alphas=_HYP_ALPHAS)
def test_hypothesis_cpu_reference_single_agree(seed, B, n, extra, beta, alphas):
    R, S = _hyp_case(seed, B, n, extra)
    ref = sppi_thresholds(R, S, alphas, beta, backend="reference")
    np.testing.assert_array_equal(sppi_thresholds(R, S, alphas, beta, backend="cpu"), ref)
    single = np.stack([sppi_threshold(R[b], S[b], alphas, beta) for b in range(B)])
    np.testing.assert_array_equal(ref, single)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), B=st.integers(1, 2), n=st.integers(1, 6), extra=st.integers(0, 12),
       beta=st.sampled_from([0.1, 0.4, 0.8]), alphas=_HYP_ALPHAS)
def test_hypothesis_triton_agrees(seed, B, n, extra, beta, alphas):
    R, S = _hyp_case(seed, B, n, extra)
    ref = sppi_thresholds(R, S, alphas, beta, backend="reference")
    np.testing.assert_array_equal(sppi_thresholds(R, S, alphas, beta, backend="triton"), ref)


def test_torch_input_returns_torch():
    R = torch.rand(3, 15)
    S = torch.rand(3, 100)
    out = sppi_thresholds(R, S, [0.1], backend="cpu")
    assert isinstance(out, torch.Tensor) and out.shape == (3, 1)


@pytest.mark.parametrize("call,match", [
    (lambda: sppi_thresholds(np.full((2, 5), np.nan), np.ones((2, 20)), [0.1]), "NaN"),
    (lambda: sppi_thresholds(np.ones((2, 5)), np.ones((3, 20)), [0.1]), "same number of groups"),
    (lambda: sppi_thresholds(np.ones((2, 5)), np.ones((2, 6)), [0.1]), "n_synth"),
    (lambda: sppi_thresholds(np.ones((2, 5)), np.ones((2, 20)), [0.0]), "alphas"),
    (lambda: sppi_thresholds(np.ones((2, 5)), np.ones((2, 20)), [0.1], beta=0.0), "beta"),
    (lambda: sppi_thresholds(np.ones((2, 5)), np.ones((2, 20)), [0.1], real_lengths=[0, 5]), "real_lengths"),
    (lambda: sppi_threshold(np.ones(5), np.ones(20), 1.5), "alpha"),
    (lambda: sppi_threshold(np.ones((5, 1)), np.ones(20), 0.1), "real_scores"),
    (lambda: sppi_threshold(np.array([]), np.ones(20), 0.1), "real_scores"),
    (lambda: split_conformal_thresholds(np.ones(5), [0.1]), "scores"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_device_path_equals_cpu(backend):
    """CUDA tensors stay on the device and give the cpu backend's thresholds bit for bit
    (CPU twin: test_batched_equals_single_group_loop)."""
    rng = np.random.default_rng(21)
    B, n, N = 64, 15, 300
    R, S = rng.random((B, n)), rng.random((B, N))
    nl, Nl = rng.integers(5, n + 1, B), rng.integers(n + 2, N + 1, B)
    alphas = np.array([0.02, 0.1, 0.2])
    want = sppi_thresholds(R, S, alphas, 0.4, real_lengths=nl, synth_lengths=Nl, backend="cpu")
    got = sppi_thresholds(torch.from_numpy(R).cuda(), torch.from_numpy(S).cuda(), alphas, 0.4,
                          real_lengths=nl, synth_lengths=Nl, backend=backend)
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), want)
    want_sc = split_conformal_thresholds(R, alphas, lengths=nl, backend="cpu")
    got_sc = split_conformal_thresholds(torch.from_numpy(R).cuda(), alphas, lengths=nl, backend=backend)
    np.testing.assert_array_equal(got_sc.cpu().numpy(), want_sc)
    R[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN in group 3"):
        sppi_thresholds(torch.from_numpy(R).cuda(), torch.from_numpy(S).cuda(), alphas, backend=backend)
