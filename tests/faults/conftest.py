"""Shared pieces of the fault-injection suite (``pytest -m faults tests/faults``)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

HARNESS = Path(__file__).with_name("_harness.py")

#: a tiny SPPI run: 6 trials in 3 shards of 2 (about 0.1 s of compute)
SPPI = {"experiment": "sppi", "name": "faults", "data": {"kind": "imagenet_like", "n_classes": 4,
                                                        "n_per_class": 60, "n_labels": 4},
        "alpha": [0.1, 0.2], "methods": ["SC", "SPI"], "n_seeds": 6, "n_cal": 10, "n_test": 40,
        "n_cal_maj": 60, "chunk_trials": 2}


def write_config(folder: Path, **overrides) -> Path:
    cfg = folder / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**SPPI, **overrides}))
    return cfg


def env(**extra: str) -> dict:
    e = {**os.environ, "SYNTHPERF_PROGRESS": "0", "OMP_NUM_THREADS": "1", "SYNTHPERF_NUM_THREADS": "1"}
    e.pop("SYNTHPERF_FAULT_KILL", None)
    e.update(extra)
    return e


def synthperf(args, *, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess:
    """Run the ``synthperf`` CLI (through the fault harness) in a subprocess."""
    return subprocess.run([sys.executable, str(HARNESS), *map(str, args)], env=env(**extra), capture_output=True,
                          text=True, timeout=timeout)


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in ("point", "trial", "Method", "alpha", "Class") if c in df.columns]
    return df.sort_values(key, kind="stable").reset_index(drop=True)


#: another live process holding the output lock of ``argv[1]`` (touches ``argv[2]`` once it holds it)
HOLD = """
import sys, time
from pathlib import Path
from synthperf._lock import RunLock
with RunLock(Path(sys.argv[1])):
    Path(sys.argv[2]).touch()
    time.sleep(120)
"""


@pytest.fixture
def held(tmp_path):
    """``out`` locked by another live process (the first run of a command), and that process."""
    out, ready = tmp_path / "out", tmp_path / "ready"
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out), str(ready)], env=env())
    deadline = time.time() + 60
    while not ready.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the holder did not take the lock"
    yield out, p
    p.kill()
    p.wait(timeout=30)
