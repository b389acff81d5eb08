"""Print the issue-17 fuzz table (bad inputs tried per module and their outcomes) as Markdown.

    python tests/fuzz/fuzz_table.py [MODULE ...] [--json OUT.json]

Each module runs in child processes (:func:`_harness.run_in_subprocess`), so a crash or hang
is a row, not a dead run. Cases listed in :data:`_known.KNOWN` (defects in files owned
elsewhere) are counted in their outcome column and listed under the table.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import run_in_subprocess, summarize  # noqa: E402
from _known import KNOWN  # noqa: E402
from _targets import MODULES  # noqa: E402

COLUMNS = ("tried", "clear", "unclear", "other", "accepted", "wrong", "crash", "hang", "layouts", "layout_equal",
           "layout_wrong")


def table(results: dict[str, list[dict]], seconds: dict[str, float]) -> str:
    head = ("| module | bad inputs tried | clear error | unclear error | other exception | accepted (silently wrong)"
            " | wrong answer (float16/requires_grad) | crash | hang | layouts tried | layout equal | layout wrong"
            " | seconds |")
    lines = [head, "|" + "---|" * 13]
    total = {c: 0 for c in COLUMNS}
    for mod, recs in results.items():
        c = summarize(recs)
        total = {k: total[k] + c.get(k, 0) for k in COLUMNS}
        lines.append(f"| {mod} | " + " | ".join(str(c.get(k, 0)) for k in COLUMNS) + f" | {seconds[mod]:.1f} |")
    lines.append("| **all** | " + " | ".join(f"**{total[k]}**" for k in COLUMNS) + " | |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip() + "\n\nModules: " + ", ".join(m for m in MODULES if not m.startswith("_")))
        return 0
    out = None
    if "--json" in argv:
        i = argv.index("--json")
        if i + 1 >= len(argv):
            print("error: --json needs a file name", file=sys.stderr)
            return 2
        out, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    unknown = [m for m in argv if m not in MODULES]
    if unknown:
        print(f"error: unknown module(s) {unknown}; choose from {sorted(m for m in MODULES if not m.startswith('_'))}",
              file=sys.stderr)
        return 2
    mods = argv or [m for m in MODULES if not m.startswith("_")]
    results, seconds = {}, {}
    for m in mods:
        t0 = time.monotonic()
        results[m] = run_in_subprocess(m)
        seconds[m] = time.monotonic() - t0
    print(table(results, seconds))
    bad = [r for recs in results.values() for r in recs if set(r["outcomes"]) - {"clear", "equal", "skip"}]
    print(f"\nCases with an outcome other than clear/equal: {len(bad)} "
          f"({sum(r['id'] in KNOWN for r in bad)} known, listed in tests/fuzz/_known.py)")
    for r in bad:
        print(f"- `{r['id']}`: {sorted(set(r['outcomes']) - {'skip'})} {KNOWN.get(r['id'], 'NEW')}"
              f" -- {r['notes'][0][:160] if r['notes'] else ''}")
    if out:
        Path(out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
