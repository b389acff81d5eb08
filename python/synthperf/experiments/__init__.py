"""Experiments platform (issue 8): typed YAML configs with grids and overrides, chunked tasks on
local/ray/slurm executors, an atomic resumable Parquet result store, reports and the demo.

Entry points: :func:`run_experiment`, :func:`load_results`, :func:`write_report`,
:func:`plot_results`, :func:`run_demo`; the typer commands live in :mod:`.cli`.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import ConfigError, apply_overrides, expand_grid, load_config, parse_override, resolve
from .runner import RunSummary, run_experiment
from .store import load_results

_LAZY = {"write_report": ".reports", "plot_results": ".reports", "run_demo": ".demo"}

__all__ = ["ConfigError", "RunSummary", "apply_overrides", "expand_grid", "load_config", "load_results",
           "parse_override", "resolve", "run_experiment", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
