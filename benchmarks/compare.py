"""Print median ratios between benchmarks of a pytest-benchmark JSON file.

Usage:
    pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/compare.py bench.json                      # every group vs its fastest
    python benchmarks/compare.py bench.json --base test_numpy_sort_axis1 --target test_cpu_backend
    python benchmarks/compare.py bench.json --base A --target B --group order_statistics

Benchmarks are matched by their full name, never by a substring: ``--base`` / ``--target``
equal a benchmark's ``name`` (``test_cpu_backend[3000]``) or its ``fullname``
(``benchmarks/bench_order_stats.py::test_cpu_backend[3000]``). The pair is looked up within
each group (``--group`` picks one), so the same test name in two groups is never mixed up.
When nothing matches, the script prints what it looked for and the names on offer, and
exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

NO_GROUP = "(none)"


class CompareError(Exception):
    """A comparison that cannot be made (no match, ambiguous match, bad file)."""


def load_benchmarks(path: str) -> list[dict]:
    """The ``benchmarks`` list of a pytest-benchmark JSON file (``--benchmark-json`` or autosave)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path} is not JSON: {exc}") from exc
    benches = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benches, list):
        raise CompareError(f"{path} has no 'benchmarks' list (not a pytest-benchmark JSON file)")
    return benches


def by_group(benches: list[dict]) -> dict[str, list[dict]]:
    """Benchmarks per group, in file order (benchmarks without a group go to ``(none)``)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in benches:
        groups[b.get("group") or NO_GROUP].append(b)
    return dict(groups)


def _find(items: list[dict], name: str, group: str) -> dict | None:
    hits = [b for b in items if name in (b.get("name"), b.get("fullname"))]
    if len(hits) > 1:
        raise CompareError(f"{name!r} matches {len(hits)} benchmarks in group {group!r}: "
                           + ", ".join(b.get("fullname", b["name"]) for b in hits) + "; pass the fullname")
    return hits[0] if hits else None


def compare_pair(benches: list[dict], base: str, target: str, group: str | None = None) -> list[str]:
    """One line per group holding both ``base`` and ``target`` (exact name or fullname)."""
    groups = by_group(benches)
    if group is not None:
        if group not in groups:
            raise CompareError(f"no group {group!r}; groups: {', '.join(sorted(groups))}")
        groups = {group: groups[group]}
    lines = []
    for g, items in groups.items():
        b, t = _find(items, base, g), _find(items, target, g)
        if b is None or t is None:
            continue
        ratio = b["stats"]["median"] / t["stats"]["median"]
        lines.append(f"[{g}] {t['name']} is {ratio:.2f}x faster than {b['name']} (median "
                     f"{t['stats']['median'] * 1e3:.3f} ms vs {b['stats']['median'] * 1e3:.3f} ms)")
    if not lines:
        names = sorted({f"{g}: {b['name']}" for g, items in groups.items() for b in items})
        raise CompareError(f"no group holds both --base {base!r} and --target {target!r} "
                           f"(exact name or fullname); benchmarks:\n  " + "\n  ".join(names))
    return lines


def group_table(benches: list[dict]) -> list[str]:
    """Every group, fastest first, each benchmark's median and its ratio to the group's fastest."""
    if not benches:
        raise CompareError("the file holds no benchmarks")
    lines = []
    for group, items in by_group(benches).items():
        items = sorted(items, key=lambda b: b["stats"]["median"])
        fastest = items[0]["stats"]["median"]
        lines.append(f"[{group}]")
        for b in items:
            med = b["stats"]["median"]
            lines.append(f"  {b['name']:<50} median {med * 1e3:10.3f} ms   x{med / fastest:7.2f} of fastest")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--base", help="benchmark name or fullname (exact) used as the denominator")
    parser.add_argument("--target", help="benchmark name or fullname (exact) compared against --base")
    parser.add_argument("--group", help="only this benchmark group")
    args = parser.parse_args(argv)
    if (args.base is None) != (args.target is None):
        parser.error("--base and --target go together")
    try:
        benches = load_benchmarks(args.json_file)
        if args.base is not None:
            lines = compare_pair(benches, args.base, args.target, args.group)
        else:
            if args.group is not None:
                benches = [b for b in benches if (b.get("group") or NO_GROUP) == args.group]
                if not benches:
                    raise CompareError(f"no benchmark in group {args.group!r}")
            lines = group_table(benches)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
