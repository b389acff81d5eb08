"""Acceptance: `synthperf run configs/sppi/meps_ages_20_40.yaml -o OUT data_root=... n_seeds=10`
reproduces upstream's first 10 trials and writes plots and a report; `plot` combines runs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from synthperf.experiments import load_results

from .conftest import cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "sppi"


def test_meps_20_40_reproduces_upstream_first_10_trials(shared_dir, tmp_path):
    root = shared_dir / "data" / "sppi"
    out = tmp_path / "meps"
    res = cli("run", CONFIGS / "meps_ages_20_40.yaml", "-o", out, f"data_root={root}", "n_seeds=10", "chunk_trials=4")
    assert res.exit_code == 0, res.output
    df = load_results(out)
    ref = pd.read_csv(root / "reference_outputs" / "meps_alpha0.1_upstream_per_trial.csv")
    ref = ref[(ref["age_range"] == "20-40") & (ref["trial"] < 10)].reset_index(drop=True)
    assert len(df) == len(ref) == 30 and {"trial", "seed", "point"} <= set(df.columns)
    for col in ref.columns:
        if col not in ("Coverage", "Length"):
            assert (df[col].to_numpy() == ref[col].to_numpy()).all(), col
    np.testing.assert_array_equal(df["Coverage"].to_numpy(), ref["Coverage"].to_numpy())
    np.testing.assert_allclose(df["Length"].to_numpy(), ref["Length"].to_numpy(), rtol=1e-6, atol=0)
    # plots, tables, report and the resolved config beside the results
    for name in ("coverage", "length"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000 and (out / "plots" / f"{name}.pdf").is_file()
    assert (out / "tables" / "summary.tex").is_file() and (out / "tables" / "summary.md").is_file()
    report = (out / "report.md").read_text()
    assert "plots/coverage.png" in report and "[0.812, 0.938]" in report and "SPI" in report
    assert "n_seeds: 10" in (out / "points" / "p0000" / "config.yaml").read_text()
    # a second identical run computes nothing; another config in the same OUT is refused
    again = cli("run", CONFIGS / "meps_ages_20_40.yaml", "-o", out, f"data_root={root}", "n_seeds=10", "chunk_trials=4")
    assert again.exit_code == 0 and "0 computed now" in again.output
    clash = _run_other_chunking(out, root)
    assert clash.exit_code == 2 and "another config" in clash.output

    # plot: combine two age groups into one figure, then filter one of them back out
    out2 = tmp_path / "meps_0_20"
    assert cli("run", CONFIGS / "meps_ages_0_20.yaml", "-o", out2, f"data_root={root}", "n_seeds=4",
               "--no-report").exit_code == 0
    comb = tmp_path / "combined"
    res = cli("plot", out, out2, "-o", comb, "--filter", "Method=SPI")
    assert res.exit_code == 0, res.output
    text = (comb / "report.md").read_text()
    assert "age_range" in text and "0-20" in text and "20-40" in text and "SC (synth)" not in text
    bad = cli("plot", out, "--filter", "nocol=1")
    assert bad.exit_code == 2 and "no column 'nocol'" in bad.output


def _run_other_chunking(out, root):
    from typer.testing import CliRunner

    from synthperf.experiments.cli import app

    return CliRunner().invoke(app, ["run", str(CONFIGS / "meps_ages_20_40.yaml"), "-o", str(out),
                                    f"data_root={root}", "n_seeds=10", "chunk_trials=5"])
