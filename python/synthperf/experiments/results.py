"""``load_results(run_dir)``: every result row of a ``synthperf run`` directory as one DataFrame.

It reads what ``pd.read_parquet(run_dir)`` (pyarrow's dataset discovery) would read: every
``*.parquet`` file under ``run_dir`` whose path has no component starting with ``_`` or ``.``
(pyarrow skips those: sidecars such as ``_meta/`` and the temporaries of :mod:`synthperf._io`),
in path order, which for the store's layout (``points/pNNNN/chunks/trials_LO_HI.parquet``,
:mod:`.store`) is (grid point, first trial) order. Unlike pyarrow it ignores non-Parquet files
beside the chunks (``run.yaml``, ``report.md``, plots), so it works on every layout of the
store, and a damaged chunk raises ``ValueError`` naming the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["load_results", "result_files"]

_POINT = re.compile(r"^p(\d+)$")


def result_files(run_dir: str | os.PathLike) -> list[Path]:
    """The Parquet files of ``run_dir`` that a dataset reader reads (module rules), sorted."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist")
    return sorted(p for p in root.rglob("*.parquet")
                  if p.is_file() and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts))


def load_results(run_dir: str | os.PathLike, *, with_config: bool = False) -> Any:
    """All result rows of ``run_dir`` as one pandas DataFrame (columns include ``point``,
    ``trial``, ``seed`` and one per grid key; see :mod:`.tasks`); rows keep their order within a
    file, files are in path order. With ``with_config`` also returns ``{point: resolved config}``
    from the points' ``config.yaml`` files (wherever the store keeps them under ``run_dir``).

    Raises FileNotFoundError (no directory, or no Parquet file in it) and ValueError (a file
    that is not readable Parquet, naming it)."""
    import pandas as pd

    root = Path(run_dir)
    files = result_files(root)
    if not files:
        raise FileNotFoundError(f"{root} holds no result files (*.parquet outside _ and . folders)")
    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ValueError(f"corrupt result file {f}: {exc}") from None
    df = pd.concat(frames, ignore_index=True)
    if not with_config:
        return df
    from .store import read_point_config

    configs = {}
    for p in sorted(root.rglob("config.yaml")):
        m = _POINT.match(p.parent.name)
        if m:
            configs[int(m.group(1))] = read_point_config(p)["config"]
    return df, configs
