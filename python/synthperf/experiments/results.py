"""``load_results(run_dir)``: every result row of a ``synthperf run`` directory as one DataFrame.

It reads the result chunks, the files named ``trials_LO_HI.parquet`` in a ``chunks`` folder
(:func:`.store.chunk_path`), anywhere under ``run_dir`` except in paths with a component that
starts with ``_`` or ``.`` (those pyarrow's dataset discovery skips too: sidecars such as
``_meta/`` and the temporaries of :mod:`synthperf._io`), in path order, which is (grid point,
first trial) order. Everything else is ignored: ``run.yaml``, ``report.md``, plots, checksum
sidecars, and the Parquet tables a task keeps in its point folder (GaFi's CAS tables), which
``pd.read_parquet(run_dir)`` would read as rows today. So it works on today's layout and on one
that moves sidecars under ``_``-folders, and a damaged chunk raises ``ValueError`` naming it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["load_results", "result_files"]

_POINT = re.compile(r"^p(\d+)$")
_CHUNK = re.compile(r"^trials_\d+_\d+\.parquet$")


def result_files(run_dir: str | os.PathLike) -> list[Path]:
    """The result chunks of ``run_dir`` (module rules), sorted by path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist")
    return sorted(p for p in root.rglob("trials_*.parquet")
                  if p.is_file() and _CHUNK.match(p.name) and p.parent.name == "chunks"
                  and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts))


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
        raise FileNotFoundError(f"{root} holds no result chunks (chunks/trials_*.parquet outside _ and . folders)")
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
