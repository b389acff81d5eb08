"""Demo wall time quiet vs with one busy process per core (issue 13, item 5).

    python benchmarks/demo_contention.py [--quick] [--busy N] [--out DIR] [-- extra demo args]

Runs ``synthperf demo`` twice into fresh folders: once on a quiet machine, once with ``N``
(default: one per available core) ``while True: pass`` processes beside it, and prints both
wall times and their ratio. Not collected by pytest (a timing, not a test); it installs nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(out: Path, extra: list[str]) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "synthperf", "--no-progress", "demo", "--out", str(out), *extra],
                   check=True, env={**os.environ, "SYNTHPERF_PROGRESS": "0"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--busy", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "synthperf_contention")
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()
    extra = (["--quick"] if args.quick else []) + args.extra
    quiet = _run(args.out / "quiet", extra)
    print(f"quiet: {quiet:.1f} s", flush=True)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        time.sleep(1.0)
        busy = _run(args.out / "busy", extra)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    print(f"with {args.busy} busy process(es): {busy:.1f} s; ratio {busy / quiet:.2f}x", flush=True)


if __name__ == "__main__":
    main()
