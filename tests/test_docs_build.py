"""Issue 16 "Documentation": the docs site is built in CI with warnings as errors, holds the
pages the issue lists, and builds here too whenever the ``docs`` extra is installed."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("conformal", "selective", "flows", "guidance", "gafi")


def _nav_pages(nav) -> list[str]:
    """Every .md path in mkdocs.yml's nav (nested lists of {title: page-or-list})."""
    out: list[str] = []
    for item in nav:
        for value in (item.values() if isinstance(item, dict) else [item]):
            out.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return out


def test_ci_builds_the_docs_strictly_from_the_docs_extra():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    build = [ln for ln in lines if not ln.startswith("#") and re.search(r"\bmkdocs build\b", ln)]
    assert build and all("--strict" in ln for ln in build), build
    assert any("optional-dependencies" in ln and "'docs'" in ln for ln in lines)  # installs the extra
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    names = {re.split(r"[\[<>=~! ]", req, maxsplit=1)[0].lower() for req in extra}
    assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= names


def test_site_holds_the_pages_the_issue_lists():
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert cfg["strict"] is True and cfg["theme"]["name"] == "material"
    assert any("mkdocstrings" in (p if isinstance(p, str) else next(iter(p))) for p in cfg["plugins"])
    pages = _nav_pages(cfg["nav"])
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
    for system in SYSTEMS:
        assert f"getting-started/{system}.md" in pages, system      # a getting-started page per system
    assert "howto/ray-slurm.md" in pages and "coming-from.md" in pages
    coming = (ROOT / "docs" / "coming-from.md").read_text().lower()
    for anchor in ("mapie", "seapig", "diffusers", "edm"):
        assert anchor in coming, anchor
    api = [p for p in pages if p.startswith("api/")]
    assert api and all(":::" in (ROOT / "docs" / p).read_text() for p in api)  # generated from docstrings


def test_docs_build_strict(tmp_path):
    """The same command as .ci/run; skipped only where the docs extra is not installed."""
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
            pytest.skip(f"needs the docs extra ({module})")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    for page in ("index.html", "getting-started/conformal/index.html", "api/conformal/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "api" / "conformal" / "index.html").read_text()
    assert "SplitConformalClassifier" in api and "conformal_risk_control" in api  # docstrings rendered
