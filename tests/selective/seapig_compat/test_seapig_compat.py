"""seapig compatibility (issue 15 acceptance): seapig's own suites through the import shim, and
seapig side by side on identical inputs (skipped without a seapig interpreter)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"seapig_compat_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return module


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["git", "pypi"])
def test_seapig_suite_passes_except_private_surface(suite):
    for mod in ("lightning", "torchmetrics", "matplotlib", "sklearn"):
        pytest.importorskip(mod)
    runner = _load("run_suites")
    result = runner.run_suite(suite)
    assert result["outcomes"], result["tail"]
    assert not result["unexpected"], f"unexpected failures: {result['unexpected']}"
    assert not result["stale_known"], f"known failures that now pass (update known_failures.py): {result['stale_known']}"
    assert result["counts"]["passed"] > 0


@pytest.mark.slow
def test_side_by_side_with_seapig(tmp_path):
    sbs = _load("side_by_side")
    py = sbs.default_seapig_python()
    if py is None:
        pytest.skip("no seapig interpreter (set SEAPIG_PYTHON to a python with seapig==0.3.0 installed)")
    probe = subprocess.run([py, "-c", "import seapig"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{py} cannot import seapig")
    rows = sbs.compare(py, os.environ.get("SEAPIG_GIT_SRC"), tmp_path)  # API A too when a seapig git tree is given
    assert rows
    bad = [r for r in rows if not r["ok"] and "explained" not in r]
    assert not bad, sbs.table(bad)
