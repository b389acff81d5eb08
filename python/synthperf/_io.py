"""Atomic file writes and figure saving shared by every layer (imports no subpackage).

- :func:`atomic_write_bytes`: temp file in the target's directory, flush + fsync, ``os.replace``;
  a killed writer leaves either the old file, the whole new file, or a stray ``.<name>.*.tmp``.
- :func:`save_figure`: a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf`` through
  :func:`atomic_write_bytes`. Works with ``matplotlib.figure.Figure()`` (object API, no pyplot,
  no ``matplotlib.use``); a figure made by pyplot is closed after saving so it is not leaked.

``synthperf.experiments.store.atomic_write_bytes`` and
``synthperf.experiments.reports.save_figure`` re-export these two functions.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "save_figure", "FIGURE_FORMATS"]

#: formats :func:`save_figure` writes, in order
FIGURE_FORMATS = ("png", "pdf")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` (bytes) to ``path`` atomically (temp file + fsync + ``os.replace``).

    Creates missing parent folders. Raises ``TypeError`` when ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig: Any, stem: str | os.PathLike, *, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (each atomically); returns both paths.

    ``stem`` is used as given plus ``.png`` / ``.pdf`` (never ``Path.with_suffix``, so a stem
    such as ``class_coverage_alpha0.1`` keeps its ``.1``). ``fig``: a ``matplotlib.figure.Figure``.
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise ValueError(f"dpi must be a positive integer, got {dpi!r}")
    out = []
    for ext in FIGURE_FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
        target = Path(f"{os.fspath(stem)}.{ext}")
        atomic_write_bytes(target, buf.getvalue())
        out.append(target)
    plt = sys.modules.get("matplotlib.pyplot")  # only if the caller already uses pyplot
    if plt is not None and getattr(fig, "number", None) is not None and plt.fignum_exists(fig.number):
        plt.close(fig)
    return out
