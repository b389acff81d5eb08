"""Benchmark of the selective-prediction KNN hot path (issue 15 item 3 acceptance).

``EuclideanScore(k=5, stat="mean")``: fit on a 50 000 x 128 reference with 5 000 calibration
rows, ``set_threshold(0.95)``, then ``select`` 10 000 queries; float32 Gaussian, exact search
(certified float64 re-ranking, :mod:`synthperf.selective.knn_exact`), threads pinned
(SYNTHPERF_BENCH_THREADS, default 2). Target <= 0.6 s median on 2 cores.

The matrix work is 15 000 x 50 000 x 128 multiply-adds = 9.6e10 FMA = 1.92e11 FLOP; the
``torch.mm`` row times one plain float32 GEMM of exactly that size (15 000 x 128 @ 128 x 50 000,
in 1 024-row blocks so its output fits in memory as the engine's does), and the script prints
the GFLOP/s of both, so the distance to the GEMM limit is visible.

Run: ``pytest benchmarks/bench_selective_knn.py --benchmark-only`` or
``python benchmarks/bench_selective_knn.py [--rounds N]``. Nothing is installed; seapig 0.3.0
is compared by ``benchmarks/bench_selective_knn_seapig.py`` (side venv).
"""
from __future__ import annotations

import argparse
import os
import time

import torch

THREADS = int(os.environ.get("SYNTHPERF_BENCH_THREADS", "2"))
N_REF, N_CAL, N_QUERY, DIM, K = 50_000, 5_000, 10_000, 128, 5
FLOP = 2.0 * N_REF * (N_CAL + N_QUERY) * DIM


def pin_threads(n: int = THREADS) -> None:
    """Pin torch/OpenMP/BLAS/faiss threads through synthperf's helper (no sampling)."""
    os.environ["SYNTHPERF_NUM_THREADS"] = str(n)
    from synthperf._threads import configure_threads

    configure_threads(n)


def make_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N_REF, DIM, generator=g), torch.randn(N_CAL, DIM, generator=g),
            torch.randn(N_QUERY, DIM, generator=g))


def fit_select(ref, cal, query, *, engine: str = "auto"):
    from synthperf.selective import EuclideanScore

    score = EuclideanScore(k=K, stat="mean", engine=engine)
    score.fit(X=ref, Y=cal)
    score.set_threshold(q=0.95)
    return score.select(query)


def plain_mm(ref, cal, query, block: int = 1024):
    """One float32 GEMM of the workload's size (cross terms only, no selection)."""
    q = torch.cat([cal, query])
    rt = ref.T.contiguous()
    out = torch.empty(block, ref.shape[0])
    for s in range(0, q.shape[0], block):
        e = min(s + block, q.shape[0])
        torch.mm(q[s:e], rt, out=out[:e - s])
    return out


def check_exact(out, ref, cal, query) -> float:
    """Max relative error of the selected scores vs a float64 brute force (first 500 queries)."""
    def brute(x):
        return torch.cdist(x.double(), ref.double()).topk(K, largest=False).values.mean(1)

    want = brute(query[:500])
    return float(((out["score"][:500].double() - want).abs() / want).max())


def _median(fn, rounds: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], times


def test_bench_fit_select(benchmark):
    from synthperf import disable_progress

    disable_progress()
    pin_threads()
    ref, cal, query = make_data()
    out = benchmark.pedantic(fit_select, args=(ref, cal, query), rounds=3, iterations=1, warmup_rounds=1)
    assert out["score"].shape == (N_QUERY,)
    acc = out["selected"].float().mean().item()
    assert 0.9 < acc < 0.99  # same distribution as the calibration set: ~95 % accepted
    assert check_exact(out, ref, cal, query) < 1e-4


def test_bench_plain_torch_mm(benchmark):
    pin_threads()
    ref, cal, query = make_data()
    benchmark.pedantic(plain_mm, args=(ref, cal, query), rounds=3, iterations=1, warmup_rounds=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engine", choices=("auto", "torch", "faiss"), default="auto")
    args = ap.parse_args()
    from synthperf import disable_progress

    disable_progress()
    pin_threads()
    ref, cal, query = make_data()
    fit_select(ref, cal, query, engine=args.engine)  # warm-up (allocator, MKL)
    plain_mm(ref, cal, query)
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), threads {THREADS}")
    t_knn, runs = _median(lambda: fit_select(ref, cal, query, engine=args.engine), args.rounds)
    t_mm, runs_mm = _median(lambda: plain_mm(ref, cal, query), args.rounds)
    err = check_exact(fit_select(ref, cal, query, engine=args.engine), ref, cal, query)
    print(f"synthperf EuclideanScore fit+select ({args.engine}) median {t_knn:.3f} s  "
          f"({FLOP / t_knn / 1e9:.1f} GFLOP/s; runs {', '.join(f'{t:.3f}' for t in runs)})")
    print(f"plain torch.mm same size          median {t_mm:.3f} s  "
          f"({FLOP / t_mm / 1e9:.1f} GFLOP/s; runs {', '.join(f'{t:.3f}' for t in runs_mm)})")
    print(f"KNN / plain GEMM time: {t_knn / t_mm:.2f}x   max rel. error vs float64 brute force: {err:.2e}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
