"""Print median ratios between benchmarks of a pytest-benchmark JSON file.

Usage:
    pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/compare.py bench.json                      # every group vs its fastest
    python benchmarks/compare.py bench.json --base test_numpy_sort_axis1 --target test_cpu_backend
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--base", help="benchmark name (substring) used as the denominator")
    parser.add_argument("--target", help="benchmark name (substring) compared against --base")
    args = parser.parse_args(argv)
    with open(args.json_file) as fh:
        benches = json.load(fh)["benchmarks"]
    if args.base and args.target:
        base = next(b for b in benches if args.base in b["name"])
        target = next(b for b in benches if args.target in b["name"])
        ratio = base["stats"]["median"] / target["stats"]["median"]
        print(f"{target['name']} is {ratio:.2f}x faster than {base['name']} (median "
              f"{target['stats']['median'] * 1e3:.2f} ms vs {base['stats']['median'] * 1e3:.2f} ms)")
        return
    groups: dict[str, list[dict]] = defaultdict(list)
    for b in benches:
        groups[b.get("group") or "(none)"].append(b)
    for group, items in groups.items():
        items.sort(key=lambda b: b["stats"]["median"])
        fastest = items[0]["stats"]["median"]
        print(f"[{group}]")
        for b in items:
            med = b["stats"]["median"]
            print(f"  {b['name']:<50} median {med * 1e3:10.3f} ms   x{med / fastest:7.2f} of fastest")


if __name__ == "__main__":
    main()
