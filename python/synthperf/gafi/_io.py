"""GaFi's file helpers: :mod:`synthperf._io` (the one atomic-write and checkpoint layer) plus
checked result tables.

Every file GaFi writes goes through ``atomic_write_bytes`` (temp file in the same directory,
fsync, ``os.replace``); checkpoints are ``<stem>.safetensors`` + ``<stem>.json`` with a SHA-256
in the JSON (nothing unpickled).

Result tables that a resumed command *reads back* (the GaFi search's ``<step>/results.parquet``
and ``histories.parquet``, the ``cas.parquet`` of ``multigan``/``cas``) are written with
:func:`write_table`: the Parquet file, then its JSON sidecar ``<name>.parquet.json`` (format,
version, rows, bytes, SHA-256), written second so that its presence marks a finished table.
:func:`read_table` verifies a table against its sidecar before using it; a damaged one
(truncated, bit-flipped, zeroed, a directory in its place, no or another sidecar, an unreadable
footer, another row count) is reported with one ``RuntimeWarning`` naming the file and treated
as absent, so the caller recomputes it (issue 17: resume never trusts a damaged file).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from .._io import (CheckpointError, atomic_write_bytes, atomic_write_text, checkpoint_exists, load_checkpoint,
                   load_state_into, read_sidecar, remove_stale_temps, save_checkpoint, save_figure,
                   verify_parquet_payload, write_parquet)

__all__ = ["CheckpointError", "atomic_write_bytes", "save_checkpoint", "load_checkpoint", "checkpoint_exists",
           "load_state_into", "write_parquet", "save_figure", "TABLE_FORMAT", "table_sidecar", "write_table",
           "check_table", "read_table"]

#: ``format`` entry of a table sidecar
TABLE_FORMAT = "synthperf-gafi-table"
_TABLE_VERSION = 1


def table_sidecar(path: str | os.PathLike) -> Path:
    """The JSON sidecar of table ``path`` (``<name>.parquet.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _clear(p: Path) -> None:
    """Remove a directory or link squatting on ``p`` (a file is replaced by the atomic write)."""
    if p.is_symlink():
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def write_table(df: Any, path: str | os.PathLike) -> Path:
    """Write the pandas DataFrame ``df`` to ``path`` as Parquet (no index), then its sidecar,
    each atomically; returns ``path``. A directory or link in the place of either file is
    removed first, and stale temp files of both (left by a killed write) are deleted: call it
    only while holding the output folder's lock."""
    if not hasattr(df, "to_parquet"):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    path, side = Path(path), table_sidecar(path)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    data = buf.getvalue()
    doc = {"format": TABLE_FORMAT, "version": _TABLE_VERSION, "rows": int(len(df)), "bytes": len(data),
           "sha256": hashlib.sha256(data).hexdigest()}
    for p in (path, side):
        _clear(p)
        remove_stale_temps(p)
    atomic_write_bytes(path, data)
    atomic_write_text(side, json.dumps(doc, indent=1, sort_keys=True))
    return path


def check_table(path: str | os.PathLike) -> tuple[str, str]:
    """Verify table ``path``: ``("ok", "")``, ``("missing", "")`` (neither it nor its sidecar
    exists) or ``("damaged", reason)`` (see the module docstring)."""
    path, side = Path(path), table_sidecar(path)
    if not os.path.lexists(path) and not os.path.lexists(side):
        return "missing", ""
    reason, doc = read_sidecar(path, side, "table")
    if reason:
        return "damaged", reason
    if (not isinstance(doc, dict) or doc.get("format") != TABLE_FORMAT or doc.get("version") != _TABLE_VERSION
            or not all(isinstance(doc.get(k), int) for k in ("rows", "bytes"))
            or not isinstance(doc.get("sha256"), str)):
        return "damaged", f"its sidecar {side.name} is not a GaFi table sidecar (version {_TABLE_VERSION})"
    reason = verify_parquet_payload(path, doc)
    if reason:
        return "damaged", reason
    return "ok", ""


def read_table(path: str | os.PathLike, *, what: str = "it") -> Any:
    """The verified table at ``path`` as a pandas DataFrame, or None: missing (silently) or
    damaged (one ``RuntimeWarning`` naming the file, the reason and that ``what`` is recomputed)."""
    import pandas as pd

    status, reason = check_table(path)
    if status == "missing":
        return None
    if status == "damaged":
        warnings.warn(f"ignoring the damaged table {str(path)!r} ({reason}); {what} is recomputed", RuntimeWarning,
                      stacklevel=2)
        return None
    return pd.read_parquet(io.BytesIO(Path(path).read_bytes()))
