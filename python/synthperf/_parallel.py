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

Resources (issue 16 "Runs"): :func:`device_resources` turns ``--device cuda`` into one GPU per
task (Ray ``num_gpus``, submitit ``gpus_per_node``); :func:`parse_slurm_options` reads the
CLI's repeatable ``--slurm KEY=VALUE`` (``gpus``, ``mem``, ``account``, ``partition``,
``time``, ...) into submitit parameters, and :func:`slurm_cli_options` adds ``cpus_per_task``
from this process's thread setting (``--threads`` / ``SYNTHPERF_NUM_THREADS``) unless
``--slurm cpus=N`` is given. :func:`resource_defaults` lets a CLI
set per-task resources for calls that pass none through intermediate layers.
:func:`ray_options` and :func:`slurm_parameters` build exactly what is handed to
``ray.remote`` and ``AutoExecutor.update_parameters`` (tested without a cluster).
"""
from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import numbers
import re
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

__all__ = ["EXECUTORS", "RESOURCE_KEYS", "SLURM_KEYS", "execute", "device_resources", "parse_slurm_options",
           "resource_defaults", "ray_options", "slurm_cli_options", "slurm_parameters", "local_gpu_count"]

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

_DEFAULT_RESOURCES: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "synthperf_default_resources", default=None)


@contextlib.contextmanager
def resource_defaults(resources: Mapping[str, Any] | None) -> Iterator[None]:
    """Within the block, :func:`execute` calls that pass no ``resources`` use these (checked
    now: keys among :data:`RESOURCE_KEYS`). ``None`` keeps the built-in default."""
    if resources is not None:
        _check_resources(resources)
    token = _DEFAULT_RESOURCES.set(None if resources is None else dict(resources))
    try:
        yield
    finally:
        _DEFAULT_RESOURCES.reset(token)


def device_resources(device: str | None) -> dict[str, Any]:
    """Per-task resources for a device string: ``cuda``/``cuda:N`` -> ``{"gpus": 1}``; ``cpu``,
    ``auto`` or ``None`` -> ``{}``. Anything else raises ValueError naming ``device``."""
    if device is None or device in ("cpu", "auto"):
        return {}
    if isinstance(device, str) and re.fullmatch(r"cuda(:\d+)?", device):
        return {"gpus": 1}
    raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {device!r}")


#: ``--slurm KEY=VALUE`` keys -> submitit ``AutoExecutor`` parameter names (and value kinds)
SLURM_KEYS: dict[str, tuple[str, str]] = {
    "gpus": ("gpus_per_node", "int"), "gpus_per_node": ("gpus_per_node", "int"),
    "cpus": ("cpus_per_task", "int"), "cpus_per_task": ("cpus_per_task", "int"),
    "mem": ("mem_gb", "mem"), "mem_gb": ("mem_gb", "mem"),
    "time": ("timeout_min", "time"), "timeout_min": ("timeout_min", "time"),
    "nodes": ("nodes", "int"), "tasks_per_node": ("tasks_per_node", "int"),
    "array_parallelism": ("slurm_array_parallelism", "int"),
    "name": ("name", "str"), "job_name": ("name", "str"), "cluster": ("cluster", "str"),
    **{k: (f"slurm_{k}", "str") for k in ("account", "partition", "qos", "constraint", "exclude", "gres",
                                           "comment", "nodelist", "mail_type", "mail_user", "wckey",
                                           "mem_per_cpu", "mem_per_gpu", "cpus_per_gpu", "gpus_per_task")},
}
SLURM_KEYS.update({f"slurm_{k}": v for k, v in list(SLURM_KEYS.items()) if v[0] == f"slurm_{k}"})  # submitit names
_MEM_UNITS = {"": 1.0, "k": 2.0**-20, "m": 2.0**-10, "g": 1.0, "t": 2.0**10}


def _slurm_time(raw: str) -> int:
    """Slurm's time formats -> minutes: ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", raw.strip())
    if not m:
        raise ValueError(f"--slurm time must be minutes or a Slurm time (M:S, H:M:S, D-H:M:S), got {raw!r}")
    d, a, b, c = (int(x) if x is not None else None for x in m.groups())
    if d is not None:  # D-H[:M[:S]]
        minutes = d * 1440 + a * 60 + (b or 0) + (1 if c else 0)
    elif c is not None:  # H:M:S
        minutes = a * 60 + b + (1 if c else 0)
    elif b is not None:  # M:S
        minutes = a + (1 if b else 0)
    else:
        minutes = a
    if minutes < 1:
        raise ValueError(f"--slurm time must be at least one minute, got {raw!r}")
    return minutes


def parse_slurm_options(items: Sequence[str] | None) -> dict[str, Any]:
    """``["gpus=2", "mem=32G", "account=abc", "time=2:00:00"]`` -> submitit parameters
    (``{"gpus_per_node": 2, "mem_gb": 32.0, "slurm_account": "abc", "timeout_min": 120}``).

    Keys: :data:`SLURM_KEYS` (``mem`` takes a number of GB or a Slurm size ``512M``/``32G``/
    ``1T``; ``time`` minutes or a Slurm time). Raises ValueError naming ``--slurm`` and the key
    for a malformed item, an unknown key, a key given twice or a bad value."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, raw = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key or not raw.strip():
            raise ValueError(f"--slurm {item!r} must have the form KEY=VALUE (e.g. --slurm gpus=1 --slurm mem=16G)")
        if key not in SLURM_KEYS:
            raise ValueError(f"--slurm key {key!r} is unknown; known keys: {', '.join(sorted(SLURM_KEYS))}")
        name, kind = SLURM_KEYS[key]
        if name in out:
            raise ValueError(f"--slurm {name} is given twice (as {key!r}); keep one")
        raw = raw.strip()
        if kind == "int":
            if not raw.isdigit() or int(raw) < (0 if name == "gpus_per_node" else 1):
                raise ValueError(f"--slurm {key} must be an integer >= {0 if name == 'gpus_per_node' else 1}, "
                                 f"got {raw!r}")
            out[name] = int(raw)
        elif kind == "mem":
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?", raw)
            if not m or float(m.group(1)) <= 0:
                raise ValueError(f"--slurm {key} must be a size in GB or with a unit (512M, 32G, 1T), got {raw!r}")
            out[name] = float(m.group(1)) * _MEM_UNITS[m.group(2).lower()]
        elif kind == "time":
            out[name] = _slurm_time(raw)
        else:
            out[name] = raw
    return out


def slurm_cli_options(items: Sequence[str] | None) -> dict[str, Any]:
    """:func:`parse_slurm_options` plus ``cpus_per_task`` = this process's thread setting (what
    ``--threads``/``SYNTHPERF_NUM_THREADS`` configured) unless ``cpus``/``cpus_per_task`` is given."""
    from . import _native

    out = parse_slurm_options(items)
    out.setdefault("cpus_per_task", max(1, int(_native.max_threads())))
    return out


def local_gpu_count() -> int:
    """CUDA devices this process sees (0 without torch or CUDA); the CLIs check it before asking a
    local Ray for GPUs, which would otherwise wait forever."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def ray_options(res: Mapping[str, Any], workers: int, address: str | None) -> dict[str, Any]:
    """The ``ray.remote(**options)`` of one task: ``num_cpus``, ``num_gpus`` when GPUs are
    asked for, ``memory`` (bytes) for ``mem_gb``, and for a local Ray (no ``address``) thread
    variables splitting this process's thread budget over ``workers``."""
    res = _check_resources(res)
    options: dict[str, Any] = {"num_cpus": int(res["cpus"])}
    if res.get("gpus"):
        options["num_gpus"] = res["gpus"]
    if res.get("mem_gb"):
        options["memory"] = int(res["mem_gb"] * 2**30)
    if not address:  # a local ray shares this machine: split this process's thread budget
        n = str(_threads_per_worker(workers))
        options["runtime_env"] = {"env_vars": {v: n for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                               "OPENBLAS_NUM_THREADS")}}
    return options


def slurm_parameters(res: Mapping[str, Any] | None, workers: int, options: Mapping[str, Any] | None
                     ) -> tuple[str | None, dict[str, Any]]:
    """``(cluster, parameters)`` for ``submitit.AutoExecutor(cluster=...).update_parameters``.

    ``cpus_per_task``, ``gpus_per_node``, ``mem_gb`` and ``timeout_min`` come from ``res``;
    ``options`` (e.g. :func:`parse_slurm_options`, where the CLIs put ``cpus_per_task`` from the
    thread setting) win over them. With ``cluster="local"`` the ``slurm_*`` parameters are
    dropped (submitit's local executor rejects them)."""
    res = _check_resources(res)
    opts = dict(options or {})
    cluster = opts.pop("cluster", None)
    params: dict[str, Any] = {"timeout_min": int(res.get("timeout_min") or 60), "slurm_array_parallelism": workers,
                              "cpus_per_task": int(res["cpus"])}
    if res.get("gpus"):
        params["gpus_per_node"] = res["gpus"]
    if res.get("mem_gb"):
        params["mem_gb"] = res["mem_gb"]
    params.update(opts)
    if cluster == "local":
        params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
    return cluster, params


def execute(items: Sequence[T], fn: Callable[[T], R], *, executor: str = "local", workers: int = 1,
            resources: Mapping[str, Any] | None = None, address: str | None = None,
            log_dir: str | Path | None = None, slurm: Mapping[str, Any] | None = None,
            desc: str = "tasks") -> list[R]:
    """Run ``fn(item)`` for each of ``items``; returns the results in item order.

    ``executor``: one of :data:`EXECUTORS`. ``workers`` (int >= 1): local processes, Ray CPUs of
    a local Ray, or the Slurm array parallelism. ``resources`` (per item, keys
    :data:`RESOURCE_KEYS`; default ``{"cpus": 1, "gpus": 0}``): Ray ``num_cpus``/``num_gpus``/
    ``memory``, Slurm ``cpus_per_task``/``gpus_per_node``/``mem_gb``/``timeout_min``; the local
    executor runs on this machine and ignores them; ``None`` takes :func:`resource_defaults`).
    ``address``: a Ray cluster. ``log_dir``:
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
    if resources is None:
        resources = _DEFAULT_RESOURCES.get()
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

    options = ray_options(res, workers, address)
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
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


def _slurm(items: list, fn: Callable, workers: int, res: Mapping[str, Any], log_dir, options: dict,
           desc: str) -> list:
    try:
        import submitit
    except ImportError:
        raise ImportError("executor 'slurm' needs submitit: pip install 'synthperf[dist]'") from None
    from .progress import progress_task

    cluster, params = slurm_parameters(res, workers, options)
    folder = Path(log_dir or "slurm_logs") / "%j"
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    ex.update_parameters(**params)
    jobs = ex.map_array(fn, items)
    out = []
    with progress_task(f"{desc} (slurm)", total=len(jobs)) as advance:
        for job in jobs:
            out.append(job.result())
            advance()
    return out
