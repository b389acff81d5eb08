"""Public signatures resolve under typing.get_type_hints and use no bare typing.Any (issue 16).

CLEAN lists the subpackages whose public entry points (``__all__`` functions, classes and their
public methods) have been given precise types; add a subpackage here once it is cleaned up.
"""
from __future__ import annotations

import importlib
import inspect
import typing

import pytest
import torch

CLEAN = ["synthperf.metrics"]

# (qualified name, parameter) pairs where Any is justified. Empty for now.
ALLOWED_ANY: set[tuple[str, str]] = set()


def _entry_points(modname: str):
    mod = importlib.import_module(modname)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj):
            for mname, member in vars(obj).items():
                if inspect.isfunction(member) and (not mname.startswith("_") or mname in ("__init__", "__call__")):
                    yield f"{modname}.{name}.{mname}", member
        elif inspect.isfunction(obj):
            yield f"{modname}.{name}", obj


CASES = [c for m in CLEAN for c in _entry_points(m)]


def test_entry_points_found():
    assert len(CASES) >= 10, [q for q, _ in CASES]


@pytest.mark.parametrize("qual,fn", CASES, ids=[q for q, _ in CASES])
def test_hints_resolve_and_no_bare_any(qual, fn):
    hints = typing.get_type_hints(fn, localns={"torch": torch})  # raises on a broken forward reference
    bare = [p for p, t in hints.items() if t is typing.Any and (qual, p) not in ALLOWED_ANY]
    assert not bare, f"{qual}: bare typing.Any for {bare}"


def test_detects_bare_any():
    def f(x: typing.Any) -> int: ...
    assert typing.get_type_hints(f)["x"] is typing.Any
