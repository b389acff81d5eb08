"""``run``: config -> grid points -> chunked tasks -> executor -> result store -> report.

Resume is the default: chunks whose file exists are skipped, so re-running a killed command
finishes the missing chunks only and re-running a finished one computes nothing (the report
is rebuilt only when something new was computed or it is missing).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .config import load_config, resolve, to_dict
from .executors import execute
from .store import atomic_write_bytes, chunk_path, point_dir, write_point_config
from .tasks import Task, plan_chunks

__all__ = ["RunSummary", "run_experiment", "plan_tasks"]


@dataclass(frozen=True)
class RunSummary:
    """What a call did: grid points, chunks in total, chunks computed now, and the report path."""

    out: Path
    points: int
    chunks: int
    computed: int
    report: Path | None


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


def run_experiment(config: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike,
                   overrides: Sequence[str] | Mapping[str, Any] = (), *, executor: str = "local",
                   workers: int = 1, address: str | None = None, slurm: Mapping[str, Any] | None = None,
                   report: bool = True) -> RunSummary:
    """Run (or resume) every grid point of ``config`` into ``out``; see the module docstring."""
    raw = load_config(config) if isinstance(config, (str, os.PathLike)) else dict(config)
    out = Path(out)
    tasks, points = plan_tasks(raw, out, overrides)
    for i, (cfg, grid) in enumerate(points):
        write_point_config(out, i, to_dict(cfg), grid)
    run_doc = {"config": str(config) if isinstance(config, (str, os.PathLike)) else None,
               "overrides": list(overrides) if not isinstance(overrides, Mapping) else dict(overrides),
               "experiment": points[0][0].experiment, "points": len(points),
               "grid": [g for _, g in points]}
    atomic_write_bytes(out / "run.yaml", yaml.safe_dump(run_doc, sort_keys=False).encode("utf-8"))
    todo = [t for t in tasks if not Path(t.path).is_file()]
    execute(todo, executor=executor, workers=workers, address=address, log_dir=out / "slurm", slurm=slurm)
    missing = [t.path for t in tasks if not Path(t.path).is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} chunk(s) were not written, e.g. {missing[0]}")
    report_path = out / "report.md"
    if report and (todo or not report_path.is_file()):
        from .reports import write_report

        write_report(out)
    return RunSummary(out, len(points), len(tasks), len(todo), report_path if report_path.is_file() else None)


def point_configs(out: str | os.PathLike) -> list[Path]:
    return sorted(point_dir(out, 0).parent.glob("p*/config.yaml"))
