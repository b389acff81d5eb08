"""The closing-note matrix: seeded kills resume equal, corruptions are detected, the second concurrent
writer is refused. ``synthperf run`` (SPPI task) with 3 kills; the other long-running commands with
the note's 2 kills (minutes each on a shared box: run them with ``pytest --fault-matrix``; the table itself comes from
``python tests/faults/fault_matrix.py``). ``run gafi`` covers the kill between the GaFi search's
``histories.parquet`` and ``results.parquet`` writes that once duplicated history rows; the GaFi CLI
rows cover the resumed ``history.parquet`` column order and train-gan's earlier-epoch checkpoints; the
``gafi pipeline`` / ``multigan`` / ``cas`` rows (their classifier and GAN trained once per work folder)
cover the checksummed result tables a resume reads back (before them a truncated or zeroed
``results.parquet`` stopped the resume, a bit-flipped one stayed in place, and a damaged ``cas.parquet``
was taken for "already done")."""
from __future__ import annotations

import pytest

from .fault_matrix import matrix, table

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _check(row, kills):
    assert "error" not in row, row
    assert row["kills"] == row["killed"] == row["equal"] == kills, table([row], 17)
    assert row["lost"] == row["dup"] == row["silent"] == 0 and row["detected"] == row["corrupt"] == 4, table([row], 17)
    assert row["refused"] == row["conc"] == 1, table([row], 17)


def test_run_sppi_matrix_loses_nothing(tmp_path):
    (row,) = matrix(["run sppi"], seed=17, kills=3, work=tmp_path, log=lambda m: None)
    _check(row, 3)


@pytest.mark.fault_matrix  # deselected unless --fault-matrix (minutes per command; tests/conftest.py)
@pytest.mark.parametrize("command", ["demo", "flows simulate", "flows train", "guidance generate", "run flows",
                                     "run guidance", "run gafi", "gafi train-classifier", "gafi train-gan",
                                     "gafi demo", "gafi pipeline", "gafi multigan", "gafi cas"])
def test_command_matrix_loses_nothing(tmp_path, command):
    (row,) = matrix([command], seed=17, kills=2, work=tmp_path, log=lambda m: None)
    _check(row, 2)
