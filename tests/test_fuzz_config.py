"""Issue 17: YAML alias bombs and recursive aliases are rejected fast with a clear error."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from synthperf.experiments.config import ConfigError, MAX_CONFIG_NODES, apply_overrides, load_config, parse_override

BOMB = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    experiment: sppi
    """)


def test_alias_bomb_rejected_fast_in_a_subprocess(tmp_path):
    """The whole load runs in a child with a 60 s timeout: a hang fails the test instead of the suite."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB.encode()) < 600
    code = ("from synthperf.experiments.config import load_config, ConfigError\n"
            f"try:\n    load_config({str(path)!r})\nexcept ConfigError as e:\n    print('REJECTED', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "REJECTED" in out.stdout and "alias" in out.stdout, out.stdout + out.stderr


def test_alias_bomb_error_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    with pytest.raises(ConfigError, match=f"more than {MAX_CONFIG_NODES} nodes"):
        load_config(path)
    with pytest.raises(ConfigError, match="alias"):
        parse_override("x=" + "{a: &a [1,2,3,4,5,6,7,8,9,10], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], "
                       "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], "
                       "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]}")


def test_recursive_alias_rejected(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("experiment: sppi\nloop: &x [1, *x]\n")
    with pytest.raises(ConfigError, match="recursive"):
        load_config(path)


def test_small_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("experiment: sppi\nbase: &b {n_cal: 15, beta: 0.4}\nother: *b\nmerged: {<<: *b, beta: 0.2}\n")
    raw = load_config(path)
    assert raw["other"] == {"n_cal": 15, "beta": 0.4} and raw["merged"] == {"n_cal": 15, "beta": 0.2}


def test_python_structures_with_shared_parts_fail_fast():
    leaf: list = list(range(10))
    for _ in range(8):
        leaf = [leaf] * 10
    with pytest.raises(ConfigError, match="more than"):
        apply_overrides({"experiment": "sppi", "x": leaf}, [])
    loop: list = []
    loop.append(loop)
    with pytest.raises(ConfigError, match="itself"):
        apply_overrides({"x": loop}, [])
