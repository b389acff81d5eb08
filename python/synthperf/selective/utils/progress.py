"""seapig's progress API (spec §6 ``seapig/utils/progress.py``) on synthperf's one switch.

``disable()``/``enable()`` are :func:`synthperf.disable_progress`/``enable_progress`` (they also
silence or restore the progress of every synthperf system); ``reset()`` returns to the
environment default (``SYNTHPERF_PROGRESS=0`` starts disabled, as in :mod:`synthperf.progress`).
Progress is drawn on stderr and only on a terminal; elsewhere :func:`track` emits the plain INFO
lines of :mod:`synthperf.progress`. ``set_backend("tqdm"|"rich")`` chooses how :func:`track`
draws on a terminal (tqdm falls back to rich when it is not installed); the default is
``SYNTHPERF_PROGRESS_BACKEND`` or ``"rich"``. synthperf's own bars are always rich.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Iterator, TypeVar

from ... import progress as _progress

_T = TypeVar("_T")
BACKENDS = ("tqdm", "rich")


def _env_backend() -> str:
    name = os.environ.get("SYNTHPERF_PROGRESS_BACKEND", "rich").strip().lower()
    return name if name in BACKENDS else "rich"


_backend = _env_backend()


def enable() -> None:
    """Turn progress on (synthperf-wide)."""
    _progress.enable_progress()


def disable() -> None:
    """Turn progress off (synthperf-wide)."""
    _progress.disable_progress()


def is_enabled() -> bool:
    """Whether progress is reported."""
    return _progress.progress_enabled()


def reset() -> None:
    """Back to the environment's defaults: the on/off switch and the drawing backend."""
    global _backend
    if os.environ.get("SYNTHPERF_PROGRESS", "1") in ("0", "false", "False"):
        _progress.disable_progress()
    else:
        _progress.enable_progress()
    _backend = _env_backend()


def set_backend(name: str) -> None:
    """``"tqdm"`` or ``"rich"`` (case-insensitive); ValueError naming the backend otherwise."""
    global _backend
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}: the progress backend must be one of {BACKENDS}")
    _backend = name.strip().lower()


def get_backend() -> str:
    return _backend


def track(iterable: Iterable[_T], total: int | None = None, desc: str = "Working…", unit: str = "it",
          leave: bool = True, colour: str | None = None, smoothing: float = 0.3, **kwargs: Any) -> Iterator[_T]:
    """Iterate ``iterable`` with progress (seapig's signature): nothing when disabled, log lines off
    a terminal, a tqdm (``get_backend() == "tqdm"``) or rich bar on stderr on a terminal."""
    if not _progress.progress_enabled():
        yield from iterable
        return
    if _backend not in BACKENDS:
        raise ValueError(f"Unknown backend {_backend!r}: the progress backend must be one of {BACKENDS}")
    if _backend == "tqdm" and _progress._interactive():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, colour=colour,
                            smoothing=smoothing, file=sys.stderr, **kwargs)
            return
    yield from _progress.track(iterable, desc, total=total)
