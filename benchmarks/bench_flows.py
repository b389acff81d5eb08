"""Benchmarks for the discrete-score kernel (issue 5 acceptance; spec §9).

Run:  pytest benchmarks/bench_flows.py --benchmark-only -q   (threads pinned to BENCH_THREADS, default 2)

- cpu fused discrete_score at M = N = 20 000, d = 2 vs the best plain-torch formulation
  (logits from one matmul per query chunk, softmax, matmul) and vs upstream's per-data-point
  Python loop (one ODE step);
- peak-memory growth of one cpu evaluation (fresh subprocess, ru_maxrss);
- a 700-step Euler melt of 10 000 particles against 10 000 data points (fused integrate_discrete);
- class-conditional digits generation (issue 13): 900 images, the demo network size (ES MLP
  width 256, depth 3), vp_ode grid with 48 Heun steps (94 NFE), untrained weights (timing only).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from synthperf.ops.discrete_score import discrete_score, integrate_discrete

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
M = N = 20_000
D = 2
GAMMA = 0.05


@pytest.fixture(scope="module", autouse=True)
def _pin_threads():
    torch.set_num_threads(THREADS)
    with threadpool_limits(limits=THREADS):
        yield


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(M, D)).astype(np.float32), rng.normal(size=(N, D)).astype(np.float32)


def plain_torch_score(x: torch.Tensor, y: torch.Tensor, gamma: float, chunk: int = 2048) -> torch.Tensor:
    """Best plain-torch form: logits = (x y^T - |y|^2/2)/gamma per query chunk, softmax, matmul."""
    out = torch.empty_like(x)
    key_bias = -0.5 * (y * y).sum(1) / gamma
    for i in range(0, x.shape[0], chunk):
        q = x[i:i + chunk]
        p = torch.softmax(q @ y.T / gamma + key_bias, dim=1)
        out[i:i + chunk] = (p @ y - q) / gamma
    return out


def upstream_loop_score(x: torch.Tensor, y: torch.Tensor, gamma: float) -> torch.Tensor:
    """Upstream's formulation (spec §3): a Python loop over data points, clamped weights."""
    num = torch.zeros_like(x)
    den = torch.zeros(x.shape[0], 1, dtype=x.dtype)
    for j in range(y.shape[0]):
        diff = y[j][None, :] - x
        w = torch.exp(-0.5 * (diff * diff).sum(1, keepdim=True) / gamma).clamp_min(1e-30)
        num += w * diff / gamma
        den += w
    return num / den


def test_cpu_fused_stable(benchmark, data):
    x, y = data
    benchmark.pedantic(discrete_score, args=(x, y, GAMMA), kwargs={"backend": "cpu"}, rounds=5, iterations=1)


def test_cpu_fused_clamp(benchmark, data):
    x, y = data
    benchmark.pedantic(discrete_score, args=(x, y, GAMMA), kwargs={"backend": "cpu", "mode": "clamp"},
                       rounds=5, iterations=1)


def test_plain_torch(benchmark, data):
    x, y = (torch.from_numpy(a) for a in data)
    out = benchmark.pedantic(plain_torch_score, args=(x, y, GAMMA), rounds=5, iterations=1)
    ref = discrete_score(data[0], data[1], GAMMA, backend="cpu")
    assert np.abs(out.numpy() - ref).max() / np.abs(ref).max() < 1e-3


def test_upstream_loop_one_step(benchmark, data):
    x, y = (torch.from_numpy(a) for a in data)
    benchmark.pedantic(upstream_loop_score, args=(x, y, GAMMA), rounds=1, iterations=1)


def test_peak_memory_growth_mb():
    """Peak RSS growth of one cpu evaluation in a fresh process (must stay < 300 MB)."""
    code = textwrap.dedent(f"""
        import resource, numpy as np
        from threadpoolctl import threadpool_limits
        from synthperf.ops.discrete_score import discrete_score
        rng = np.random.default_rng(0)
        x = rng.normal(size=({M}, {D})).astype(np.float32); y = rng.normal(size=({N}, {D})).astype(np.float32)
        discrete_score(x[:10], y[:10], {GAMMA}, backend="cpu")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with threadpool_limits(limits={THREADS}):
            discrete_score(x, y, {GAMMA}, backend="cpu")
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
    """)
    growth = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    print(f"peak memory growth: {growth:.1f} MB")
    assert growth < 300


def test_melt_700_steps_10k(benchmark):
    """700-step Euler melt, 10 000 particles vs 10 000 data points, one fused C++ call (the melt's
    state is float64: z0 = s(0) W^T x is formed in float64)."""
    from synthperf.flows import DiscreteFlow, InflationSchedule, ifs_times, make_toy, melt

    x = make_toy("circles", 10_000, seed=0)
    sch, W = InflationSchedule.from_data(x, rho=2.0)
    flow = DiscreteFlow((x @ W).astype(np.float32), backend="cpu")
    times = ifs_times(701, 1e-2)
    benchmark.pedantic(melt, args=(flow, sch, W, x.astype(np.float32), times), kwargs={"save_every": 700},
                       rounds=1, iterations=1)


def test_digits_generation_900(benchmark):
    """Generation cost of :func:`synthperf.flows.digits.make_digits_synthetic` at the demo budget."""
    from synthperf.flows import InflationSchedule
    from synthperf.flows.digits import BUDGETS, digits_split, generate_digits
    from synthperf.flows.networks import IFsPrecond, ToyMLP

    x, _, _, _ = digits_split()
    xc = 2.0 * x - 1.0
    sch, W = InflationSchedule.from_data(xc - xc.mean(0))
    b = BUDGETS["demo"]
    torch.manual_seed(0)
    net = IFsPrecond(ToyMLP(64, width=b["width"], depth=b["depth"], fourier_features=0, num_classes=10), sch, W,
                     xi_min=1e-3 * sch.xi_star, data_mean=xc.mean(0)).eval()
    labels = np.repeat(np.arange(10), 90)
    traj = benchmark.pedantic(generate_digits, args=(net, labels), kwargs={"n_iters": b["n_iters"], "solver": b["solver"]},
                              rounds=2, iterations=1)
    assert np.isfinite(traj.tilde_xs[-1]).all()
