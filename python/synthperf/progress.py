"""Progress bars (rich) with one global on/off switch.

``disable_progress()`` silences every bar synthperf draws; ``enable_progress()`` turns them
back on. The switch and the backend choice are the only global mutable state in the package.
The environment variable ``SYNTHPERF_PROGRESS=0`` starts with bars disabled.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterable, Iterator, TypeVar

_T = TypeVar("_T")
_enabled: bool = os.environ.get("SYNTHPERF_PROGRESS", "1") not in ("0", "false", "False")


def enable_progress() -> None:
    """Show progress bars for long work (the default)."""
    global _enabled
    _enabled = True


def disable_progress() -> None:
    """Hide all synthperf progress bars."""
    global _enabled
    _enabled = False


def progress_enabled() -> bool:
    """Whether progress bars are currently shown."""
    return _enabled


def track(iterable: Iterable[_T], description: str, total: int | None = None) -> Iterator[_T]:
    """Iterate with a rich progress bar when progress is enabled, plainly otherwise."""
    if not _enabled:
        yield from iterable
        return
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True)


@contextmanager
def progress_task(description: str, total: int):
    """Context manager yielding ``advance(n=1)``; a no-op callable when progress is off."""
    if not _enabled:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task_id = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task_id, n)
