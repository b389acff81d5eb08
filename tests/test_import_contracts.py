"""Layer contracts (issue 14 item 4), checked on the package source with ``ast`` (no import,
no network dependency; import-linter is not installed):

1. the kernel layer (``synthperf.ops``, ``synthperf.kernels``) knows no system, no
   experiments layer and no CLI;
2. systems (conformal, selective, flows, guidance, gafi) import neither
   ``synthperf.experiments`` nor the CLI (``synthperf.cli``, ``cli_groups``, ``__main__``);
3. conformal imports no generator (flows, guidance, gafi, diffusers);
4. no system imports another system, except selective -> conformal.

Every import counts: module level, inside functions (lazy imports), under TYPE_CHECKING, and
``importlib.import_module("synthperf....")`` with a literal name.

Known violations are listed in KNOWN_VIOLATIONS, each naming the issue item that removes it.
They are excluded from the contract tests and each is a strict xfail of its own: when the
import goes away, that test XPASSes and fails, so the entry must then be deleted here.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "python" / "synthperf"
TRITON_DIR = ROOT / "kernels" / "triton"  # shipped as synthperf.kernels.triton

SYSTEMS = ("conformal", "selective", "flows", "guidance", "gafi")
KERNEL_LAYER = ("ops", "kernels")
CLI = ("synthperf.cli", "synthperf.cli_groups", "synthperf.__main__")
GENERATORS = ("synthperf.flows", "synthperf.guidance", "synthperf.gafi", "diffusers")
ALLOWED_SYSTEM_EDGES = {("selective", "conformal")}

#: (importer module, imported module) -> the issue item that removes the import.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    # None left. Fixed under issue 14 item 1: flows.digits, flows.training, guidance.cli,
    # guidance.digits -> experiments.store; guidance.generate -> experiments.executors;
    # guidance.adapters -> gafi.keras_interop (now synthperf.interop.keras).
}


@dataclass(frozen=True)
class Edge:
    importer: str  # dotted module name
    target: str    # dotted name as imported (module, or module.attribute for `from m import a`)
    where: str     # path:line


def _module_name(path: Path) -> tuple[str, bool]:
    if path.is_relative_to(TRITON_DIR):
        parts = ["synthperf", "kernels", "triton", *path.relative_to(TRITON_DIR).with_suffix("").parts]
    else:
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def imports_of(source: str, module: str, is_pkg: bool, where: str = "<src>") -> list[Edge]:
    """Every import in ``source`` (the text of ``module``), relative ones resolved."""
    package = module if is_pkg else module.rpartition(".")[0]
    edges = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges += [Edge(module, a.name, f"{where}:{node.lineno}") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            edges.append(Edge(module, target, f"{where}:{node.lineno}"))
            edges += [Edge(module, f"{target}.{a.name}", f"{where}:{node.lineno}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            edges.append(Edge(module, node.args[0].value, f"{where}:{node.lineno}"))
    return edges


def _all_edges() -> list[Edge]:
    files = sorted(PACKAGE_DIR.rglob("*.py")) + sorted(TRITON_DIR.rglob("*.py"))
    edges = []
    for path in files:
        module, is_pkg = _module_name(path)
        edges += imports_of(path.read_text(), module, is_pkg, str(path.relative_to(ROOT)))
    return edges


EDGES = _all_edges()


def _layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "synthperf" else None


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _known(edge: Edge) -> bool:
    return any(edge.importer == imp and _within(edge.target, tgt) for imp, tgt in KNOWN_VIOLATIONS)


def _report(bad: list[Edge]) -> str:
    return "\n".join(sorted({f"{e.where}: {e.importer} imports {e.target}" for e in bad}))


def test_the_scan_sees_the_package():
    importers = {e.importer for e in EDGES}
    assert {"synthperf.ops.order_stats", "synthperf.conformal.thresholds", "synthperf.kernels.triton.order_stats",
            "synthperf.selective.base"} <= importers
    assert any(e.importer == "synthperf.selective.base" and _within(e.target, "synthperf.conformal") for e in EDGES)


def test_the_scan_resolves_every_import_form():
    src = ("from .. import _native\nfrom ..conformal import windows\nimport synthperf.flows.cli as c\n"
           "def f():\n    from . import sibling\n    import importlib\n"
           "    importlib.import_module('synthperf.gafi.io')\n")
    targets = {e.target for e in imports_of(src, "synthperf.ops.x", False)}
    assert {"synthperf._native", "synthperf.conformal.windows", "synthperf.flows.cli", "synthperf.ops.sibling",
            "synthperf.gafi.io"} <= targets
    pkg_targets = {e.target for e in imports_of("from .a import b\nfrom .. import c\n", "synthperf.flows", True)}
    assert {"synthperf.flows.a.b", "synthperf.c"} <= pkg_targets


def test_kernel_layer_knows_no_system():
    bad = [e for e in EDGES if _layer(e.importer) in KERNEL_LAYER and not _known(e)
           and (_layer(e.target) in SYSTEMS or _layer(e.target) == "experiments"
                or any(_within(e.target, c) for c in CLI))]
    assert not bad, "the kernel layer imports a system/experiments/CLI:\n" + _report(bad)


def test_systems_import_neither_experiments_nor_the_cli():
    bad = [e for e in EDGES if _layer(e.importer) in SYSTEMS and not _known(e)
           and (_layer(e.target) == "experiments" or any(_within(e.target, c) for c in CLI))]
    assert not bad, "a system imports the experiments layer or the CLI:\n" + _report(bad)


def test_conformal_imports_no_generator():
    bad = [e for e in EDGES if _layer(e.importer) == "conformal" and not _known(e)
           and any(_within(e.target, g) for g in GENERATORS)]
    assert not bad, "conformal imports a generator:\n" + _report(bad)


def test_no_system_imports_another_except_selective_conformal():
    bad = [e for e in EDGES if _layer(e.importer) in SYSTEMS and _layer(e.target) in SYSTEMS
           and _layer(e.importer) != _layer(e.target) and not _known(e)
           and (_layer(e.importer), _layer(e.target)) not in ALLOWED_SYSTEM_EDGES]
    assert not bad, "a system imports another system:\n" + _report(bad)


def test_known_violations_still_exist():
    """Each KNOWN_VIOLATIONS entry must still be a real import: delete it once it is fixed
    (an entry that no longer matches would silently excuse a future violation)."""
    stale = [(imp, tgt) for imp, tgt in KNOWN_VIOLATIONS
             if not any(e.importer == imp and _within(e.target, tgt) for e in EDGES)]
    assert not stale, f"fixed violations still listed in KNOWN_VIOLATIONS: {stale}"
