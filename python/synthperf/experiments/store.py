"""Result store: one Parquet file per (grid point, trial chunk), written atomically.

Layout of a run directory ``OUT``::

    OUT/run.yaml                                   # source config, overrides, grid, points
    OUT/points/p0000/config.yaml                   # resolved config of grid point 0
    OUT/points/p0000/chunks/trials_000000_000025.parquet
    OUT/report.md, OUT/plots/*.png|pdf, OUT/tables/*.md|tex

Every file is written through :mod:`synthperf._io` (a temp file in the same directory, flushed
and fsynced, then ``os.replace``), so a killed run (even SIGKILL) leaves either the whole
chunk or nothing (a stray ``.*.tmp`` at most, which readers ignore). Resume skips every chunk
whose file exists; re-running a finished run computes nothing.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .._io import atomic_write_bytes, write_parquet  # atomic_write_bytes re-exported

__all__ = ["atomic_write_bytes", "write_chunk", "chunk_path", "point_dir", "write_point_config",
           "read_point_config", "load_results", "chunk_files"]


def write_chunk(df, path: str | os.PathLike) -> Path:
    """A DataFrame as Parquet, atomically (:func:`synthperf._io.write_parquet`)."""
    return write_parquet(df, path)


def point_dir(out: str | os.PathLike, point: int) -> Path:
    return Path(out) / "points" / f"p{point:04d}"


def chunk_path(out: str | os.PathLike, point: int, lo: int, hi: int) -> Path:
    return point_dir(out, point) / "chunks" / f"trials_{lo:06d}_{hi:06d}.parquet"


def write_point_config(out: str | os.PathLike, point: int, resolved: dict, grid: dict) -> None:
    """Save the resolved config beside the point's results; refuse to mix configs in one OUT."""
    path = point_dir(out, point) / "config.yaml"
    doc = {"grid": grid, "config": resolved}
    if path.is_file():
        old = read_point_config(path)
        if old != doc:
            diff = sorted(k for k in set(old.get("config", {})) | set(resolved)
                          if old.get("config", {}).get(k) != resolved.get(k))
            raise ValueError(f"{out} already holds results of another config for grid point {point} "
                             f"(keys differing: {diff or ['grid']}); use a new -o directory")
        return
    atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False).encode("utf-8"))


def read_point_config(path: str | os.PathLike) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"corrupt point config {path}: {exc}") from None
    if not isinstance(doc, dict) or "config" not in doc:
        raise ValueError(f"corrupt point config {path}: expected a mapping with a 'config' key")
    return doc


def chunk_files(out: str | os.PathLike) -> list[Path]:
    """Finished chunk files of a run, in (point, trial) order; temporaries are ignored."""
    return sorted(p for p in Path(out).glob("points/p*/chunks/trials_*.parquet") if not p.name.startswith("."))


def load_results(out: str | os.PathLike, *, with_config: bool = False) -> Any:
    """All finished chunks of run directory ``out`` as one pandas DataFrame.

    Rows keep the runner's order within a chunk; chunks are ordered by (point, first trial).
    Columns include ``point``, ``trial`` and ``seed`` (plus one column per grid key). With
    ``with_config`` also returns ``{point: resolved config}``.
    """
    import pandas as pd

    root = Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist")
    files = chunk_files(root)
    if not files:
        raise FileNotFoundError(f"{root} holds no result chunks (points/p*/chunks/*.parquet)")
    frames = []
    for f in files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ValueError(f"corrupt result chunk {f}: {exc}") from None
    df = pd.concat(frames, ignore_index=True)
    if not with_config:
        return df
    configs = {int(p.parent.name[1:]): read_point_config(p)["config"] for p in sorted(root.glob("points/p*/config.yaml"))}
    return df, configs
