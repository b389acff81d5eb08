"""Kill-and-resume: SIGKILL a `run` subprocess midway, re-run, and compare with an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from synthperf.experiments import load_results, run_experiment
from synthperf.experiments.store import chunk_files

from .conftest import frame_equal

CONFIG = {"experiment": "sppi", "name": "resume", "data": {"kind": "imagenet_like", "n_classes": 5,
                                                            "n_per_class": 200, "n_labels": 40},
          "alpha": [0.05, 0.1, 0.2], "methods": ["SC", "SC (synth)", "SPI"], "n_seeds": 160, "n_cal": 20,
          "n_test": 300, "n_cal_maj": 400, "chunk_trials": 1}


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "killed"
    env = {**os.environ, "SYNTHPERF_PROGRESS": "0"}
    code = "from synthperf.experiments.cli import app; app()"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(cfg), "-o", str(out), "--no-report"], env=env)
    deadline = time.time() + 120
    while len(chunk_files(out)) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(chunk_files(out))
    assert 0 < done < 160, f"the run was not killed midway ({done} of 160 chunks)"
    s = run_experiment(cfg, out, report=False)  # resume: only the missing chunks
    assert s.computed == 160 - done and s.chunks == 160
    again = run_experiment(cfg, out, report=False)
    assert again.computed == 0
    ref = tmp_path / "uninterrupted"
    run_experiment(cfg, ref, report=False)
    frame_equal(load_results(out), load_results(ref))
    # a stray temporary (a chunk killed mid-write) is ignored by the loader
    (out / "points" / "p0000" / "chunks" / ".trials_000000_000001.parquet.x.tmp").write_bytes(b"partial")
    frame_equal(load_results(out), load_results(ref))
