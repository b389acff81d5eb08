"""Benchmark of the selective-prediction KNN hot path (issue 4 acceptance).

``EuclideanScore(k=5, stat="mean")``: fit on a 50 000 x 128 reference with 5 000 calibration
rows, ``set_threshold(0.95)``, then ``select`` 10 000 queries; float32 Gaussian, exact search,
2 threads. Target <= 2 s (seapig 0.3.0: ~15.5 s approximate; brute-force torch ~4.8 s).

Run: ``pytest benchmarks/bench_selective_knn.py --benchmark-only`` (or ``python benchmarks/bench_selective_knn.py``).
Extra rows: the same with leave-one-out self-scores (no calibration set) and brute-force torch.
"""
from __future__ import annotations

import os
import time

import torch

THREADS = int(os.environ.get("SYNTHPERF_BENCH_THREADS", "2"))
N_REF, N_CAL, N_QUERY, DIM, K = 50_000, 5_000, 10_000, 128, 5


def _pin_threads() -> None:
    torch.set_num_threads(THREADS)
    try:
        import faiss

        faiss.omp_set_num_threads(THREADS)
    except ImportError:  # the benchmark then fails with synthperf's own faiss message
        pass


def _data():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(N_REF, DIM, generator=g), torch.randn(N_CAL, DIM, generator=g),
            torch.randn(N_QUERY, DIM, generator=g))


def fit_select(ref, cal, query, *, backend=None):
    from synthperf.selective import EuclideanScore

    score = EuclideanScore(k=K, stat="mean", backend=backend)
    score.fit(X=ref, Y=cal)
    score.set_threshold(q=0.95)
    return score.select(query)


def fit_loo_select(ref, query):
    from synthperf.selective import EuclideanScore

    score = EuclideanScore(k=K, stat="mean").fit(X=ref)
    score.set_threshold(q=0.95)
    return score.select(query)


def torch_brute_force(ref, cal, query, chunk: int = 2048):
    """Exact baseline: ||q||² - 2 q·r + ||r||² by addmm, then topk, in chunks."""
    rn = (ref * ref).sum(1)

    def score(x):
        out = []
        for s in range(0, x.shape[0], chunk):
            d2 = torch.addmm(rn[None, :], x[s:s + chunk], ref.T, alpha=-2.0)
            d2 += (x[s:s + chunk] ** 2).sum(1, keepdim=True)
            out.append(d2.clamp_min_(0).topk(K, dim=1, largest=False).values.mean(1).sqrt())
        return torch.cat(out)

    thr = torch.quantile(score(cal), 0.95)
    s = score(query)
    return {"score": s, "selected": s < thr}


def test_bench_fit_select(benchmark):
    from synthperf import disable_progress

    disable_progress()
    _pin_threads()
    ref, cal, query = _data()
    out = benchmark.pedantic(fit_select, args=(ref, cal, query), rounds=3, iterations=1, warmup_rounds=0)
    assert out["score"].shape == (N_QUERY,)
    acc = out["selected"].float().mean().item()
    assert 0.9 < acc < 0.99  # same distribution as the calibration set: ~95 % accepted


def test_bench_fit_loo_select(benchmark):
    from synthperf import disable_progress

    disable_progress()
    _pin_threads()
    ref, _, query = _data()
    out = benchmark.pedantic(fit_loo_select, args=(ref, query), rounds=1, iterations=1, warmup_rounds=0)
    assert out["score"].shape == (N_QUERY,)


def test_bench_torch_brute_force(benchmark):
    _pin_threads()
    ref, cal, query = _data()
    out = benchmark.pedantic(torch_brute_force, args=(ref, cal, query), rounds=3, iterations=1, warmup_rounds=0)
    assert out["score"].shape == (N_QUERY,)


if __name__ == "__main__":
    from synthperf import disable_progress

    disable_progress()
    _pin_threads()
    ref, cal, query = _data()
    for name, fn in (("synthperf faiss exact", lambda: fit_select(ref, cal, query)),
                     ("torch brute force", lambda: torch_brute_force(ref, cal, query))):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(f"{name:24s} median {sorted(times)[1]:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")
