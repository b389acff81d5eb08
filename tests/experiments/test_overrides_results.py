"""Reading a run directory (issue 16 "Runs"): ``synthperf.experiments.load_results(run_dir)`` (the
store's verifying reader) and ``pd.read_parquet(run_dir)``."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from synthperf.experiments import load_results, run_experiment
from synthperf.experiments import store

from .conftest import frame_equal
from .test_overrides import SMALL


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    s = run_experiment(SMALL, out, ["n_cal=[10, 20]"], report=False)
    assert (s.points, s.chunks) == (2, 2)
    return out


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["point", "trial", "Method", "alpha"], kind="stable").reset_index(drop=True)


def test_load_results_reads_every_chunk_in_point_order(run_dir):
    df, configs = load_results(run_dir, with_config=True)
    assert load_results is store.load_results             # the one (verifying) reader, exported
    assert list(df["point"].drop_duplicates()) == [0, 1] and sorted(configs) == [0, 1]
    assert [configs[p]["n_cal"] for p in (0, 1)] == [10, 20]
    assert (df.groupby("point")["n_cal"].first() == [10, 20]).all()


def test_load_results_ignores_everything_but_result_chunks(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    ref = load_results(copy)
    extra = pd.DataFrame({"x": [1, 2]})
    extra.to_parquet(copy / "points" / "p0000" / "cas.parquet")        # a task's own table in its point folder
    (copy / "_meta").mkdir()
    extra.to_parquet(copy / "_meta" / "trials_000000_000001.parquet")  # a _-folder: skipped, as pyarrow does
    (copy / "points" / "p0000" / "chunks" / ".trials_000000_000002.parquet.tmp").write_bytes(b"partial")
    (copy / "notes.txt").write_text("hello")
    frame_equal(load_results(copy), ref)


def test_load_results_errors(tmp_path, run_dir):
    import shutil

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no result chunks"):
        load_results(tmp_path)
    copy = tmp_path / "bad"
    shutil.copytree(run_dir, copy)
    victim = store.chunk_files(copy)[1]
    victim.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=f"corrupt result chunk .*{victim.name}"):
        load_results(copy)


@pytest.mark.xfail(strict=True, raises=pa.ArrowInvalid,
                   reason="the store still writes run.yaml, config.yaml, checksum sidecars and reports beside "
                          "the chunks (requested of the store's owner in /work/notes/D_to_A.md); delete this "
                          "marker when that lands")
def test_pd_read_parquet_reads_a_run_directory(run_dir):
    frame_equal(_sorted(pd.read_parquet(run_dir)), _sorted(load_results(run_dir)))
