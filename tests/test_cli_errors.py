"""The one CLI error handler (synthperf._cli_errors): status codes, flag names, no tracebacks,
and no system CLI with a wrapper of its own (issue 14 item 1, issue 17)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import synthperf
from synthperf._cli_errors import _with_flags, user_errors
from synthperf._io import CheckpointError

app = typer.Typer()


@app.command()
@user_errors
def boom(kind: str = typer.Option(...), class_counts: str = typer.Option("1"),
         classifier: str = typer.Option("x")) -> None:
    errors = {"value": ValueError("class_counts must sum to the target; classifier= is not a file"),
              "type": TypeError("classifier must be a path"),
              "missing": FileNotFoundError("no such file: a.csv"),
              "checkpoint": CheckpointError("checkpoint 'b' is corrupt"),
              "oserror": PermissionError("read-only folder 'c'"),
              "import": ImportError("needs the 'diffusion' extra")}
    if kind == "bug":
        raise RuntimeError("a bug keeps its traceback")
    raise errors[kind]


@pytest.mark.parametrize("kind,code,words", [
    ("value", 2, "--class-counts must sum to the target; --classifier is not a file"),
    ("type", 2, "--classifier must be a path"),
    ("missing", 2, "no such file: a.csv"),
    ("checkpoint", 1, "checkpoint 'b' is corrupt"),
    ("oserror", 1, "read-only folder 'c'"),
    ("import", 1, "needs the 'diffusion' extra"),
])
def test_user_errors_are_one_line_with_flags(kind, code, words):
    r = CliRunner().invoke(app, ["--kind", kind])
    assert r.exit_code == code, r.output
    assert r.stderr == f"error: {words}\n", r.stderr
    assert "Traceback" not in r.output and r.stdout == ""


def test_bugs_are_not_hidden():
    r = CliRunner().invoke(app, ["--kind", "bug"])
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)


def test_plain_words_are_not_rewritten():
    flags = {"classifier": "--classifier", "mode": "--mode"}
    assert _with_flags("the classifier has no features", flags) == "the classifier has no features"
    assert _with_flags("mode must be one of ('a',)", flags) == "--mode must be one of ('a',)"
    assert _with_flags("model_mode must be set", flags) == "model_mode must be set"


def test_no_system_cli_has_its_own_error_wrapper():
    """Every CLI module raises plain errors and uses synthperf._cli_errors; none prints
    'error:' or raises typer.Exit/BadParameter for errors itself."""
    root = Path(synthperf.__file__).parent
    offenders = []
    for path in sorted(root.glob("*/cli.py")) + [root / "cli.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("BadParameter", "ClickException"):
                offenders.append(f"{path.relative_to(root)}:{node.lineno} {node.attr}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("error: "):
                offenders.append(f"{path.relative_to(root)}:{node.lineno} prints 'error:'")
            if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and str(node.values[0].value).startswith("error: "):
                offenders.append(f"{path.relative_to(root)}:{node.lineno} prints 'error:'")
    assert not offenders, offenders
