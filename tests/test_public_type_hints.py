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

CLEAN = ["synthperf.metrics", "synthperf.conformal", "synthperf.ops", "synthperf.flows", "synthperf.experiments",
         "synthperf.guidance", "synthperf.selective", "synthperf.selective.utils", "synthperf.selective.scores"]

# (qualified name, parameter) pairs where Any is justified:
# - predict_interval(**kwargs): MAPIE's keyword arguments, forwarded unchanged to the base method.
ALLOWED_ANY: set[tuple[str, str]] = {
    ("synthperf.conformal.SplitConformalRegressor.predict_interval", "kwargs"),
    ("synthperf.conformal.MondrianConformalRegressor.predict_interval", "kwargs"),
    ("synthperf.conformal.SPPIRegressor.predict_interval", "kwargs"),
}


def _entry_points(modname: str):
    mod = importlib.import_module(modname)
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj):  # its own and inherited synthperf methods (mixins included)
            seen: set[str] = set()
            for klass in obj.__mro__:
                if not klass.__module__.startswith("synthperf"):
                    continue
                for mname, member in vars(klass).items():
                    if mname in seen or not inspect.isfunction(member):
                        continue
                    if not mname.startswith("_") or mname in ("__init__", "__call__"):
                        seen.add(mname)
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
