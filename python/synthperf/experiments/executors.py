"""Executors mapping :func:`.tasks.run_task` over tasks: ``local``, ``ray`` and ``slurm``.

A thin wrapper over :func:`synthperf._parallel.execute` (the one executor layer, shared with
``synthperf.guidance.generate``). Every task writes its own chunk file, so an executor only
has to run tasks; the results are identical whatever the executor and the number of workers.

- ``local`` (default): ``workers == 1`` runs in this process (in order); ``workers > 1`` uses a
  ``ProcessPoolExecutor`` with the ``spawn`` start method (safe with torch/numba threads).
  Those worker processes die with the main process, even when it is SIGKILLed: each worker
  arms ``PR_SET_PDEATHSIG`` (``SIGKILL``) via ``prctl`` on Linux and, everywhere, a daemon
  thread that exits the worker as soon as its parent pid changes (:class:`ParentGuard`).
- ``ray``: ``ray.init(address=address)`` (an existing cluster, e.g. ``ray://host:10001`` or
  ``auto``) or a local ``ray.init()`` when no address is given; one remote call per task.
- ``slurm``: ``submitit.AutoExecutor`` job arrays (``cluster="local"`` runs them as local
  subprocesses, as the tests do); logs go to ``OUT/slurm``. Chunk files need a shared filesystem.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .._parallel import EXECUTORS
from .._parallel import execute as _execute
from .tasks import Task, run_task

__all__ = ["EXECUTORS", "execute", "ParentGuard"]

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.25
_armed_for: int | None = None


def _arm(parent: int) -> None:
    """Make this (worker) process die with ``parent``: prctl on Linux plus a parent-pid watcher thread."""
    global _armed_for
    if _armed_for == parent:
        return
    _armed_for = parent
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watcher below still covers it
    if os.getppid() != parent:  # the parent died before the guard was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_POLL_S)
            if os.getppid() != parent:  # re-parented: the main process is gone
                os._exit(1)

    threading.Thread(target=watch, name="synthperf-parent-guard", daemon=True).start()


class ParentGuard:
    """Picklable wrapper ``ParentGuard(fn)(item) = fn(item)`` that first ties the calling worker
    process to the process that created the guard (see the module docstring); a no-op there."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.parent = os.getpid()

    def __call__(self, item: Any) -> Any:
        if os.getpid() != self.parent:
            _arm(self.parent)
        return self.fn(item)


def execute(tasks: Sequence[Task], *, executor: str = "local", workers: int = 1, address: str | None = None,
            log_dir: str | Path | None = None, slurm: Mapping[str, Any] | None = None,
            fn: Callable[[Task], str] = run_task, resources: Mapping[str, Any] | None = None) -> list[str]:
    """Run ``tasks`` (``fn(task)`` each); returns the written chunk paths in task order.

    Arguments as :func:`synthperf._parallel.execute`; ``ValueError`` names a bad executor or
    ``workers`` before anything runs. Local worker processes are tied to this one (:class:`ParentGuard`).
    """
    if executor == "local" and not isinstance(workers, bool) and isinstance(workers, int) and workers > 1:
        fn = ParentGuard(fn)
    return _execute(tasks, fn, executor=executor, workers=workers, resources=resources, address=address,
                    log_dir=log_dir, slurm=slurm, desc="experiment chunks")
