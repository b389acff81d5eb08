"""Command-line overrides, the one override mechanism of every synthperf command that takes a
config (``synthperf run`` and ``synthperf gafi ...``; issue 16 "Runs", anchor Hydra). Imports no
subpackage.

Grammar (the unambiguous part of Hydra's override grammar):

- ``key=value``: set ``key`` (dotted keys reach nested sections: ``data.age_range=0-20``); the
  schema, not the file, decides which keys exist, so a key the file omits can be set (its
  dataclass default is replaced).
- ``+key=value``: add a key the config file does not have; an error if it has it.
- ``++key=value``: set or add, never an error.
- ``~key``: delete ``key`` from the config (its schema default applies again);
  ``~key=value`` deletes only if the current value equals ``value``; an error if it is absent.
- ``key=a,b,c``: a sweep. With ``-m/--multirun``: one job per value, the Cartesian product
  over every swept key (the first swept key varies slowest). Without ``-m`` a comma list is an
  error naming the key, whatever the key's type: a list value is written ``key=[a,b]`` and a
  string with a comma is quoted ``key='a,b'`` (as Hydra does). Commas inside ``[]``, ``{}`` or
  quotes never split.

Every value is parsed with ``yaml.safe_load`` semantics by
:func:`synthperf._config.safe_load_bounded` (``false`` is a bool, ``1e-4`` a string that float
keys accept, ``[1, 2]`` a list, an empty value ``None``; alias bombs refused).

Upstream-style flags (GaFi's ``parser.py``: ``--epochs 2``, ``--mixed_precision``,
``--random_erasing False``) are turned into the same overrides by :func:`flags_to_overrides`.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, Mapping, MutableMapping, Sequence

import yaml

from ._config import ConfigError, safe_load_bounded

__all__ = ["Override", "parse_override", "parse_overrides", "split_sweep", "sweep", "apply_to",
           "flags_to_overrides"]

_MISSING = object()
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
#: a command-line token that is an override (``key=``, ``+key=``, ``++key=``, ``~key``)
_LOOKS_LIKE_OVERRIDE = re.compile(r"^(~|\+{1,2})?[A-Za-z_][A-Za-z0-9_.\-]*=|^~[A-Za-z_]")


@dataclass(frozen=True)
class Override:
    """One parsed override: ``op`` (``set``, ``add``, ``force`` for ``++``, ``delete``), the dotted
    ``key``, the parsed ``values`` (more than one: a sweep; ``delete``: empty, or the value the
    key must hold) and the original ``text``."""

    op: Literal["set", "add", "force", "delete"]
    key: str
    values: tuple
    text: str

    @property
    def is_sweep(self) -> bool:
        return len(self.values) > 1


def split_sweep(raw: str, key: str) -> list[str]:
    """``"a,b,[c,d]"`` -> ``["a", "b", "[c,d]"]``: commas outside brackets, braces and quotes."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(raw):
        ch = raw[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(raw[start:i])
            start = i + 1
        i += 1
    parts.append(raw[start:])
    if len(parts) > 1 and any(not p.strip() for p in parts):
        raise ConfigError(f"override {key}={raw}: a comma-separated sweep has an empty value")
    return parts


def _value(raw: str, key: str) -> Any:
    if not raw.strip():
        return None
    try:
        return safe_load_bounded(raw, f"override {key}")
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse {raw!r} as YAML: {exc}") from None


def parse_override(text: str) -> Override:
    """Parse one override (module grammar); raises :class:`ConfigError` naming it."""
    if not isinstance(text, str):
        raise TypeError(f"override must be a string, got {type(text).__name__}")
    if text.startswith("~"):
        op, body = "delete", text[1:]
    elif text.startswith("++"):
        op, body = "force", text[2:]
    elif text.startswith("+"):
        op, body = "add", text[1:]
    else:
        op, body = "set", text
    if op != "delete" and "=" not in body:
        raise ConfigError(f"override {text!r} must have the form key=value (e.g. n_seeds=10 or data.age_range=0-20), "
                          f"+key=value, ++key=value or ~key")
    key, eq, raw = body.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    if not _KEY.match(key):
        raise ConfigError(f"override {text!r}: {key!r} is not a key (letters, digits, _ and -, dotted for sections)")
    if op == "delete":
        if not eq:
            return Override(op, key, (), text)
        pieces = split_sweep(raw, key)
        if len(pieces) > 1:
            raise ConfigError(f"override {text!r}: a deletion cannot sweep")
        return Override(op, key, (_value(raw, key),), text)
    pieces = split_sweep(raw, key)
    return Override(op, key, tuple(_value(p, key) for p in pieces), text)


def parse_overrides(texts: Sequence[str] | Mapping[str, Any]) -> list[Override]:
    """Overrides from command-line strings, or from a ``{dotted key: value}`` mapping (plain
    sets, values taken as they are). A key given twice is an error naming it."""
    if isinstance(texts, Mapping):
        out = [Override("set", str(k), (v,), f"{k}=<value>") for k, v in texts.items()]
    elif isinstance(texts, str):
        raise TypeError("overrides must be a list of strings such as ['n_seeds=10'], not one string")
    else:
        out = [t if isinstance(t, Override) else parse_override(t) for t in texts]
    seen: dict[str, str] = {}
    for o in out:
        if o.key in seen:
            raise ConfigError(f"override {o.key} is given twice ({seen[o.key]!r} and {o.text!r}); keep one")
        seen[o.key] = o.text
    return out


def sweep(overrides: Sequence[Override], *, multirun: bool) -> list[tuple[list[Override], dict[str, Any]]]:
    """The jobs of a command line: ``[(single-valued overrides, {swept key: value})]``.

    Without ``multirun`` a sweep raises :class:`ConfigError` naming the key and the three
    spellings that are not ambiguous. With it, the Cartesian product over the swept keys, in
    command-line order with the first varying slowest; no sweep gives one job."""
    swept = [o for o in overrides if o.is_sweep]
    if swept and not multirun:
        o = swept[0]
        raw = o.text.partition("=")[2]
        raise ConfigError(f"override {o.text!r}: {o.key} has a comma-separated value, which is a sweep; add "
                          f"-m/--multirun to run one job per value, write {o.key}=[{raw}] for a list value, or "
                          f"quote it ({o.key}='{raw}') for a string")
    if not swept:
        return [(list(overrides), {})]
    jobs = []
    for combo in itertools.product(*(o.values for o in swept)):
        chosen = dict(zip((o.key for o in swept), combo))
        ops = [replace(o, values=(chosen[o.key],)) if o.is_sweep else o for o in overrides]
        jobs.append((ops, chosen))
    return jobs


def apply_to(target: MutableMapping[str, Any], overrides: Sequence[Override]) -> MutableMapping[str, Any]:
    """Apply single-valued ``overrides`` to ``target`` in place (dotted keys create nested
    mappings; a ``None`` section becomes one); returns ``target``. Raises :class:`ConfigError`
    naming the override for ``+`` on an existing key, ``~`` on a missing key (or a different
    value), a sweep, or a key path through a non-mapping."""
    for o in overrides:
        if o.is_sweep:
            raise ConfigError(f"override {o.text!r} is a sweep; expand it with sweep() first")
        node, parts = target, o.key.split(".")
        for depth, part in enumerate(parts[:-1]):
            nxt = node.get(part, _MISSING)
            if nxt is _MISSING or nxt is None:
                if o.op == "delete":
                    raise ConfigError(f"override {o.text!r}: the config has no key {o.key} to delete")
                nxt = node[part] = {}
            if not isinstance(nxt, MutableMapping):
                raise ConfigError(f"override {o.key}: {'.'.join(parts[:depth + 1])} is a {type(nxt).__name__}, "
                                  f"not a section, so it has no key {parts[depth + 1]!r}")
            node = nxt
        leaf = parts[-1]
        present = leaf in node
        if o.op == "delete":
            if not present:
                raise ConfigError(f"override {o.text!r}: the config has no key {o.key} to delete")
            if o.values and node[leaf] != o.values[0]:
                raise ConfigError(f"override {o.text!r}: {o.key} is {node[leaf]!r}, not {o.values[0]!r}; not deleted")
            del node[leaf]
        elif o.op == "add" and present:
            raise ConfigError(f"override {o.text!r}: the config already has {o.key} (= {node[leaf]!r}); "
                              f"use {o.key}=... to change it or ++{o.key}=... to set it either way")
        else:
            node[leaf] = o.values[0]
    return target


def flags_to_overrides(args: Sequence[str], resolve: Callable[[str], str] = lambda k: k) -> list[str]:
    """Upstream-style per-key flags as override strings, in order; other tokens pass through.

    ``--key value`` and ``--key=value`` give ``key=value``; a bare ``--key`` (followed by another
    flag, an override token or nothing) gives ``key=true``. Dashes in flag names read as
    underscores (``--random-erasing`` is ``random_erasing``). ``resolve`` maps a flag's key to
    its dotted key (GaFi: ``epochs`` -> ``OPTIMIZATION.epochs``) and raises for unknown keys.
    A value that itself looks like an override (contains ``key=``) must use ``--key=value``.
    """
    out: list[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        tok = args[i]
        if tok.startswith("--") and len(tok) > 2:
            name, eq, raw = tok[2:].partition("=")
            name = name.replace("-", "_")
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is None or nxt.startswith("--") or _LOOKS_LIKE_OVERRIDE.match(nxt):
                    raw = "true"
                else:
                    raw = nxt
                    i += 1
            out.append(f"{resolve(name)}={raw}")
        elif tok.startswith("-") and not _LOOKS_LIKE_OVERRIDE.match(tok):
            raise ConfigError(f"unknown option {tok!r}; per-key flags are spelled --key value (e.g. --epochs 2)")
        else:
            out.append(tok)
        i += 1
    return out
