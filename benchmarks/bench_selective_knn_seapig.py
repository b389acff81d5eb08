"""synthperf vs seapig 0.3.0 on the issue-15 KNN workload, same inputs, same run.

``EuclideanScore(k=5, stat="mean")`` fit on 50 000 x 128 reference + 5 000 calibration rows,
``set_threshold(0.95)``, ``select`` 10 000 queries (float32 Gaussian, seed 0). The inputs are
saved once as ``.npy`` in a temporary folder; seapig runs in the python of a side virtual
environment (``--seapig-python``, default ``/work/seapig-venv/bin/python``, which must hold
``seapig==0.3.0``, torch and faiss-cpu: this script installs nothing) through a subprocess,
with the same thread count. Prints both medians, the ratio, the selection agreement and the
1-minute load average before and after.

Run: ``python benchmarks/bench_selective_knn_seapig.py [--rounds 3] [--seapig-python PATH]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_selective_knn as bench  # noqa: E402

PEER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np, torch, faiss
    n = int(sys.argv[2]); rounds = int(sys.argv[3])
    torch.set_num_threads(n); faiss.omp_set_num_threads(n)
    from seapig.scores import EuclideanScore
    d = sys.argv[1]
    ref, cal, q = (torch.from_numpy(np.load(os.path.join(d, f + ".npy"))) for f in ("ref", "cal", "query"))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        s = EuclideanScore(k=5, stat="mean")
        s.fit(ref=ref, cal=cal)
        s.set_threshold(0.95)
        out = s.select(query=q)
        times.append(time.perf_counter() - t0)
    np.save(os.path.join(d, "peer_score.npy"), out["score"].float().numpy())
    np.save(os.path.join(d, "peer_selected.npy"), out["selected"].numpy())
    print(json.dumps({"times": times}))
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seapig-python", default="/work/seapig-venv/bin/python")
    args = ap.parse_args()
    if not Path(args.seapig_python).is_file():
        sys.exit(f"error: --seapig-python {args.seapig_python} does not exist (create the side venv with "
                 "torch==2.13.0, seapig==0.3.0 and faiss-cpu first)")
    from synthperf import disable_progress

    disable_progress()
    bench.pin_threads()
    ref, cal, query = bench.make_data()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in (("ref", ref), ("cal", cal), ("query", query)):
            np.save(Path(tmp) / f"{name}.npy", arr.numpy())
        env = dict(os.environ, OMP_NUM_THREADS=str(bench.THREADS), MKL_NUM_THREADS=str(bench.THREADS))
        env.pop("PYTHONPATH", None)
        res = subprocess.run([args.seapig_python, "-c", PEER, tmp, str(bench.THREADS), str(args.rounds)],
                             capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            sys.exit(f"error: the seapig run failed:\n{res.stderr[-2000:]}")
        peer = json.loads(res.stdout.strip().splitlines()[-1])["times"]
        peer_sel = np.load(Path(tmp) / "peer_selected.npy")
        peer_score = np.load(Path(tmp) / "peer_score.npy")
    bench.fit_select(ref, cal, query)  # warm-up
    t_ours, ours = bench._median(lambda: bench.fit_select(ref, cal, query), max(3, args.rounds))
    out = bench.fit_select(ref, cal, query)
    t_peer = sorted(peer)[len(peer) // 2]
    agree = float((out["selected"].numpy() == peer_sel).mean())
    rel = np.abs(out["score"].numpy() - peer_score) / np.abs(out["score"].numpy())
    print(f"threads {bench.THREADS}; load average (1 min) before {load0:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"seapig 0.3.0 fit+select median {t_peer:.3f} s  (runs {', '.join(f'{t:.3f}' for t in peer)})")
    print(f"synthperf    fit+select median {t_ours:.3f} s  (runs {', '.join(f'{t:.3f}' for t in ours)}; "
          f"{bench.FLOP / t_ours / 1e9:.1f} GFLOP/s)")
    print(f"ratio seapig / synthperf: {t_peer / t_ours:.1f}x")
    print(f"selections equal to seapig's: {agree:.4f} (seapig's HNSW is approximate); "
          f"score rel. diff median {np.median(rel):.2e}, max {rel.max():.2e}")


if __name__ == "__main__":
    main()
