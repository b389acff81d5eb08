"""Benchmark of ``run_sppi_trials`` on ImageNet-shaped generated data (issue 3 acceptance).

30 classes, 1000-way float32 softmax, 15000 test points, n = 15 (15 per class), N = 1000
(1000 per class), 6 alphas, 3 methods (SC, SC (synth), SPI), 100 trials; marginal and
class-conditional. The timing includes the one-time per-image sort (the APS precompute).
Target: <= 3 s per config on 2 threads. Upstream: ~56 s per trial; the vectorised-numpy
baseline below (pool sorted once, then per trial: sort, gather, broadcast compare) is the
comparison row.

Run: ``pytest benchmarks/bench_sppi_trials.py --benchmark-only`` or ``python benchmarks/bench_sppi_trials.py``.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

THREADS = int(os.environ.get("SYNTHPERF_BENCH_THREADS", "2"))
ALPHAS = [0.02, 0.03, 0.05, 0.1, 0.15, 0.2]
METHODS = ["SC", "SC (synth)", "SPI"]
N_TRIALS = int(os.environ.get("SYNTHPERF_BENCH_TRIALS", "100"))


def _pin_threads() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    try:
        import numba

        numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(THREADS)
    except ImportError:
        pass


def make_data():
    from synthperf.conformal.data import generate_imagenet_like

    real = generate_imagenet_like(n_classes=30, n_per_class=520, n_labels=1000, seed=1)
    synth = generate_imagenet_like(n_classes=30, n_per_class=1000, n_labels=1000, seed=2, shift=0.3)
    return real, synth


def config(real, synth, class_conditional: bool) -> dict:
    return dict(real=real, synth=synth, alpha=ALPHAS, methods=METHODS, n_seeds=N_TRIALS, seed=42,
                n_cal=450 if class_conditional else 15, n_test=15000,
                n_cal_maj=30000 if class_conditional else 1000, class_conditional=class_conditional,
                dataset="ImageNet_min_subset_maj_gen", beta=0.4)


def run_synthperf(cfg: dict):
    from synthperf.conformal.trials import run_sppi_trials

    return run_sppi_trials(cfg)


def _pick(sorted_real, r, n):
    return -np.inf if r == 0 else (1.0 if r > n else sorted_real[r - 1])


def run_numpy_baseline(cfg: dict):
    """A careful vectorised-numpy implementation (marginal mode): sort the image pool once
    (argsort + cumsum for all candidate labels), then per trial sort the calibration rows,
    gather the order statistics and compare all (test point, label, threshold) at once."""
    from synthperf.conformal.trials import _sample_all, trial_seeds
    from synthperf.conformal.windows import transport_windows

    real, synth = cfg["real"], cfg["synth"]
    cands = np.unique(real.labels)

    def precompute(p, labels):
        order = np.argsort(-p, axis=1)
        z = np.round(np.cumsum(np.take_along_axis(p, order, axis=1), axis=1), 9)
        inv = np.empty_like(order)
        np.put_along_axis(inv, order, np.broadcast_to(np.arange(p.shape[1]), p.shape), axis=1)
        rank = np.take_along_axis(inv, labels, axis=1)
        return np.take_along_axis(z, rank, axis=1), np.take_along_axis(p, labels, axis=1)

    Zr, Pr = precompute(real.probs, np.broadcast_to(cands, (len(real), cands.size)))
    Zs, Ps = precompute(synth.probs, synth.labels[:, None])
    col = np.searchsorted(cands, real.labels)
    seeds = trial_seeds(cfg["seed"], cfg["n_seeds"])
    from synthperf.conformal.trials import _config

    c = _config(cfg)
    cal, test, syn, e_cal, e_test, e_syn = _sample_all(c, seeds, draw_eps=True)
    aps = lambda z, p, e: np.maximum((z.astype(np.float64) - p.astype(np.float64) * e).astype(np.float32), 0)
    n, N = cal.shape[1], syn.shape[1]
    L, U = transport_windows(n, N, c.beta)
    rows = []
    for t in range(len(seeds)):
        rs = np.sort(aps(Zr[cal[t], col[cal[t]]], Pr[cal[t], col[cal[t]]], e_cal[t]))
        ss = np.sort(aps(Zs[syn[t], 0], Ps[syn[t], 0], e_syn[t]))
        q = []
        for a in ALPHAS:
            lv = (1 - a) * (1 + 1 / n)
            q.append(1.0 if lv > 1 else rs[math.ceil(lv * n) - 1])
        for a in ALPHAS:
            lv = (1 - a) * (1 + 1 / N)
            q.append(1.0 if lv > 1 else ss[math.ceil(lv * N) - 1])
        for a in ALPHAS:
            la, lp = (1 - a) * (1 + 1 / N), (1 - a) * (1 + 1 / N + 1 / (N * (1 - a)))
            K = math.ceil(N * la)
            qs = 1.0 if lp > 1 else ss[math.ceil(N * lp) - 1]
            ok_u, ok_l = np.flatnonzero((U <= K) | (U < 0)), np.flatnonzero((L <= K) | (L < 0))
            rp, rm = (ok_u[-1] + 1 if ok_u.size else 0), (ok_l[-1] + 1 if ok_l.size else 0)
            q.append(max(min(qs, _pick(rs, rm, n)), _pick(rs, rp, n)))
        ts = aps(Zr[test[t]], Pr[test[t]], e_test[t][:, None])  # [n_test, C]
        inside = ts[:, None, :] <= np.asarray(q, dtype=np.float64)[None, :, None]
        rows.append((inside[np.arange(ts.shape[0]), :, col[test[t]]].mean(0), inside.sum(2).mean(0)))
    return rows


def test_bench_sppi_trials_marginal(benchmark):
    _pin_threads()
    real, synth = make_data()
    cfg = config(real, synth, False)
    run_synthperf(dict(cfg, n_seeds=2))  # compile/cache the numba kernels outside the timing
    df = benchmark.pedantic(run_synthperf, args=(cfg,), rounds=3, iterations=1, warmup_rounds=0)
    assert len(df) == N_TRIALS * len(METHODS) * len(ALPHAS)


def test_bench_sppi_trials_class_conditional(benchmark):
    _pin_threads()
    real, synth = make_data()
    cfg = config(real, synth, True)
    run_synthperf(dict(cfg, n_seeds=2))
    df = benchmark.pedantic(run_synthperf, args=(cfg,), rounds=3, iterations=1, warmup_rounds=0)
    assert len(df) == N_TRIALS * len(METHODS) * len(ALPHAS) * 31


def test_bench_numpy_baseline_marginal(benchmark):
    _pin_threads()
    real, synth = make_data()
    cfg = config(real, synth, False)
    rows = benchmark.pedantic(run_numpy_baseline, args=(cfg,), rounds=1, iterations=1, warmup_rounds=0)
    df = run_synthperf(dict(cfg, n_seeds=3))  # same numbers as synthperf
    for t in range(3):
        np.testing.assert_array_equal(rows[t][0], df[df.trial == t]["Coverage"].to_numpy())


if __name__ == "__main__":
    _pin_threads()
    real, synth = make_data()
    for cc in (False, True):
        cfg = config(real, synth, cc)
        run_synthperf(dict(cfg, n_seeds=2))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            run_synthperf(cfg)
            times.append(time.perf_counter() - t0)
        print(f"synthperf run_sppi_trials {'class-conditional' if cc else 'marginal'}: "
              f"median {np.median(times):.2f} s for {N_TRIALS} trials")
    t0 = time.perf_counter()
    run_numpy_baseline(config(real, synth, False))
    print(f"vectorised numpy baseline (marginal): {time.perf_counter() - t0:.2f} s for {N_TRIALS} trials")
