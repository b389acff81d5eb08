"""Helpers of the test-only ``seapig`` import shim (``seapig`` -> :mod:`synthperf.selective`).

``alias(name, target)`` makes ``seapig.<x>`` *the same module object* as the synthperf module, so
attribute look-ups and ``monkeypatch.setattr("seapig.risk._rc_curve", ...)`` act on synthperf's code.
``merge(namespace, *targets)`` copies every name (private ones too) of several synthperf modules into
one shim module, for seapig modules whose contents synthperf spreads over more than one file.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any


def alias(name: str, target: str) -> None:
    """Replace ``sys.modules[name]`` (the executing shim module) by the module ``target``."""
    sys.modules[name] = importlib.import_module(target)


def merge(namespace: dict[str, Any], *targets: str) -> None:
    """Copy every attribute except dunders of each module in ``targets`` into ``namespace``."""
    for target in targets:
        module = importlib.import_module(target)
        for key, value in vars(module).items():
            if not (key.startswith("__") and key.endswith("__")):
                namespace.setdefault(key, value)
