"""docs/ARCHITECTURE.md stays true: every path and public name it cites in backticks exists (issue 14).

Rules, applied to each backticked token of the page:

- a path (contains ``/``) must exist under the repository root, ``python/``, ``python/synthperf/``
  or one of its subpackages; ``*`` and ``<placeholder>`` parts are globs that must match at least
  one file (so ``csrc/cuda/<kernel>_bind.cpp`` fails when no ``*_bind.cpp`` exists);
- a file name (``foo.py``, ``bar.h``, ...) must name a file somewhere in the repository;
- a dotted name (``knn.KNNIndex``, ``synthperf.ops.discrete_score``, ``yaml.safe_load``) must
  resolve by import + getattr, as written or below ``synthperf`` or one of its subpackages;
- an identifier with ``_`` or inner capitals (``first_nan_row``, ``DSFStallError``) must occur as
  a word in the package, native or test sources.

Commands, options, assignments (``=``), output locations (``OUT/``, ``DIR/``) and prose
fragments are not names and are skipped.
"""
from __future__ import annotations

import importlib
import re
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PKG = ROOT / "python" / "synthperf"
SUBPACKAGES = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())
OUTPUT_NAMES = {"report.md"}  # files the demo/run writes, not repository files
OPTIONAL_MODULES = {"synthperf._native_cuda"}  # built only where nvcc and a CUDA toolkit exist
SOURCE_DIRS = ("python", "csrc", "kernels", "tests", "benchmarks", "configs")

DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(\.\*)?(\(\))?$")
IDENT = re.compile(r"^[A-Za-z_]\w*(\(\))?$")
FILE_NAME = re.compile(r"^[\w.-]+\.(py|h|cpp|cu|md|json|yaml|toml)$")


def _tokens() -> list[str]:
    return sorted(set(re.findall(r"`([^`\n]+)`", DOC.read_text(encoding="utf-8"))))


def _is_command(tok: str) -> bool:
    return (" " in tok or "=" in tok or tok.startswith(("-", ".", "/", "OUT/", "DIR/", "[")) or "|" in tok
            or tok.startswith(("synthperf ", "pip ", "python ")))


def _path_exists(tok: str) -> bool:
    pattern = re.sub(r"<[^>]+>", "*", tok.rstrip("/"))
    roots = [ROOT, ROOT / "docs", ROOT / "python", PKG] + [PKG / s for s in SUBPACKAGES]
    for root in roots:
        if "*" in pattern:
            if any(root.glob(pattern)):
                return True
        elif (root / pattern).exists():
            return True
    return False


@lru_cache(maxsize=None)
def _source_words() -> frozenset[str]:
    words: set[str] = set()
    for d in SOURCE_DIRS:
        for p in (ROOT / d).rglob("*"):
            if p.is_file() and p != Path(__file__).resolve() and p.suffix in {".py", ".h", ".cpp", ".cu", ".txt", ".yaml", ".json"}:
                words.update(re.findall(r"[A-Za-z_]\w*", p.read_text(encoding="utf-8", errors="replace")))
    return frozenset(words)


def _resolve(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        mod_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(mod_name)
        except ImportError:
            if mod_name in OPTIONAL_MODULES:
                return True
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def _dotted_exists(tok: str) -> bool:
    name = tok.removesuffix("()").removesuffix(".*")
    prefixes = ["", "synthperf."] + [f"synthperf.{s}." for s in SUBPACKAGES]
    return any(_resolve(p + name) for p in prefixes)


def _classify(tok: str) -> str | None:
    if tok in OUTPUT_NAMES or _is_command(tok):
        return None
    if "/" in tok:
        return "path"
    if FILE_NAME.match(tok):
        return "file"
    if DOTTED.match(tok):
        return "dotted"
    if IDENT.match(tok) and ("_" in tok.strip("_") or re.search(r"[a-z][A-Z]", tok)):
        return "ident"
    return None


def _problems() -> list[str]:
    bad = []
    all_files = {p.name for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts}
    for tok in _tokens():
        kind = _classify(tok)
        if kind == "path" and not _path_exists(tok):
            bad.append(f"path `{tok}` does not exist")
        elif kind == "file" and tok not in all_files:
            bad.append(f"file `{tok}` is in no folder of the repository")
        elif kind == "dotted" and not _dotted_exists(tok):
            bad.append(f"name `{tok}` does not resolve (import + getattr)")
        elif kind == "ident" and tok.removesuffix("()") not in _source_words():
            bad.append(f"identifier `{tok}` occurs in no source file")
    return bad


def test_architecture_page_cites_only_things_that_exist():
    bad = _problems()
    assert not bad, "docs/ARCHITECTURE.md is out of date:\n" + "\n".join(bad)


def test_checker_catches_false_citations(tmp_path, monkeypatch):
    """The checker itself can fail: invented paths, names and identifiers are reported."""
    fake = tmp_path / "ARCHITECTURE.md"
    fake.write_text("`csrc/cuda/<kernel>_bind_nonexistent.cpp` `synthperf.ops.no_such_kernel` "
                    "`knn.NoSuchIndex` `no_such_identifier_xyz` `missing_file_abc.py` `ops/order_stats.py` "
                    "`synthperf demo --out DIR` `eps=None`", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "DOC", fake)
    bad = _problems()
    assert len(bad) == 5, bad
    assert not any("order_stats.py" in b or "demo" in b or "eps" in b for b in bad)


@pytest.mark.parametrize("spec", ["sppi", "seapig", "inflationary_flows", "feedback_guidance", "gafi"])
def test_cited_specs_ship_with_the_repository(spec):
    """Docstrings cite ``specs/<system>.md``; the specs ship under docs/specs/."""
    assert (ROOT / "docs" / "specs" / f"{spec}.md").is_file()
