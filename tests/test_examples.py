"""Every script in examples/ runs (subprocess, one thread) and prints the numbers it promises."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUM = r"(-?\d+\.\d+(?:e[-+]\d+)?)"


def _run(name: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHPERF_NUM_THREADS": "1", "SYNTHPERF_PROGRESS": "0"}
    res = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=600,
                         env=env, cwd=EXAMPLES.parent)
    assert res.returncode == 0, f"{name} exited {res.returncode}:\n{res.stderr[-3000:]}"
    return res.stdout


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {module}")


def test_every_example_is_tested() -> None:
    tested = {"conformal_sppi.py", "selective_knn.py", "flows_toy.py", "guidance_tiny.py", "gafi_digits.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_conformal_sppi() -> None:
    out = _run("conformal_sppi.py")
    rows = re.findall(r"^(split conformal|SPPI) .* coverage " + NUM + r"  mean set size " + NUM + "$", out, re.M)
    assert [r[0] for r in rows] == ["split conformal", "SPPI"]
    for _, cov, size in rows:
        assert 0.0 <= float(cov) <= 1.0 and 1.0 <= float(size) <= 10.0
    lo, hi = map(float, re.search(r"alpha=0.1: \[" + NUM + ", " + NUM + r"\]", out).groups())
    assert 0.0 < lo < 0.9 < hi <= 1.0  # the worst-case window brackets 1 - alpha


def test_selective_knn() -> None:
    _need("faiss")
    out = _run("selective_knn.py")
    assert re.search(r"^threshold " + NUM + "$", out, re.M)
    acc_in, acc_out = map(float, re.search(r"accepted in-distribution " + NUM + ", shifted " + NUM, out).groups())
    # q = 0.95 on exchangeable calibration data: in-distribution acceptance ~ 0.95 (300 queries,
    # binomial SE 0.013; 4 SE), while the shifted half is mostly rejected
    assert abs(acc_in - 0.95) < 4 * (0.95 * 0.05 / 300) ** 0.5 + 1 / 500
    assert acc_out < 0.5
    assert 0.0 <= float(re.search(r"^AURC " + NUM + "$", out, re.M).group(1)) < 0.5


def test_flows_toy() -> None:
    out = _run("flows_toy.py")
    assert "data (400, 2)" in out
    mse = float(re.search(r"^roundtrip MSE " + NUM + "$", out, re.M).group(1))
    assert mse < 1e-3
    gen_r, data_r = map(float, re.search(r"generated mean radius " + NUM + " vs data " + NUM, out).groups())
    assert abs(gen_r - data_r) < 0.2


def test_guidance_tiny() -> None:
    _need("diffusers")
    _need("transformers")
    out = _run("guidance_tiny.py")
    assert "images (3, 3, 8, 8) torch.float32" in out
    lo, hi = map(float, re.search(r"range \[" + NUM + ", " + NUM + r"\]", out).groups())
    assert 0.0 <= lo <= hi <= 1.0
    for label in ("unguided", "guided"):
        vals = re.search(rf"^entropy {label}: +(.*)$", out, re.M).group(1).split()
        assert len(vals) == 3 and all(0.0 <= float(v) <= 1.0987 for v in vals)  # <= log(3)
    assert "corrupted rows: 0" in out


def test_gafi_digits() -> None:
    out = _run("gafi_digits.py")
    rows = re.findall(r"^(unfiltered|gafi) +synthetic \(200, 64\) tau " + NUM + " acceptance " + NUM +
                      r" capped classes (\d+)  CAS " + NUM, out, re.M)
    assert [r[0] for r in rows] == ["unfiltered", "gafi"]
    (_, tau_u, acc_u, _, _), (_, tau_g, acc_g, _, _) = rows
    assert float(tau_u) == 0.0 and float(acc_u) == 1.0  # unfiltered keeps every sample
    assert float(tau_g) == 0.5 and 0.0 < float(acc_g) <= 1.0
    assert all(0.0 <= float(r[4]) <= 1.0 for r in rows)
