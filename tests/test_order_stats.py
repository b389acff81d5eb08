"""Parity of every order-statistics backend with the numpy reference (Foundation kernel)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import synthperf
from synthperf import _native
from synthperf.ops import order_statistics

CPU_BACKENDS = ["reference", "cpu", "triton"]  # triton runs under TRITON_INTERPRET=1 here


def _case(rng, B, n, A, dtype, ragged, per_row, ties):
    x = rng.standard_normal((B, n)).astype(dtype)
    if ties:
        x = np.round(x * 2) / 2  # many exact ties
        x[:, : max(1, n // 4)] = 0.0
        if n > 1:
            x[:, -1] = -0.0
    lengths = rng.integers(1, n + 1, B) if ragged else np.full(B, n)
    if ragged:
        for b in range(B):
            x[b, lengths[b]:] = np.nan  # padding is never read
    if per_row:
        ranks = np.stack([rng.integers(1, lengths[b] + 1, A) for b in range(B)])
    else:
        ranks = rng.integers(1, lengths.min() + 1, A)
    return x, ranks, lengths


def _expected(x, ranks, lengths):
    r = ranks if ranks.ndim == 2 else np.broadcast_to(ranks, (x.shape[0], ranks.shape[0]))
    return np.stack([np.sort(x[b, : lengths[b]])[r[b] - 1] for b in range(x.shape[0])])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ragged,per_row,ties", [(False, False, False), (True, True, False), (True, False, True), (False, True, True)])
def test_backend_matches_reference(backend, dtype, ragged, per_row, ties):
    rng = np.random.default_rng([7, ragged, per_row, ties, dtype == np.float32])
    B = 4 if backend == "triton" else 13
    x, ranks, lengths = _case(rng, B=B, n=37, A=5, dtype=dtype, ragged=ragged, per_row=per_row, ties=ties)
    got = order_statistics(x, ranks, lengths if ragged else None, backend=backend)
    assert got.dtype == dtype and got.shape == (B, 5)
    np.testing.assert_array_equal(got, _expected(x, ranks, lengths))


@pytest.mark.parametrize("algo", ["bitwise", "radix"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpu_twins_of_gpu_algorithms(dtype, algo):
    """The GPU algorithms (device_math.h) executed by the C++ core on the CPU: bitwise
    selection (Triton kernel) and radix-digit selection (CUDA kernel)."""
    rng = np.random.default_rng(3)
    x, ranks, lengths = _case(rng, B=20, n=65, A=4, dtype=dtype, ragged=True, per_row=True, ties=True)
    x[0, 0] = np.inf
    x[1, 0] = -np.inf
    out = np.empty((20, 4), dtype=dtype)
    fn = getattr(_native, f"order_statistics_{algo}_" + ("f32" if dtype == np.float32 else "f64"))
    assert fn(np.ascontiguousarray(x), lengths.astype(np.int64), ranks.astype(np.int64), out)[0] == 0
    np.testing.assert_array_equal(out, _expected(x, ranks, lengths))


def _hypothesis_case(B, n, A, seed, f32, ends):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    x = rng.integers(-3, 4, (B, n)).astype(dtype)  # small integers: heavy ties
    lengths = rng.integers(1, n + 1, B)
    if ends:  # ranks at both ends of each row
        ranks = np.stack([np.resize([1, lengths[b]], A) for b in range(B)])
    else:
        ranks = np.stack([rng.integers(1, lengths[b] + 1, A) for b in range(B)])
    return x, ranks, lengths, _expected(x, ranks, lengths)


_CASES = dict(B=st.integers(1, 6), n=st.integers(1, 40), A=st.integers(1, 5), seed=st.integers(0, 2**31 - 1),
              f32=st.booleans(), ends=st.booleans())


@settings(max_examples=60, deadline=None)
@given(**_CASES)
def test_hypothesis_cpu(B, n, A, seed, f32, ends):
    x, ranks, lengths, want = _hypothesis_case(B, n, A, seed, f32, ends)
    np.testing.assert_array_equal(order_statistics(x, ranks, lengths, backend="cpu"), want)


@settings(max_examples=10, deadline=None)  # the Triton interpreter runs each program in Python
@given(**{**_CASES, "B": st.integers(1, 2)})
def test_hypothesis_triton(B, n, A, seed, f32, ends):
    x, ranks, lengths, want = _hypothesis_case(B, n, A, seed, f32, ends)
    np.testing.assert_array_equal(order_statistics(x, ranks, lengths, backend="triton"), want)


def test_length_one_rows_and_extreme_ranks():
    x = np.array([[5.0, 1.0, 3.0], [2.0, np.nan, np.nan]])
    lengths = np.array([3, 1])
    got = order_statistics(x, np.array([[1, 3], [1, 1]]), lengths, backend="cpu")
    np.testing.assert_array_equal(got, [[1.0, 5.0], [2.0, 2.0]])


def test_torch_in_torch_out():
    x = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float32)
    got = order_statistics(x, [2], backend="cpu")
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    assert got.tolist() == [[2.0]]


def test_empty_batch():
    got = order_statistics(np.empty((0, 4)), [1, 2], backend="cpu")
    assert got.shape == (0, 2)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_nan_rejected(backend):
    x = np.array([[1.0, np.nan, 3.0]])
    with pytest.raises(ValueError, match="NaN"):
        order_statistics(x, [1], backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("rank", [0, 4])
def test_rank_out_of_range(backend, rank):
    with pytest.raises(ValueError, match="ranks out of range"):
        order_statistics(np.ones((2, 3)), [rank], backend=backend)


def test_bad_inputs():
    with pytest.raises(ValueError, match="2-D"):
        order_statistics(np.ones(3), [1])
    with pytest.raises(ValueError, match="no columns"):
        order_statistics(np.ones((2, 0)), [1])
    with pytest.raises(TypeError, match="integers"):
        order_statistics(np.ones((2, 3)), [1.5])
    with pytest.raises(TypeError, match="real numbers"):
        order_statistics(np.array([["a", "b"]]), [1])
    with pytest.raises(ValueError, match="lengths"):
        order_statistics(np.ones((2, 3)), [1], lengths=[1, 4])
    with pytest.raises(ValueError, match="ranks has shape"):
        order_statistics(np.ones((2, 3)), np.ones((3, 1), dtype=int))
    with pytest.raises(ValueError, match="unknown backend"):
        order_statistics(np.ones((2, 3)), [1], backend="tpu")


def test_cuda_requested_without_gpu():
    if "cuda" in synthperf.available_backends():
        pytest.skip("a CUDA device is present")
    with pytest.raises(synthperf.BackendUnavailableError, match="cuda"):
        order_statistics(np.ones((2, 3)), [1], backend="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("n", [1000, 7000])  # 7000 float64: past the shared-memory row cache / one Triton tile
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_backends_match_reference(backend, dtype, n):
    """CPU twins: test_cpu_twins_of_gpu_algorithms and the triton cases of
    test_backend_matches_reference (interpreter)."""
    rng = np.random.default_rng(11)
    x, ranks, lengths = _case(rng, B=300 if n == 1000 else 40, n=n, A=6, dtype=np.float64, ragged=True,
                              per_row=True, ties=True)
    xt = torch.from_numpy(x).to(dtype).cuda()
    got = order_statistics(xt, ranks, lengths, backend=backend)
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), _expected(xt.cpu().numpy(), ranks, lengths))


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_device_validation(backend):
    """CUDA tensors are validated on the device: NaN in a valid entry and bad ranks raise,
    NaN in padding is ignored (CPU twin: test_nan_rejected / test_rank_out_of_range)."""
    x = torch.tensor([[1.0, float("nan"), 3.0], [2.0, 1.0, float("nan")]], device="cuda")
    with pytest.raises(ValueError, match="NaN in row 0"):
        order_statistics(x, [1], backend=backend)
    got = order_statistics(x[1:], [1, 2], [2], backend=backend)
    assert got.is_cuda and got.cpu().tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="ranks out of range"):
        order_statistics(torch.ones((2, 3), device="cuda"), [4], backend=backend)
