from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from synthperf.experiments.cli import app


def cli(*args: str):
    """Invoke the experiments typer app; returns the click Result."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = ["point", "trial", "Method", "alpha"] + (["Class"] if "Class" in a.columns else [])
    a = a.sort_values(key, kind="stable").reset_index(drop=True)
    b = b.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
