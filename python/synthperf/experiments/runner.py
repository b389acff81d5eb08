"""``run``: config -> grid points -> chunked tasks -> executor -> result store -> report.

Resume is the default, and it trusts nothing on disk: under the run lock (:mod:`synthperf._lock`; a
second process on the same ``out`` is refused) every planned shard is verified with
:func:`.store.check_chunk`. Intact shards are skipped; a damaged one (truncated, bit-flipped,
zeroed, a directory or a foreign file in its place, no sidecar, another config's) is removed,
reported once (one warning line naming it and why) and recomputed; stale temp files are
removed. Shards are keyed by the run's chunk plan (recorded in ``run.yaml``), so files outside
the plan are never read, and a run with another chunking on the same ``out`` is refused
(its config differs). Re-running a finished run computes nothing (the report is rebuilt only
when something new was computed or it is missing).

Disk-full, quota and read-only/permission errors end the run with an ``OSError`` naming the
path (``synthperf run`` exits with status 1 through the shared CLI error handler).
"""
from __future__ import annotations

import errno
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from .._io import is_temp_file, remove_stale_temps
from .config import load_config, resolve, to_dict
from .executors import execute
from .._lock import RunLock
from .store import (atomic_write_bytes, check_chunk, chunk_path, config_digest, discard_chunk, point_dir,
                    sidecar_path, strays, write_point_config)
from .tasks import Task, plan_chunks

__all__ = ["RunSummary", "run_experiment", "plan_tasks", "storage_errors"]

log = logging.getLogger("synthperf.experiments")

_STORAGE_REASONS = {errno.ENOSPC: "the disk is full (ENOSPC: no space left on device)",
                    errno.EDQUOT: "the disk quota is exceeded (EDQUOT)",
                    errno.EROFS: "the file system is read-only (EROFS)",
                    errno.EACCES: "permission denied (EACCES: is the output directory read-only?)",
                    errno.EPERM: "operation not permitted (EPERM: is the output directory read-only?)"}


@dataclass(frozen=True)
class RunSummary:
    """What a call did: grid points, chunks in total, chunks computed now, the report path, and
    ``recomputed``: ``(path, reason)`` of every damaged shard found and recomputed."""

    out: Path
    points: int
    chunks: int
    computed: int
    report: Path | None
    recomputed: tuple[tuple[str, str], ...] = ()


@contextmanager
def storage_errors(out: str | os.PathLike) -> Iterator[None]:
    """Turn a disk-full, quota, read-only or permission ``OSError`` into one naming the path.

    The message names the file (a temp file's real target folder) or ``out``; other errors pass.
    """
    try:
        yield
    except OSError as exc:
        reason = _STORAGE_REASONS.get(exc.errno) if type(exc) in (OSError, PermissionError) else None
        if reason is None:
            raise
        target = Path(exc.filename) if exc.filename else Path(out)
        if is_temp_file(target):
            target = target.parent
        err = OSError(f"cannot write {target} (run directory {out}): {reason}")
        err.errno = exc.errno
        raise err from None


def plan_tasks(raw: Mapping[str, Any], out: str | os.PathLike,
               overrides: Sequence[str] | Mapping[str, Any] = ()) -> tuple[list[Task], list[tuple[Any, dict]]]:
    """All tasks of a run (finished or not) and the resolved (config, grid values) points."""
    points = resolve(raw, overrides)
    tasks = []
    for i, (cfg, grid) in enumerate(points):
        resolved = to_dict(cfg)
        cfg_json = json.dumps(resolved, sort_keys=True)
        grid_json = json.dumps(grid, sort_keys=True)
        for lo, hi in plan_chunks(cfg):
            tasks.append(Task(cfg.experiment, i, cfg_json, lo, hi, str(chunk_path(out, i, lo, hi)), grid_json))
    return tasks, points


def _triage(tasks: Sequence[Task], out: Path) -> tuple[list[Task], list[tuple[str, str]]]:
    """(tasks to run, [(path, reason) of damaged shards]); damaged shards and stale temps are removed."""
    todo, damaged, digests = [], [], {}
    for t in tasks:
        for p in (Path(t.path), sidecar_path(t.path)):
            remove_stale_temps(p)  # safe: the run lock excludes every other writer of out
        if t.point not in digests:
            digests[t.point] = config_digest(point_dir(out, t.point))
        status, reason = check_chunk(t.path, config_sha256=digests[t.point])
        if status == "ok":
            continue
        if status == "damaged":
            log.warning("%s: shard %s is damaged (%s); recomputing it", out, t.path, reason)
            discard_chunk(t.path)
            damaged.append((t.path, reason))
        todo.append(t)
    extra = strays(out, [(t.point, t.lo, t.hi) for t in tasks])
    if extra:
        log.warning("%s: ignoring %d file(s) that are not in this run's chunk plan, e.g. %s (never counted)",
                    out, len(extra), extra[0])
    return todo, damaged


def run_experiment(config: str | os.PathLike | Mapping[str, object], out: str | os.PathLike,
                   overrides: Sequence[str] | Mapping[str, object] = (), *, executor: str = "local",
                   workers: int = 1, address: str | None = None, slurm: Mapping[str, object] | None = None,
                   report: bool = True, force: bool = False) -> RunSummary:
    """Run (or resume) every grid point of ``config`` into ``out``; see the module docstring.

    ``force``: take over a run lock whose holder cannot be shown alive (:class:`synthperf._lock.RunLock`).
    Raises :class:`.lock.OutputLockedError` (an ``OSError``) when another run holds ``out``.
    """
    raw = load_config(config) if isinstance(config, (str, os.PathLike)) else dict(config)
    out = Path(out)
    tasks, points = plan_tasks(raw, out, overrides)
    with storage_errors(out), RunLock(out, force=force):
        for i, (cfg, grid) in enumerate(points):
            write_point_config(out, i, to_dict(cfg), grid)
        run_doc = {"config": str(config) if isinstance(config, (str, os.PathLike)) else None,
                   "overrides": list(overrides) if not isinstance(overrides, Mapping) else dict(overrides),
                   "experiment": points[0][0].experiment, "points": len(points),
                   "grid": [g for _, g in points], "chunks": [[t.point, t.lo, t.hi] for t in tasks]}
        atomic_write_bytes(out / "run.yaml", yaml.safe_dump(run_doc, sort_keys=False).encode("utf-8"))
        todo, damaged = _triage(tasks, out)
        execute(todo, executor=executor, workers=workers, address=address, log_dir=out / "slurm", slurm=slurm)
        bad = [(t.path, r) for t in todo for s, r in [check_chunk(t.path)] if s != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} chunk(s) were not written intact, e.g. {bad[0][0]} ({bad[0][1] or 'missing'})")
        report_path = out / "report.md"
        if report and (todo or not report_path.is_file()):
            from .reports import write_report

            write_report(out)
    return RunSummary(out, len(points), len(tasks), len(todo), report_path if report_path.is_file() else None,
                      tuple(damaged))


def point_configs(out: str | os.PathLike) -> list[Path]:
    return sorted(point_dir(out, 0).parent.glob("p*/config.yaml"))
