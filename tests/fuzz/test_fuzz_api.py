"""Issue 17 item 2: property-based fuzzing of every public entry point (see _harness.py).

Each module's cases run in child processes: a signal death or a hang is a failed case (named),
never a crashed pytest. Every bad input must give a ValueError/TypeError naming the argument,
every unusual layout the contiguous answer, except the cases of _known.py (defects in files
owned elsewhere, each still checked to fail so the list stays current). ``python
tests/fuzz/fuzz_table.py`` prints the per-module table (notes/fuzz_table.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run_in_subprocess, summarize  # noqa: E402
from _known import KNOWN  # noqa: E402

pytest.importorskip("hypothesis")
GOOD = {"clear", "equal", "skip"}


@pytest.mark.parametrize("module", ["conformal", "ops", "selective", "flows", "guidance", "gafi"])
def test_fuzz_module(module):
    records = run_in_subprocess(module)
    counts = summarize(records)
    assert counts["tried"] >= 150, counts  # the module's cases ran (3 examples each)
    new = [f"{r['id']}: {sorted(set(r['outcomes']) - {'skip'})} {r['notes'][:1]}" for r in records
           if set(r["outcomes"]) - GOOD and r["id"] not in KNOWN]
    fixed = [r["id"] for r in records if r["id"] in KNOWN and not set(r["outcomes"]) - GOOD]
    assert not new, f"{module}: {len(new)} fuzz cases without a clear error / contiguous answer:\n" + "\n".join(new)
    assert not fixed, f"{module}: known defects now pass, remove them from tests/fuzz/_known.py: {fixed}"


def test_harness_reports_crash_hang_and_wrong_answers():
    """The harness is not vacuous: a SIGSEGV, a hang, an accepted NaN and a layout-dependent
    answer of a deliberately fragile target are each reported, and the run continues."""
    records = run_in_subprocess("_selftest", timeout_s=60, env={"SYNTHPERF_FUZZ_CALL_LIMIT": "1"})
    by = {r["id"]: set(r["outcomes"]) for r in records}
    assert by["fragile|bad|x|empty"] == {"crash"}
    assert by["fragile|bad|x|0d"] == {"hang"}
    assert by["fragile|bad|x|nan"] == {"accepted"}
    assert by["fragile|bad|x|object"] == {"clear"}
    assert "wrong" in by["fragile|layout|x|fortran"] and "wrong" in by["fragile|layout|x|reversed"]
