"""`synthperf demo --quick` runs every stage on tiny generators and writes a report whose
findings state their uncertainty (the statements themselves are unit-tested in
test_demo_report.py)."""
from __future__ import annotations

import re

from .conftest import cli


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--quick", "--out", out)
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) >= 6 and all(p.with_suffix(".pdf").is_file() for p in pngs)
    for p in pngs:
        assert f"plots/{p.name}" in report
    for key in ("gafi", "diffusion", "flows"):
        assert (out / "plots" / f"samples_{key}.png").is_file()
    assert (out / "plots" / "flows_trajectories.png").is_file()
    for a in ("0.02", "0.05", "0.1", "0.2"):
        assert re.search(rf"\| {a} \| .* \|", report)
    # SC with n=15 at alpha < 1/16 is named as the full set, never as a loss of SPPI
    assert "full label set by construction" in report
    assert "No:" not in report and "inf ±" not in report
    assert re.search(r"(smaller than SC's by|within the noise|larger than SC's by)", report)
    assert re.search(r"(inside|OUTSIDE) its worst-case bounds", report)
    assert "## Feedback guidance on long-tailed digits" in report
    assert "## Timings" in report
    # a rerun reuses models, samples and shards
    res = cli("demo", "--quick", "--out", out)
    assert res.exit_code == 0, res.output
