"""seapig's progress API (spec ``seapig.md`` §6 ``seapig/utils/progress.py``) on synthperf's switch.

:func:`is_enabled` answers seapig's question, *is a progress bar drawn?*, in seapig's order:

1. :func:`enable`/:func:`disable` (programmatic; they also switch synthperf's global progress,
   :func:`synthperf.enable_progress`/``disable_progress``); :func:`reset` clears this override;
2. the environment variable ``SEAPIG_PROGRESS`` (``1``/``true``/``yes``/``on`` or
   ``0``/``false``/``no``/``off``, case-insensitive), accepted under seapig's name for drop-in use;
3. synthperf's switch: ``SYNTHPERF_PROGRESS=0`` or a global ``synthperf.disable_progress()`` -> off;
4. automatic: on in an IPython/Jupyter kernel or when ``sys.stdout`` is a terminal.

When a bar is drawn, :func:`track` draws it on stderr with the backend of :func:`get_backend`
(``"rich"`` falls back to tqdm when rich is missing, ``"tqdm"`` to rich; both imported at call
time). In automatic mode off a terminal no bar is drawn; unless progress is off (step 1-3),
:func:`track` then emits synthperf's plain INFO lines on the ``synthperf.progress`` logger, which
appear only where the application configured logging (:mod:`synthperf.progress`).
The backend defaults to ``SYNTHPERF_PROGRESS_BACKEND``, else ``SEAPIG_PROGRESS_BACKEND``, else
``"rich"`` (seapig's default is ``"tqdm"``; synthperf's own bars are rich).
"""
from __future__ import annotations

import builtins
import os
import sys
from typing import Iterable, Iterator, TypeVar

from ... import progress as _progress

_T = TypeVar("_T")
BACKENDS = ("tqdm", "rich")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

#: ``None``: no programmatic override (environment, then automatic detection).
_enabled: bool | None = None


def _env_backend() -> str:
    for var in ("SYNTHPERF_PROGRESS_BACKEND", "SEAPIG_PROGRESS_BACKEND"):
        name = os.environ.get(var, "").strip().lower()
        if name in BACKENDS:
            return name
    return "rich"


_backend: str = _env_backend()


def _interactive() -> bool:
    """seapig's rule: a live IPython kernel, or ``sys.stdout`` is a terminal."""
    get_ipython = getattr(builtins, "get_ipython", None)
    if get_ipython is not None and get_ipython() is not None:
        return True
    try:
        return bool(sys.stdout is not None and sys.stdout.isatty())
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


def _forced() -> bool | None:
    """The programmatic override, else ``SEAPIG_PROGRESS`` when it holds a known value, else None."""
    if _enabled is not None:
        return _enabled
    env = os.environ.get("SEAPIG_PROGRESS", "").strip().lower()
    if env in _TRUE:
        return True
    if env in _FALSE:
        return False
    return None


def enable() -> None:
    """Draw progress bars (overrides the environment and auto-detection; synthperf-wide)."""
    global _enabled
    _enabled = True
    _progress.enable_progress()


def disable() -> None:
    """No progress at all, bars nor log lines (overrides the environment; synthperf-wide)."""
    global _enabled
    _enabled = False
    _progress.disable_progress()


def is_enabled() -> bool:
    """Whether :func:`track` draws a progress bar (the order is in the module docstring)."""
    forced = _forced()
    if forced is not None:
        return forced
    if not _progress.progress_enabled():
        return False
    return _interactive()


def reset() -> None:
    """Back to the environment's defaults: no override, synthperf's switch from
    ``SYNTHPERF_PROGRESS``, the backend from the environment."""
    global _enabled, _backend
    _enabled = None
    if os.environ.get("SYNTHPERF_PROGRESS", "1").strip().lower() in _FALSE:
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
    """The backend :func:`track` draws with: ``"tqdm"`` or ``"rich"``."""
    return _backend


def _rich_bar(iterable: Iterable[_T], total: int | None, desc: str, kwargs: dict) -> Iterator[_T] | None:
    try:
        from rich.progress import track as rich_track
    except ImportError:
        return None
    try:
        from rich.console import Console
    except ImportError:
        console = None
    else:
        console = Console(file=sys.stderr)
    options = {"transient": True, **kwargs}
    if console is not None:
        options.setdefault("console", console)
    return rich_track(iterable, total=total, description=desc, **options)


def _tqdm_bar(iterable: Iterable[_T], total: int | None, desc: str, unit: str, leave: bool,
              colour: str | None, smoothing: float, kwargs: dict) -> Iterator[_T] | None:
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, colour=colour,
                smoothing=smoothing, **{"file": sys.stderr, **kwargs})


def track(iterable: Iterable[_T], total: int | None = None, desc: str = "Working…", unit: str = "it",
          leave: bool = True, colour: str | None = None, smoothing: float = 0.3, **kwargs: object) -> Iterator[_T]:
    """Iterate ``iterable`` (items unchanged) with progress, seapig's signature.

    A bar on stderr when :func:`is_enabled`; ``unit``/``leave``/``colour``/``smoothing`` go to tqdm,
    ``kwargs`` to the backend. ValueError when the backend is unknown (``_backend`` set by hand).
    """
    if not is_enabled():
        if _forced() is None and _progress.progress_enabled():  # automatic mode, not interactive
            yield from _plain_lines(iterable, desc, total)
        else:
            yield from iterable
        return
    if _backend not in BACKENDS:
        raise ValueError(f"Unknown backend {_backend!r}: the progress backend must be one of {BACKENDS}")
    order = ("rich", "tqdm") if _backend == "rich" else ("tqdm", "rich")
    for backend in order:
        bar = (_rich_bar(iterable, total, desc, kwargs) if backend == "rich"
               else _tqdm_bar(iterable, total, desc, unit, leave, colour, smoothing, kwargs))
        if bar is not None:
            yield from bar
            return
    yield from _plain_lines(iterable, desc, total)  # neither rich nor tqdm installed


def _plain_lines(iterable: Iterable[_T], desc: str, total: int | None) -> Iterator[_T]:
    """synthperf's INFO progress lines (start, each tenth, end) on ``synthperf.progress``."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    reporter = _progress._LineReporter(desc, total)
    for item in iterable:
        yield item
        reporter.advance()
    reporter.finish()
