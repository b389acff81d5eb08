"""GPU benchmarks: the cuda and triton backends against plain torch on the same CUDA device.

Skipped without a CUDA device; the CPU twins of every case are bench_order_stats.py,
bench_sppi_thresholds.py and bench_flows.py (same shapes, same checks). Every timed call
ends with ``torch.cuda.synchronize()`` so the median is wall time of finished work.

Groups
- ``gpu_order_statistics``: B=3000 x n=1000, 6 ranks, float32 on the device: cuda, triton,
  ``torch.sort(dim=1)`` + gather, ``torch.kthvalue`` per rank.
- ``gpu_sppi_thresholds``: 3000 groups (n=15, N=1000), 6 alphas: cuda, triton vs torch sort.
- ``gpu_discrete_score``: M = N = 20 000, d = 2: triton fused kernel vs the best plain-torch
  formulation (chunked softmax attention).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CPU twins: "
                                                                      "bench_order_stats/sppi_thresholds/flows)")

B, N, RANKS = 3000, 1000, np.array([1, 15, 250, 500, 901, 1000])


def _synced(fn, *args, **kwargs):
    out = fn(*args, **kwargs)
    torch.cuda.synchronize()
    return out


@pytest.fixture(scope="module")
def x_gpu():
    g = torch.Generator(device="cuda").manual_seed(0)
    return torch.rand((B, N), generator=g, device="cuda", dtype=torch.float32)


def _torch_sort_gather(x):
    return torch.sort(x, dim=1).values[:, torch.as_tensor(RANKS - 1, device=x.device)]


def _torch_kthvalue(x):
    return torch.stack([torch.kthvalue(x, int(r), dim=1).values for r in RANKS], dim=1)


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.benchmark(group="gpu_order_statistics")
def test_order_statistics_gpu_backend(benchmark, x_gpu, backend):
    from synthperf.ops import order_statistics

    got = benchmark(_synced, order_statistics, x_gpu, RANKS, backend=backend)
    assert torch.equal(got, _torch_sort_gather(x_gpu))


@pytest.mark.benchmark(group="gpu_order_statistics")
def test_order_statistics_torch_sort(benchmark, x_gpu):
    benchmark(_synced, _torch_sort_gather, x_gpu)


@pytest.mark.benchmark(group="gpu_order_statistics")
def test_order_statistics_torch_kthvalue(benchmark, x_gpu):
    benchmark(_synced, _torch_kthvalue, x_gpu)


@pytest.fixture(scope="module")
def sppi_data():
    g = torch.Generator(device="cuda").manual_seed(1)
    return (torch.rand((3000, 15), generator=g, device="cuda", dtype=torch.float64),
            torch.rand((3000, 1000), generator=g, device="cuda", dtype=torch.float64))


ALPHAS = np.array([0.02, 0.03, 0.05, 0.1, 0.15, 0.2])


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.benchmark(group="gpu_sppi_thresholds")
def test_sppi_thresholds_gpu_backend(benchmark, sppi_data, backend):
    from synthperf.conformal import sppi_thresholds

    R, S = sppi_data
    got = benchmark(_synced, sppi_thresholds, R, S, ALPHAS, 0.4, backend=backend)
    ref = sppi_thresholds(R.cpu().numpy(), S.cpu().numpy(), ALPHAS, 0.4, backend="cpu")
    got_np = got.cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_array_equal(got_np, ref)


@pytest.mark.benchmark(group="gpu_sppi_thresholds")
def test_sppi_thresholds_torch_sort(benchmark, sppi_data):
    R, S = sppi_data

    def sort_both(r, s):
        return torch.sort(r, dim=1).values, torch.sort(s, dim=1).values

    benchmark(_synced, sort_both, R, S)


@pytest.fixture(scope="module")
def score_data():
    rng = np.random.default_rng(0)
    return (torch.from_numpy(rng.normal(size=(20_000, 2)).astype(np.float32)).cuda(),
            torch.from_numpy(rng.normal(size=(20_000, 2)).astype(np.float32)).cuda())


def _plain_torch_score(x, y, gamma, chunk=4096):
    out = torch.empty_like(x)
    key_bias = -0.5 * (y * y).sum(1) / gamma
    for i in range(0, x.shape[0], chunk):
        q = x[i:i + chunk]
        p = torch.softmax(q @ y.T / gamma + key_bias, dim=1)
        out[i:i + chunk] = (p @ y - q) / gamma
    return out


@pytest.mark.benchmark(group="gpu_discrete_score")
def test_discrete_score_triton(benchmark, score_data):
    from synthperf.ops.discrete_score import discrete_score

    x, y = score_data
    got = benchmark(_synced, discrete_score, x, y, 0.05, backend="triton")
    ref = _plain_torch_score(x.double(), y.double(), 0.05)
    assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < 1e-3


@pytest.mark.benchmark(group="gpu_discrete_score")
def test_discrete_score_plain_torch(benchmark, score_data):
    x, y = score_data
    benchmark(_synced, _plain_torch_score, x, y, 0.05)
