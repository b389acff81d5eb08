"""Executors mapping :func:`.tasks.run_task` over tasks: ``local``, ``ray`` and ``slurm``.

A thin wrapper over :func:`synthperf._parallel.execute` (the one executor layer, shared with
``synthperf.guidance.generate``). Every task writes its own chunk file, so an executor only
has to run tasks; the results are identical whatever the executor and the number of workers.

- ``local`` (default): ``workers == 1`` runs in this process (in order); ``workers > 1`` uses a
  ``ProcessPoolExecutor`` with the ``spawn`` start method (safe with torch/numba threads).
- ``ray``: ``ray.init(address=address)`` (an existing cluster, e.g. ``ray://host:10001`` or
  ``auto``) or a local ``ray.init()`` when no address is given; one remote call per task.
- ``slurm``: ``submitit.AutoExecutor`` job arrays (``cluster="local"`` runs them as local
  subprocesses, as the tests do); logs go to ``OUT/slurm``. Chunk files need a shared filesystem.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .._parallel import EXECUTORS
from .._parallel import execute as _execute
from .tasks import Task, run_task

__all__ = ["EXECUTORS", "execute"]


def execute(tasks: Sequence[Task], *, executor: str = "local", workers: int = 1, address: str | None = None,
            log_dir: str | Path | None = None, slurm: Mapping[str, Any] | None = None,
            fn: Callable[[Task], str] = run_task, resources: Mapping[str, Any] | None = None) -> list[str]:
    """Run ``tasks`` (``fn(task)`` each); returns the written chunk paths in task order.

    Arguments as :func:`synthperf._parallel.execute`; ``ValueError`` names a bad executor or
    ``workers`` before anything runs.
    """
    return _execute(tasks, fn, executor=executor, workers=workers, resources=resources, address=address,
                    log_dir=log_dir, slurm=slurm, desc="experiment chunks")
