"""The closing-note matrix on ``synthperf run`` (SPPI task): seeded kills resume equal, corruptions
are detected, the second concurrent writer is refused. The other commands run in
``python tests/faults/fault_matrix.py`` (minutes each on a shared box)."""
from __future__ import annotations

import pytest

from .fault_matrix import matrix, table

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_run_sppi_matrix_loses_nothing(tmp_path):
    (row,) = matrix(["run sppi"], seed=17, kills=3, work=tmp_path, log=lambda m: None)
    assert row["kills"] == row["killed"] == row["equal"] == 3, table([row], 17)
    assert row["lost"] == row["dup"] == row["silent"] == 0 and row["detected"] == row["corrupt"] == 4, table([row], 17)
    assert row["refused"] == row["conc"] == 1, table([row], 17)
