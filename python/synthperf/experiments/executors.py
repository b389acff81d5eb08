"""Executors mapping :func:`.tasks.run_task` over tasks: ``local``, ``ray`` and ``slurm``.

Every task writes its own chunk file, so an executor only has to run tasks; the results are
identical whatever the executor and the number of workers.

- ``local`` (default): ``workers == 1`` runs in this process (in order); ``workers > 1`` uses a
  ``ProcessPoolExecutor`` with the ``spawn`` start method (safe with torch/numba threads).
- ``ray``: ``ray.init(address=address)`` (an existing cluster, e.g. ``ray://host:10001`` or
  ``auto``) or a local ``ray.init()`` when no address is given; one remote call per task.
- ``slurm``: ``submitit.AutoExecutor`` job arrays (``cluster="local"`` runs them as local
  subprocesses, as the tests do); logs go to ``OUT/slurm``. Chunk files need a shared filesystem.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .._threads import configure_threads
from ..progress import progress_task
from .tasks import Task, run_task

EXECUTORS = ("local", "ray", "slurm")
__all__ = ["EXECUTORS", "execute"]


def execute(tasks: Sequence[Task], *, executor: str = "local", workers: int = 1, address: str | None = None,
            log_dir: str | Path | None = None, slurm: Mapping[str, Any] | None = None,
            fn: Callable[[Task], str] = run_task) -> list[str]:
    """Run ``tasks``; returns the written chunk paths in task order."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not tasks:
        return []
    if executor == "local":
        return _local(tasks, workers, fn)
    if executor == "ray":
        return _ray(tasks, workers, address, fn)
    return _slurm(tasks, workers, log_dir, dict(slurm or {}), fn)


def _threads_per_worker(workers: int) -> int:
    """This process's thread budget (set by ``configure_threads``) shared among ``workers``."""
    from .. import _native

    return max(1, int(_native.max_threads()) // workers)


def _local(tasks, workers, fn):
    out: list[str | None] = [None] * len(tasks)
    with progress_task("experiment chunks", total=len(tasks)) as advance:
        if workers == 1:
            for i, t in enumerate(tasks):
                out[i] = fn(t)
                advance()
            return out
        ctx = multiprocessing.get_context("spawn")
        n_proc = min(workers, len(tasks))
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=ctx, initializer=configure_threads,
                                 initargs=(_threads_per_worker(n_proc),)) as pool:
            futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                advance()
    return out


def _ray(tasks, workers, address, fn):
    try:
        import ray
    except ImportError:
        raise ImportError("executor 'ray' needs ray: pip install 'synthperf[dist]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        options: dict[str, Any] = {"num_cpus": 1}
        if not address:  # a local ray shares this machine: split this process's thread budget
            n = str(_threads_per_worker(workers))
            options["runtime_env"] = {"env_vars": {v: n for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                   "OPENBLAS_NUM_THREADS")}}
        remote = ray.remote(**options)(fn)
        refs = [remote.remote(t) for t in tasks]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list[str | None] = [None] * len(tasks)
        pending = list(refs)
        with progress_task("experiment chunks (ray)", total=len(tasks)) as advance:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    out[index[ref]] = ray.get(ref)
                    advance()
        return out
    finally:
        if started:
            ray.shutdown()


def _slurm(tasks, workers, log_dir, options, fn):
    try:
        import submitit
    except ImportError:
        raise ImportError("executor 'slurm' needs submitit: pip install 'synthperf[dist]'") from None
    cluster = options.pop("cluster", None)
    folder = Path(log_dir or "slurm_logs") / "%j"
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {"timeout_min": 60, "slurm_array_parallelism": workers, "cpus_per_task": 1}
    params.update(options)
    if cluster == "local":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    jobs = ex.map_array(fn, list(tasks))
    out = []
    with progress_task("experiment chunks (slurm)", total=len(jobs)) as advance:
        for job in jobs:
            out.append(job.result())
            advance()
    return out
