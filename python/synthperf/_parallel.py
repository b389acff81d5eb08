"""The one executor layer: map a function over items locally, on Ray or on Slurm (imports no subpackage).

:func:`execute` runs ``fn(item)`` for every item and returns the results in item order,
whatever the executor and the number of workers. Callers make each item's work idempotent and
write its output atomically (:mod:`synthperf._io`), so a rerun after a kill only redoes what was
not finished; the executor itself keeps no state.

- ``local`` (default): ``workers == 1`` runs in this process, in order; ``workers > 1`` uses a
  ``ProcessPoolExecutor`` with the ``spawn`` start method (safe with torch/numba threads) and
  splits this process's thread budget over the workers. The first failure cancels the items
  not yet started and is raised.
- ``ray``: ``ray.init(address=address)`` (an existing cluster, e.g. ``ray://host:10001`` or
  ``auto``) or a local ``ray.init(num_cpus=workers)``; one remote call per item.
- ``slurm``: ``submitit.AutoExecutor`` job arrays (``slurm={"cluster": "local"}`` runs them as
  local subprocesses, as the tests do); logs under ``log_dir``. Outputs need a shared filesystem.

``fn`` and the items must be picklable for every executor but local with one worker
(a module-level function and plain data or dataclasses).
"""
from __future__ import annotations

import multiprocessing
import numbers
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

__all__ = ["EXECUTORS", "RESOURCE_KEYS", "execute"]

EXECUTORS = ("local", "ray", "slurm")
#: per-item resources :func:`execute` understands (ray and slurm; local runs where it is)
RESOURCE_KEYS = ("cpus", "gpus", "mem_gb", "timeout_min")

T = TypeVar("T")
R = TypeVar("R")


def _check_resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    if resources is None:
        return {"cpus": 1, "gpus": 0}
    if not isinstance(resources, Mapping):
        raise TypeError(f"resources must be a mapping with keys among {RESOURCE_KEYS}, got {type(resources).__name__}")
    unknown = sorted(set(resources) - set(RESOURCE_KEYS))
    if unknown:
        raise ValueError(f"resources has unknown keys {unknown}; expected keys among {RESOURCE_KEYS}")
    out = {"cpus": 1, "gpus": 0, **resources}
    for key in ("cpus", "timeout_min"):
        v = out.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
            raise ValueError(f"resources[{key!r}] must be an integer >= 1, got {v!r}")
    for key in ("gpus", "mem_gb"):
        v = out.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not v >= 0):
            raise ValueError(f"resources[{key!r}] must be a number >= 0, got {v!r}")
    return out


def execute(items: Sequence[T], fn: Callable[[T], R], *, executor: str = "local", workers: int = 1,
            resources: Mapping[str, Any] | None = None, address: str | None = None,
            log_dir: str | Path | None = None, slurm: Mapping[str, Any] | None = None,
            desc: str = "tasks") -> list[R]:
    """Run ``fn(item)`` for each of ``items``; returns the results in item order.

    ``executor``: one of :data:`EXECUTORS`. ``workers`` (int >= 1): local processes, Ray CPUs of
    a local Ray, or the Slurm array parallelism. ``resources`` (per item, keys
    :data:`RESOURCE_KEYS`; default ``{"cpus": 1, "gpus": 0}``): Ray ``num_cpus``/``num_gpus``/
    ``memory``, Slurm ``cpus_per_task``/``gpus_per_node``/``mem_gb``/``timeout_min``; the local
    executor runs on this machine and ignores them. ``address``: a Ray cluster. ``log_dir``:
    submitit logs (default ``slurm_logs``). ``slurm``: extra ``AutoExecutor`` parameters (they
    win over ``resources``; ``cluster="local"`` for local subprocesses). ``desc``: progress label.
    Raises ``ValueError`` naming the bad argument before anything runs.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if slurm is not None and not isinstance(slurm, Mapping):
        raise TypeError(f"slurm must be a mapping of submitit parameters, got {type(slurm).__name__}")
    res = _check_resources(resources)
    items = list(items)
    if not items:
        return []
    workers = int(workers)
    if executor == "local":
        return _local(items, fn, workers, desc)
    if executor == "ray":
        return _ray(items, fn, workers, res, address, desc)
    return _slurm(items, fn, workers, res, log_dir, dict(slurm or {}), desc)


def _threads_per_worker(workers: int) -> int:
    """This process's thread budget (set by ``configure_threads``) shared among ``workers``."""
    from . import _native

    return max(1, int(_native.max_threads()) // workers)


def _local(items: list, fn: Callable, workers: int, desc: str) -> list:
    from ._threads import configure_threads
    from .progress import progress_task

    out: list = [None] * len(items)
    with progress_task(desc, total=len(items)) as advance:
        if workers == 1:
            for i, item in enumerate(items):
                out[i] = fn(item)
                advance()
            return out
        ctx = multiprocessing.get_context("spawn")
        n_proc = min(workers, len(items))
        with ProcessPoolExecutor(max_workers=n_proc, mp_context=ctx, initializer=configure_threads,
                                 initargs=(_threads_per_worker(n_proc),)) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    if fut.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise fut.exception()
                    out[futures[fut]] = fut.result()
                    advance()
    return out


def _ray(items: list, fn: Callable, workers: int, res: dict, address: str | None, desc: str) -> list:
    try:
        import ray
    except ImportError:
        raise ImportError("executor 'ray' needs ray: pip install 'synthperf[dist]'") from None
    from .progress import progress_task

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        options: dict[str, Any] = {"num_cpus": int(res["cpus"])}
        if res.get("gpus"):
            options["num_gpus"] = res["gpus"]
        if res.get("mem_gb"):
            options["memory"] = int(res["mem_gb"] * 2**30)
        if not address:  # a local ray shares this machine: split this process's thread budget
            n = str(_threads_per_worker(workers))
            options["runtime_env"] = {"env_vars": {v: n for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                   "OPENBLAS_NUM_THREADS")}}
        remote = ray.remote(**options)(fn)
        refs = [remote.remote(item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list = [None] * len(items)
        pending = list(refs)
        with progress_task(f"{desc} (ray)", total=len(items)) as advance:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    out[index[ref]] = ray.get(ref)
                    advance()
        return out
    finally:
        if started:
            ray.shutdown()


def _slurm(items: list, fn: Callable, workers: int, res: dict, log_dir, options: dict, desc: str) -> list:
    try:
        import submitit
    except ImportError:
        raise ImportError("executor 'slurm' needs submitit: pip install 'synthperf[dist]'") from None
    from .progress import progress_task

    cluster = options.pop("cluster", None)
    folder = Path(log_dir or "slurm_logs") / "%j"
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params: dict[str, Any] = {"timeout_min": int(res.get("timeout_min") or 60), "slurm_array_parallelism": workers,
                              "cpus_per_task": int(res["cpus"])}
    if res.get("gpus"):
        params["gpus_per_node"] = res["gpus"]
    if res.get("mem_gb"):
        params["mem_gb"] = res["mem_gb"]
    params.update(options)
    if cluster == "local":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    ex.update_parameters(**params)
    jobs = ex.map_array(fn, items)
    out = []
    with progress_task(f"{desc} (slurm)", total=len(jobs)) as advance:
        for job in jobs:
            out.append(job.result())
            advance()
    return out
