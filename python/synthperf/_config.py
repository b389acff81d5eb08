"""The one typed config coercion of synthperf (issue 14 item 1): used by
:mod:`synthperf.experiments.config` (``synthperf run`` YAML configs and overrides) and by
:mod:`synthperf.gafi.config` (upstream GaFi YAML sections). Imports no subpackage.

A value read from YAML (``yaml.safe_load``) is checked against a type annotation by
:func:`coerce`, with the same rules everywhere:

- ``bool`` is only ``true``/``false`` and is never accepted as a number;
- ``int`` is an integer (not a float such as 2.0, not a bool);
- ``float`` takes an int or float, or a numeric string (PyYAML 1.1 reads ``1e-4`` as a
  string), and must be finite (NaN and +-inf are refused);
- ``str`` is a string (a number is refused: quote it in YAML);
- ``Literal[...]`` is one of its values (a bool never matches a non-bool choice);
- ``list[T]`` / ``tuple[T, ...]`` / ``tuple[A, B]`` take a list (fixed-length tuples check the
  length) and come back as list / tuple; with ``wrap_scalars=True`` a scalar becomes a
  one-element list (the experiments layer's CLI rule, specs/sppi.md §9 pitfall P1);
- ``X | None`` / ``Optional[X]`` / unions try each arm in order;
- a dataclass is a section: a mapping built by :func:`build` (missing keys keep defaults);
- ``Any`` passes anything.

Errors name the dotted key: ``TypeError`` for a wrong type (with the expected type and the
value), :class:`ConfigError` (a ``ValueError``) for a bad value or an unknown key (listing
the known ones).

Every config text (``synthperf run`` files, GaFi files, CLI override values) is parsed by
:func:`safe_load_bounded`: ``yaml.safe_load`` semantics, but alias bombs and recursive aliases
raise :class:`ConfigError` before anything is expanded.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Mapping, Union

import yaml

__all__ = ["ConfigError", "MAX_CONFIG_NODES", "build", "coerce", "describe", "is_union", "safe_load_bounded"]

#: Largest number of YAML nodes a config may expand to (aliases counted at every use).
MAX_CONFIG_NODES = 100_000


class ConfigError(ValueError):
    """A config value or key is invalid (subclass of ValueError)."""


# ----------------------------------------------------------------------------------------
# Bounded YAML loading (alias bombs): every config reader (experiments, gafi, overrides)
# ----------------------------------------------------------------------------------------
def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int], where: str) -> int:
    """Nodes ``node`` expands to, aliases counted at every use; memoised by node, so the cost is
    linear in the document even when the expansion is astronomically large."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConfigError(f"{where}: recursive YAML alias (a node contains itself); configs must be trees")
    if isinstance(node, yaml.ScalarNode):
        return 1
    active.add(key)
    total = 1
    children = node.value if isinstance(node, yaml.SequenceNode) else [c for kv in node.value for c in kv]
    for child in children:
        total += _expanded_size(child, memo, active, where)
        if total > MAX_CONFIG_NODES:
            break
    active.discard(key)
    memo[key] = total
    return total


def safe_load_bounded(text: str, where: str = "config") -> Any:
    """``yaml.safe_load(text)``, but a document that expands to more than ``MAX_CONFIG_NODES``
    nodes (alias bomb) or has recursive aliases raises ``ConfigError`` first (fast: the alias
    graph is measured, never expanded). YAML syntax errors propagate as ``yaml.YAMLError``."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set(), where)
        except RecursionError:
            raise ConfigError(f"{where}: YAML nested too deeply") from None
        if size > MAX_CONFIG_NODES:
            raise ConfigError(f"{where}: the YAML expands to more than {MAX_CONFIG_NODES} nodes through its "
                              f"aliases (&anchor/*alias); refusing to load it (alias expansion bomb?)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def is_union(tp: Any) -> bool:
    """Whether ``tp`` is a ``Union[...]`` / ``Optional[...]`` / ``X | Y`` annotation."""
    return typing.get_origin(tp) in (Union, types.UnionType)


def describe(tp: Any) -> str:
    """Human wording of an annotation for error messages (``bool`` -> ``a bool (true/false)``)."""
    if is_union(tp):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple) or tp in (list, tuple):
        args = typing.get_args(tp)
        if origin is tuple and args and Ellipsis not in args:
            return f"a list of {len(args)} values ({', '.join(describe(a) for a in args)})"
        return f"a list of {_PLURAL.get(args[0], describe(args[0]))}" if args else "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping (section)"
    return _WORDS.get(tp, getattr(tp, "__name__", str(tp)))


_WORDS = {bool: "a bool (true/false)", int: "int", float: "a number", str: "a string"}
_PLURAL = {bool: "bools", int: "integers", float: "numbers", str: "strings"}


def _got(value: Any) -> str:
    return f"got {type(value).__name__} {value!r}"


def coerce(value: Any, tp: Any, key: str, *, wrap_scalars: bool = False) -> Any:
    """``value`` checked against the annotation ``tp`` (module rules); raises TypeError /
    ConfigError naming ``key``. ``wrap_scalars``: a scalar given for a list becomes ``[scalar]``."""
    if is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, key, wrap_scalars=wrap_scalars)
            except (TypeError, ValueError) as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise TypeError(f"{key} must be {describe(tp)}, {_got(value)}")
    if tp is Any:
        return value
    if tp is type(None):
        if value is not None:
            raise TypeError(f"{key} must be null, {_got(value)}")
        return None
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(f"{key} must be {describe(tp)}, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        return _sequence(value, tp, key, wrap_scalars)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise TypeError(f"{key} must be a mapping (section), {_got(value)}")
        return build(tp, value, prefix=f"{key}.", wrap_scalars=wrap_scalars)
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be {describe(bool)}, {_got(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key} must be {describe(int)}, {_got(value)}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise TypeError(f"{key} must be {describe(float)}, {_got(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{key} must be {describe(float)}, {_got(value)}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"{key} must be {describe(str)}, {_got(value)} (quote it in YAML)")
        return value
    raise TypeError(f"{key}: unsupported annotation {tp!r}")  # a schema bug, not a user error


def _sequence(value: Any, tp: Any, key: str, wrap_scalars: bool) -> list | tuple:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif wrap_scalars and not isinstance(value, Mapping):
        items = [value]  # scalar -> [scalar] (P1: `alpha=0.1`, `methods=SC`)
    else:
        raise TypeError(f"{key} must be {describe(tp)}, {_got(value)}")
    if origin is tuple and args and Ellipsis not in args:
        if len(items) != len(args):
            raise TypeError(f"{key} must be {describe(tp)}, {_got(value)}")
        types_ = list(args)
    else:
        types_ = [args[0] if args else Any] * len(items)
    out = [coerce(v, t, f"{key}[{i}]", wrap_scalars=wrap_scalars) for i, (v, t) in enumerate(zip(items, types_))]
    return tuple(out) if origin is tuple else out


def build(cls: type, raw: Mapping[str, Any], *, prefix: str = "", wrap_scalars: bool = False):
    """Instantiate the dataclass ``cls`` from ``raw`` (every key checked with :func:`coerce`;
    missing keys keep their defaults), then call its ``validate()`` if it has one.

    An unknown key raises :class:`ConfigError` naming it (dotted, with ``prefix``) and listing
    the known keys."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!s}"
                          f"{'' if len(unknown) == 1 else f' (and {unknown[1:]})'}; "
                          f"known keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(names)}")
    kwargs = {k: coerce(v, hints[k], f"{prefix}{k}", wrap_scalars=wrap_scalars) for k, v in raw.items()}
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj
