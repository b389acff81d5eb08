"""Typed experiment configs: YAML -> validated dataclasses, CLI overrides, Cartesian grids.

Rules (issue 8; the fixes of specs/sppi.md §9 pitfall P1):

- Files are read with ``yaml.safe_load`` semantics through a bounded loader: a document whose
  alias expansion exceeds ``MAX_CONFIG_NODES`` nodes (a "billion laughs" alias bomb) or whose
  aliases are recursive raises ``ConfigError`` before anything is expanded; the top level is a mapping whose ``experiment`` key
  names the schema (``sppi``, ``gafi``, ``flows``, ``guidance``, see :mod:`.schemas`).
- Values are checked by the one shared coercion, :mod:`synthperf._config` (also used by
  :mod:`synthperf.gafi.config`): unknown keys raise ``ValueError`` naming the dotted key and
  listing the known ones; wrong types raise ``TypeError`` naming the dotted key, the expected
  type and the value. ``bool`` is never a number; ``int`` is accepted where a float is
  expected; a numeric string is accepted for a float (PyYAML 1.1 reads ``1e-4`` as a string);
  floats must be finite.
- CLI overrides ``key=value`` parse ``value`` with ``yaml.safe_load``: ``class_conditional=false``
  is ``False`` (upstream's ``bool('False')`` was True), ``alpha=[0.05,0.1]`` is a list, a scalar
  given to a list-valued key becomes a one-element list (``alpha=0.1``, ``methods=SC``), and
  dotted keys (``data.age_range=0-20``) reach nested sections. Overrides are applied before
  grid expansion, so ``n_cal=[10,15]`` makes a grid. The grammar is Hydra's unambiguous part
  (:mod:`synthperf._overrides`): ``+key=v`` adds a key the file lacks, ``++key=v`` sets or
  adds, ``~key`` deletes one (its default applies). ``key=a,b`` is a sweep: with
  ``multirun=True`` (``synthperf run -m``) it becomes a grid axis (:func:`sweep_to_grid`:
  ``n_cal=10,20`` means ``n_cal=[10, 20]``, ``alpha=0.05,0.1`` means ``alpha=[[0.05], [0.1]]``),
  so a sweep is grid points of one run directory; without it, it is an error naming the key.
- Any list given to a scalar-typed key expands into a Cartesian grid; list-valued keys
  (``alpha``, ``methods``, ...; the fields typed ``list``) expand only when given a list of
  lists. The first grid key in document order varies slowest (upstream order).
"""
from __future__ import annotations

import dataclasses
import itertools
import os
import typing
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import yaml

from .._config import MAX_CONFIG_NODES, ConfigError, build as _build, is_union as _is_union, safe_load_bounded
from .._overrides import apply_to as _apply_to, parse_override as _parse_one, parse_overrides as _parse_all
from .._overrides import sweep as _sweep

__all__ = ["ConfigError", "MAX_CONFIG_NODES", "parse_override", "safe_load_bounded", "apply_overrides", "build",
           "expand_grid", "load_config", "resolve", "sweep_to_grid", "to_dict", "schema_for"]

_MISSING = object()


class ExperimentConfig(Protocol):
    """A typed config of one grid point: an instance of a :data:`.schemas.SCHEMAS` dataclass
    (``SPPIConfig``, ``GafiConfig``, ``FlowsConfig``, ``GuidanceConfig``)."""

    @property
    def experiment(self) -> str: ...

    @property
    def name(self) -> str: ...


# ----------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, object]:
    """``"a.b=value"`` -> ``("a.b", yaml.safe_load("value"))``; an empty value is ``None``.

    The plain ``key=value`` form only; the full grammar (``+``, ``++``, ``~``, sweeps) is
    :func:`synthperf._overrides.parse_override`, used by :func:`apply_overrides`/:func:`resolve`."""
    o = _parse_one(text)
    if o.op != "set" or o.is_sweep:
        raise ConfigError(f"override {text!r} is not a plain key=value (use apply_overrides or resolve for "
                          f"+key, ~key and sweeps)")
    return o.key, o.values[0]


def apply_overrides(raw: Mapping[str, object], overrides: Sequence[str] | Mapping[str, object]) -> dict[str, object]:
    """A deep copy of ``raw`` with the overrides applied (grammar of :mod:`synthperf._overrides`:
    ``key=v``, ``+key=v``, ``++key=v``, ``~key``; dotted keys create nested mappings). A sweep
    (``key=a,b``) raises ``ConfigError`` naming the key: sweeps need :func:`resolve` with
    ``multirun=True``. A mapping ``{dotted key: value}`` sets values as they are."""
    return _apply_to(_deepcopy(raw), _sweep(_parse_all(overrides), multirun=False)[0][0])


def _field_type(cls: type, dotted: str) -> Any:
    """The annotation of dotted key ``dotted`` under schema ``cls`` (``_MISSING`` when unknown)."""
    tp: Any = cls
    for part in dotted.split("."):
        section = _section_type(tp)
        if section is None:
            return _MISSING
        hints = _hints(section)
        if part not in hints:
            return _MISSING
        tp = hints[part]
    return tp


def sweep_to_grid(raw: Mapping[str, Any], overrides: Sequence[str] | Mapping[str, Any]) -> list[str]:
    """``-m/--multirun``: the overrides with every sweep ``key=a,b`` rewritten as the grid it
    means (module rules): ``key=[a, b]`` for a scalar-typed key, ``key=[[a], [b]]`` for a
    list-typed key (a value that is already a list stays one grid value). Other overrides are
    returned unchanged. The schema is that of ``raw`` with the overrides applied."""
    ops = _parse_all(overrides)
    if not any(o.is_sweep for o in ops):
        return [o.text for o in ops]
    first = _sweep(ops, multirun=True)[0][0]
    cls = schema_for(_apply_to(_deepcopy(raw), first))
    out = []
    for o in ops:
        if not o.is_sweep:
            out.append(o.text)
            continue
        if o.op == "delete":
            raise ConfigError(f"override {o.text!r}: a deletion cannot sweep")
        tp = _field_type(cls, o.key)
        values = [v if isinstance(v, list) else [v] for v in o.values] if tp is not _MISSING and _is_list_type(tp) \
            else list(o.values)
        prefix = {"set": "", "add": "+", "force": "++"}[o.op]
        out.append(f"{prefix}{o.key}={yaml.safe_dump(values, default_flow_style=True, width=10**9).strip()}")
    return out


def _deepcopy(x: Any) -> Any:
    """Plain-data deep copy with a node budget (``MAX_CONFIG_NODES``) and a cycle check, so a
    mapping built in Python with shared or self-referencing parts fails fast too."""
    budget = [MAX_CONFIG_NODES]
    return _copy(x, budget, set())


def _copy(x: Any, budget: list[int], active: set[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(f"config expands to more than {MAX_CONFIG_NODES} values; refusing to copy it")
    if isinstance(x, (Mapping, list, tuple)):
        if id(x) in active:
            raise ConfigError("config contains itself (recursive structure); configs must be trees")
        active.add(id(x))
        try:
            if isinstance(x, Mapping):
                return {k: _copy(v, budget, active) for k, v in x.items()}
            return [_copy(v, budget, active) for v in x]
        finally:
            active.discard(id(x))
    return x


# ----------------------------------------------------------------------------------------
# Typed validation: the one implementation in synthperf._config (shared with gafi.config)
# ----------------------------------------------------------------------------------------
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_list_type(tp: Any) -> bool:
    if _is_union(tp):
        return any(_is_list_type(a) for a in typing.get_args(tp) if a is not type(None))
    return typing.get_origin(tp) in (list, tuple) or tp in (list, tuple)


def build(cls: type, raw: Mapping[str, Any], *, prefix: str = ""):
    """Instantiate dataclass ``cls`` from ``raw``, validating every key (missing keys keep defaults).

    :func:`synthperf._config.build` with ``wrap_scalars=True`` (a scalar given to a list-valued
    key becomes a one-element list, pitfall P1)."""
    return _build(cls, raw, prefix=prefix, wrap_scalars=True)


def to_dict(obj: Any) -> Any:
    """A dataclass config as plain YAML-safe data (lists, dicts, scalars)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------------------
# Grid expansion
# ----------------------------------------------------------------------------------------
def _grid_axes(cls: type, raw: Mapping[str, Any], prefix: str = "") -> list[tuple[str, list]]:
    """(dotted key, values) for every grid axis of ``raw`` under schema ``cls``, in document order."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    axes: list[tuple[str, list]] = []
    for k, v in raw.items():
        if k not in names:
            raise ConfigError(f"unknown config key {prefix}{k}; known keys"
                              f"{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(names))}")
        tp = hints[k]
        section = _section_type(tp)
        if section is not None and isinstance(v, Mapping):
            axes.extend(_grid_axes(section, v, f"{prefix}{k}."))
        elif isinstance(v, list):
            if _is_list_type(tp):
                if v and all(isinstance(e, list) for e in v):
                    axes.append((f"{prefix}{k}", list(v)))
            else:
                if not v:
                    raise ConfigError(f"{prefix}{k} is an empty list: a grid needs at least one value")
                axes.append((f"{prefix}{k}", list(v)))
    return axes


def _section_type(tp: Any):
    if dataclasses.is_dataclass(tp):
        return tp
    if _is_union(tp):
        for a in typing.get_args(tp):
            if dataclasses.is_dataclass(a):
                return a
    return None


def expand_grid(cls: type, raw: Mapping[str, object]) -> list[tuple[dict[str, object], dict[str, object]]]:
    """Cartesian expansion: a list of ``(raw point config, {dotted key: value of this point})``."""
    axes = _grid_axes(cls, raw)
    if not axes:
        return [(_deepcopy(raw), {})]
    points = []
    for combo in itertools.product(*(vals for _, vals in axes)):
        point = dict(zip((k for k, _ in axes), combo))
        points.append((apply_overrides(raw, point), point))
    return points


# ----------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------
def schema_for(raw: Mapping[str, Any]) -> type:
    from .schemas import SCHEMAS

    kind = raw.get("experiment", _MISSING)
    if kind is _MISSING:
        raise ConfigError(f"config has no 'experiment' key; set it to one of {sorted(SCHEMAS)}")
    if kind not in SCHEMAS:
        raise ConfigError(f"experiment must be one of {sorted(SCHEMAS)}, got {kind!r}")
    return SCHEMAS[kind]


def load_config(path: str | os.PathLike) -> dict[str, object]:
    """The raw mapping of a YAML config file (``yaml.safe_load``), with a clear error otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {str(p)!r} does not exist")
    try:
        raw = safe_load_bounded(p.read_text(encoding="utf-8"), str(p))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(raw).__name__}")
    return raw


def resolve(raw: Mapping[str, object], overrides: Sequence[str] | Mapping[str, object] = (), *,
            multirun: bool = False) -> list[tuple[ExperimentConfig, dict[str, object]]]:
    """Overrides, grid expansion and validation: a list of ``(typed config, grid values)``.

    ``multirun``: sweeps ``key=a,b`` become grid axes (:func:`sweep_to_grid`); without it a
    sweep raises ``ConfigError`` naming the key."""
    if multirun:
        overrides = sweep_to_grid(raw, overrides)
    merged = apply_overrides(raw, overrides)
    cls = schema_for(merged)
    return [(build(cls, point), values) for point, values in expand_grid(cls, merged)]
