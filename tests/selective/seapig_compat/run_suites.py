"""Run seapig's own test suites against synthperf through the ``seapig`` import shim (issue 15).

Suites (vendored under MIT, see ``LICENSE.seapig`` and ``README.md`` here):

- ``git``: ``upstream_git/`` = ``tests/`` of the seapig git tree (API A, commit de6e0c2);
- ``pypi``: ``upstream_pypi/`` = ``tests/`` of the ``seapig==0.3.0`` sdist (API B) plus
  ``pypi_fixtures.py`` as the ``tests/fixtures.py`` the sdist lacks (spec ``seapig.md`` §0, §7).

Each suite is copied to a temporary ``<tmp>/tests`` package and run by ``python -m pytest`` in a
subprocess whose ``PYTHONPATH`` starts with ``shim/`` (``import seapig`` -> :mod:`synthperf.selective`).
Outcomes are read from pytest's JUnit XML and compared with ``known_failures.KNOWN_FAILURES``: each
listed failure has a kind (a private helper name or internal attribute; a deliberate public
divergence; KNN-engine surface) and a reason. Exit status 0 iff every other test passed (or
skipped) and every listed failure still fails (so the list stays honest).

Usage: ``python tests/selective/seapig_compat/run_suites.py [--suite git|pypi|all] [--json PATH]
[--keep DIR] [-- pytest args]``. Needs pytest, lightning, torchmetrics, matplotlib, scikit-learn.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
SUITES = {"git": HERE / "upstream_git", "pypi": HERE / "upstream_pypi"}

from known_failures import KNOWN_FAILURES  # noqa: E402  (sibling module; this file runs as a script)


def build_tree(suite: str, root: Path) -> Path:
    """Copy suite ``suite`` to ``root/tests`` (a package, with fixtures for ``pypi``); returns ``root``."""
    src = SUITES[suite]
    if not src.is_dir():
        raise FileNotFoundError(f"suite {suite!r}: {src} is missing")
    dst = root / "tests"
    dst.mkdir(parents=True)
    for path in sorted(src.glob("*.py")):
        shutil.copy2(path, dst / path.name)
    (dst / "__init__.py").write_text("")
    if suite == "pypi":
        shutil.copy2(HERE / "pypi_fixtures.py", dst / "fixtures.py")
    return root


def parse_junit(path: Path) -> dict[str, str]:
    """``{"tests/test_x.py::test_y[param]": "passed"|"failed"|"error"|"skipped"}`` from JUnit XML."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "")
        parts = module.split(".")
        # classname "tests.test_knn" or "tests.test_knn.TestClass"
        file_parts = [p for p in parts if p.startswith("test_")][:1]
        cls = parts[parts.index(file_parts[0]) + 1:] if file_parts else []
        node = "/".join(parts[:parts.index(file_parts[0]) + 1]) + ".py" if file_parts else module
        nodeid = "::".join([node, *cls, case.get("name", "")])
        status = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                status = "failed" if child.tag == "failure" else "error"
                break
            if child.tag == "skipped":
                status = "skipped"
        outcomes[nodeid] = status
    return outcomes


def run_suite(suite: str, pytest_args: list[str] | None = None, keep: Path | None = None) -> dict:
    """Run one suite; returns ``{"suite", "counts", "outcomes", "unexpected", "stale_known", "rc"}``."""
    with tempfile.TemporaryDirectory(prefix=f"seapig-{suite}-") as tmp:
        root = build_tree(suite, Path(keep) / suite if keep else Path(tmp))
        junit = root / "junit.xml"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # as a user runs them: neither seapig's nor synthperf's switches (synthperf's conftest sets SYNTHPERF_PROGRESS)
        for key in ("SEAPIG_PROGRESS", "SEAPIG_LOG_LEVEL", "SEAPIG_PROGRESS_BACKEND", "SYNTHPERF_PROGRESS",
                    "SYNTHPERF_PROGRESS_BACKEND"):
            env.pop(key, None)
        env.setdefault("MPLBACKEND", "Agg")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
               "--rootdir", str(root), "--continue-on-collection-errors", f"--junitxml={junit}", "tests", *(pytest_args or [])]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        outcomes = parse_junit(junit) if junit.exists() else {}
        tail = (proc.stdout + proc.stderr)[-4000:]
    known = KNOWN_FAILURES.get(suite, {})
    counts = {k: sum(v == k for v in outcomes.values()) for k in ("passed", "failed", "error", "skipped")}
    bad = {n: s for n, s in outcomes.items() if s in ("failed", "error")}
    unexpected = sorted(n for n in bad if n not in known)
    passing = sorted(n for n in known if n in outcomes and outcomes[n] not in ("failed", "error"))
    # KNN-engine entries belong to another owner's work in progress: reported, not fatal, when they pass
    stale = [n for n in passing if known[n][0] != "knn-owner"]
    stale_knn = [n for n in passing if known[n][0] == "knn-owner"]
    return {"suite": suite, "counts": counts, "outcomes": outcomes, "unexpected": unexpected,
            "stale_known": stale, "stale_knn": stale_knn, "known_failing": sorted(n for n in bad if n in known), "rc": proc.returncode,
            "tail": tail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["git", "pypi", "all"], default="all")
    parser.add_argument("--json", type=Path, default=None, help="write the per-test outcomes here")
    parser.add_argument("--keep", type=Path, default=None, help="build the suite trees here (kept)")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every known failure with its reason")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    suites = ["git", "pypi"] if args.suite == "all" else [args.suite]
    results = [run_suite(s, args.pytest_args, args.keep) for s in suites]
    ok = True
    for r in results:
        c = r["counts"]
        kinds: dict[str, int] = {}
        for n in r["known_failing"]:
            kind = KNOWN_FAILURES[r["suite"]][n][0]
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"[{r['suite']}] {c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
              f"{c['skipped']} skipped; listed failures by kind: {kinds}")
        if args.verbose:
            for n in r["known_failing"]:
                kind, reason = KNOWN_FAILURES[r["suite"]][n]
                print(f"   {kind}: {n} -- {reason}")
        for n in r["unexpected"]:
            print(f"   UNEXPECTED {r['outcomes'][n]}: {n}")
        for n in r["stale_knn"]:
            print(f"   KNN entry now passes (update known_failures.py): {n}")
        for n in r["stale_known"]:
            print(f"   STALE known failure (now {r['outcomes'][n]}): {n}")
        if not r["outcomes"]:
            print(r["tail"])
        ok = ok and bool(r["outcomes"]) and not r["unexpected"] and not r["stale_known"]
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "tail"} for r in results], indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
