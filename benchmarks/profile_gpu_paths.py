"""Where the time goes on a CUDA device (a developer tool, not a test): times each stage of
``sppi_thresholds`` / ``order_statistics`` on device tensors with CUDA synchronisation.

Run on a GPU machine: ``python benchmarks/profile_gpu_paths.py``.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from synthperf._validation import first_nan_row
from synthperf.conformal import sppi_thresholds
from synthperf.conformal.thresholds import _window_tables
from synthperf.ops import order_statistics
from synthperf.ops.order_stats import _run_gpu


def timed(label, fn, reps=20):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    print(f"{label:55s} {(time.perf_counter() - t0) / reps * 1e3:9.3f} ms")


def main() -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    x32 = torch.rand((3000, 1000), generator=g, device="cuda")
    R = torch.rand((3000, 15), generator=g, device="cuda", dtype=torch.float64)
    S = torch.rand((3000, 1000), generator=g, device="cuda", dtype=torch.float64)
    ranks = np.array([1, 15, 250, 500, 901, 1000])
    n, N = np.full(3000, 15), np.full(3000, 1000)
    alphas = np.array([0.02, 0.03, 0.05, 0.1, 0.15, 0.2])
    l32 = np.full(3000, 1000)
    timed("torch.sort f32 3000x1000", lambda: torch.sort(x32, dim=1))
    timed("first_nan_row f32 3000x1000", lambda: first_nan_row(x32, l32))
    for be in ("cuda", "triton"):
        timed(f"_run_gpu only ({be}) f32 3000x1000 A=6", lambda: _run_gpu(x32, ranks[None], l32, be))
        timed(f"order_statistics ({be}) f32 3000x1000 A=6", lambda: order_statistics(x32, ranks, backend=be))
        timed(f"_run_gpu ({be}) f64 3000x15 A=12", lambda: _run_gpu(R, np.tile([1, 2, 3, 5, 8, 13], 2)[None], n, be))
        timed(f"_run_gpu ({be}) f64 3000x1000 A=6", lambda: _run_gpu(S, ranks[None], N, be))
        timed(f"sppi_thresholds ({be}) 3000 groups", lambda: sppi_thresholds(R, S, alphas, 0.4, backend=be))
    timed("_window_tables (host)", lambda: _window_tables(n, N, 0.4))
    for rows, cols in ((100, 100_000), (20, 1_000_000)):
        x = torch.rand((rows, cols), generator=g, device="cuda")
        timed(f"torch.sort f32 {rows}x{cols}", lambda: torch.sort(x, dim=1))
        for be in ("cuda", "triton"):
            timed(f"order_statistics ({be}) f32 {rows}x{cols} A=6",
                  lambda: order_statistics(x, [1, 10, 100, 1000, cols // 2, cols], backend=be))


if __name__ == "__main__":
    main()
