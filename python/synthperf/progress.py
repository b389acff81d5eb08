"""Progress reporting with one global on/off switch (issue 14 item 7: library manners).

- On a terminal (``sys.stderr.isatty()``), long work draws a rich progress bar **on stderr**
  (never stdout, which belongs to the caller's data and reports).
- Off a terminal (pipes, files, CI logs, notebooks' captured streams), no bar is drawn: the
  package logs plain lines on the ``synthperf.progress`` logger at INFO (the start, every
  tenth of the work, the end). They appear only where the application configured logging
  (e.g. ``logging.basicConfig(level=logging.INFO)``); nothing is printed otherwise.

``disable_progress()`` silences both; ``enable_progress()`` turns them back on. The
environment variable ``SYNTHPERF_PROGRESS=0`` starts with progress disabled. The switch is
process state next to the backend setting and the thread counts (docs/ARCHITECTURE.md,
"process state").
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, TypeVar

_T = TypeVar("_T")
_enabled: bool = os.environ.get("SYNTHPERF_PROGRESS", "1") not in ("0", "false", "False")

#: The logger of the plain progress lines (off a terminal).
logger = logging.getLogger("synthperf.progress")


def enable_progress() -> None:
    """Show progress (bars on a terminal, log lines elsewhere); the default."""
    global _enabled
    _enabled = True


def disable_progress() -> None:
    """Hide all synthperf progress bars and progress log lines."""
    global _enabled
    _enabled = False


def progress_enabled() -> bool:
    """Whether progress is currently reported."""
    return _enabled


def _interactive() -> bool:
    """Whether stderr (where bars go) is a terminal."""
    stream = sys.stderr
    try:
        return stream is not None and bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced by an object without isatty
        return False


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


class _LineReporter:
    """Plain INFO lines: start, each tenth of ``total`` (when known), end with the elapsed time."""

    def __init__(self, description: str, total: int | None) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self.next_tenth = 1
        self.t0 = time.monotonic()
        logger.info("%s: started (%s items)", description, total if total is not None else "?")

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.total:
            return
        while self.next_tenth <= 10 and self.done * 10 >= self.next_tenth * self.total:
            if self.next_tenth < 10:
                logger.info("%s: %d/%d (%d%%)", self.description, self.done, self.total, 10 * self.next_tenth)
            self.next_tenth += 1

    def finish(self) -> None:
        logger.info("%s: done, %d items in %.1f s", self.description, self.done, time.monotonic() - self.t0)


def track(iterable: Iterable[_T], description: str, total: int | None = None) -> Iterator[_T]:
    """Iterate ``iterable`` while reporting progress (see the module docstring)."""
    if not _enabled:
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if not _interactive():
        reporter = _LineReporter(description, total)
        for item in iterable:
            yield item
            reporter.advance()
        reporter.finish()
        return
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True,
                          console=_stderr_console())


@contextmanager
def progress_task(description: str, total: int) -> Iterator[Callable[..., None]]:
    """Context manager yielding ``advance(n=1)``: a bar on stderr on a terminal, log lines
    elsewhere, a no-op callable when progress is off."""
    if not _enabled:
        yield lambda n=1: None
        return
    if not _interactive():
        reporter = _LineReporter(description, total)
        yield reporter.advance
        reporter.finish()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True, console=_stderr_console(),
    ) as bar:
        task_id = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task_id, n)
