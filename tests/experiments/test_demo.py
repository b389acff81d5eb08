"""`synthperf demo --quick` writes report.md, >= 3 PNG plots and the tables."""
from __future__ import annotations

import re

from .conftest import cli


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    res = cli("demo", "--quick", "--out", out)
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    pngs = sorted((out / "plots").glob("*.png"))
    assert len(pngs) >= 3 and all(p.with_suffix(".pdf").is_file() for p in pngs)
    for p in pngs:
        assert f"plots/{p.name}" in report
    assert (out / "tables" / "summary.md").is_file() and (out / "tables" / "summary.tex").is_file()
    assert (out / "tables" / "selective.md").is_file()
    # plain statements on set sizes and on the guaranteed bounds
    assert re.search(r"SPPI's sets/intervals were (smaller|not smaller|smaller than SC's at)", report)
    assert re.search(r"(Yes|No): .*(inside|outside) .*bounds", report)
    for a in ("0.02", "0.05", "0.1", "0.2"):
        assert f"| SPI | {a} |" in report
    assert "set_threshold(q, synthetic=..., beta=0.4)" in report
