"""Hydra-style overrides on ``synthperf run`` (issue 16 "Runs"): the grammar of
synthperf._overrides, sweeps with -m as grid points, --cfg job / --dry-run, the default -o."""
from __future__ import annotations

import re
from datetime import datetime

import pytest
import yaml

from synthperf._config import ConfigError
from synthperf._overrides import apply_to, flags_to_overrides, parse_override, parse_overrides, split_sweep, sweep
from synthperf.experiments import load_results
from synthperf.experiments.cli import default_run_dir
from synthperf.experiments.config import apply_overrides, parse_override as plain_override, resolve, sweep_to_grid

from .conftest import cli

SMALL = {"experiment": "sppi", "name": "small",
         "data": {"kind": "imagenet_like", "n_classes": 4, "n_per_class": 80, "n_labels": 12},
         "alpha": [0.1], "methods": ["SC", "SPI"], "n_seeds": 2, "n_cal": 20, "n_test": 40, "n_cal_maj": 100,
         "chunk_trials": 2}


@pytest.fixture
def small_yaml(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


# ------------------------------------------------------------------ grammar
def test_parse_forms_and_yaml_values():
    o = parse_override("data.age_range=0-20")
    assert (o.op, o.key, o.values) == ("set", "data.age_range", ("0-20",))
    assert parse_override("+x=false").op == "add" and parse_override("+x=false").values == (False,)
    assert parse_override("++x=1e-4").op == "force" and parse_override("++x=1e-4").values == ("1e-4",)
    assert parse_override("~x").op == "delete" and parse_override("~x").values == ()
    assert parse_override("~x=3").values == (3,)
    assert parse_override("a=").values == (None,)
    assert parse_override("alpha=[0.05, 0.1]").values == ([0.05, 0.1],)   # one list value, not a sweep
    assert parse_override("n=10,20,30").values == (10, 20, 30)
    assert parse_override("m=[SC],[SC,SPI]").values == (["SC"], ["SC", "SPI"])
    assert parse_override("s='a,b'").values == ("a,b",)                   # quoted: a string
    assert parse_override('s="x\\",y",z').values == ('x",y', "z")
    assert parse_override("d={a: 1, b: 2},{a: 3}").values == ({"a": 1, "b": 2}, {"a": 3})
    assert plain_override("x.y=[1, 2]") == ("x.y", [1, 2])


@pytest.mark.parametrize("text, match", [
    ("novalue", "must have the form key=value"), ("+novalue", "must have the form key=value"),
    ("=3", "empty key"), ("a..b=1", "empty key"), ("a b=1", "is not a key"),
    ("n=1,,2", "empty value"), ("n=1,", "empty value"), ("~n=1,2", "deletion cannot sweep"),
    ("x=[1, 2", "cannot parse"),
])
def test_parse_errors_name_the_override(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_override(text)


def test_split_sweep_respects_brackets_and_quotes():
    assert split_sweep("[1,2],{a: [3,4]},'x,y'", "k") == ["[1,2]", "{a: [3,4]}", "'x,y'"]
    assert split_sweep("plain", "k") == ["plain"]


def test_apply_set_add_force_delete():
    raw = {"a": 1, "s": {"b": 2}, "none": None}
    ops = parse_overrides(["a=5", "s.c=3", "+new=x", "++s.b=9", "~none", "deep.er.key=1"])
    out = apply_to(dict(raw, s=dict(raw["s"])), ops)
    assert out == {"a": 5, "s": {"b": 9, "c": 3}, "new": "x", "deep": {"er": {"key": 1}}}
    assert apply_to({"a": 3}, parse_overrides(["~a=3"])) == {}
    assert apply_to({}, parse_overrides(["++a=1"])) == {"a": 1}


@pytest.mark.parametrize("ops, match", [
    (["+a=2"], r"already has a \(= 1\).*\+\+a="), (["~zz"], "no key zz to delete"),
    (["~s.q.r"], "no key s.q.r"), (["~a=2"], "a is 1, not 2"), (["a.b=1"], "a is a int, not a section"),
    (["a=1", "a=2"], "given twice"),
])
def test_apply_errors(ops, match):
    with pytest.raises(ConfigError, match=match):
        apply_to({"a": 1, "s": {}}, parse_overrides(ops))


def test_sweep_is_an_error_without_multirun_and_a_product_with_it():
    ops = parse_overrides(["x=1,2", "y=a,b,c", "z=7"])
    with pytest.raises(ConfigError, match=r"x has a comma-separated value.*-m/--multirun.*x=\[1,2\].*x='1,2'"):
        sweep(ops, multirun=False)
    jobs = sweep(ops, multirun=True)
    assert [v for _, v in jobs] == [{"x": x, "y": y} for x in (1, 2) for y in "abc"]  # first key slowest
    assert all(len(o.values) == 1 for ops_, _ in jobs for o in ops_)
    assert sweep(parse_overrides(["z=7"]), multirun=False)[0][1] == {}


def test_flags_become_overrides():
    args = ["--epochs", "2", "--mixed_precision", "--random-erasing", "False", "--seed=3", "--tau", "-0.5",
            "seed=4", "--flag", "~x"]
    assert flags_to_overrides(args) == ["epochs=2", "mixed_precision=true", "random_erasing=False", "seed=3",
                                        "tau=-0.5", "seed=4", "flag=true", "~x"]
    with pytest.raises(ConfigError, match="unknown option '-x'"):
        flags_to_overrides(["-x"])


# ------------------------------------------------------------------ experiments configs
def test_experiment_overrides_keep_schema_checks():
    assert apply_overrides(SMALL, ["~n_cal"]).get("n_cal", "gone") == "gone"
    (cfg, grid), = resolve(SMALL, ["~n_cal"])
    assert cfg.n_cal != 20 and grid == {}                  # the schema default is back
    with pytest.raises(ValueError, match="unknown config key n_cl"):
        resolve(SMALL, ["n_cl=3"])
    with pytest.raises(ValueError, match="unknown config key data.nope"):
        resolve(SMALL, ["+data.nope=3"])
    with pytest.raises(ConfigError, match="already has n_cal"):
        resolve(SMALL, ["+n_cal=3"])
    with pytest.raises(ConfigError, match="n_cal has a comma-separated value"):
        resolve(SMALL, ["n_cal=10,20"])


def test_multirun_sweeps_are_grid_axes():
    assert sweep_to_grid(SMALL, ["n_cal=10,20", "alpha=0.05,0.1", "methods=[SC],[SC,SPI]", "n_seeds=3"]) == [
        "n_cal=[10, 20]", "alpha=[[0.05], [0.1]]", "methods=[[SC], [SC, SPI]]", "n_seeds=3"]
    points = resolve(SMALL, ["n_cal=10,20", "alpha=0.05,0.1"], multirun=True)
    assert [g for _, g in points] == [{"alpha": [a], "n_cal": n} for a in (0.05, 0.1) for n in (10, 20)]
    assert [(c.n_cal, c.alpha) for c, _ in points] == [(n, [a]) for a in (0.05, 0.1) for n in (10, 20)]
    # the same points as the grid written by hand
    assert resolve(SMALL, ["n_cal=[10, 20]", "alpha=[[0.05], [0.1]]"]) == points


# ------------------------------------------------------------------ the run command
def test_dry_run_and_cfg_job_print_config_and_grid_and_write_nothing(small_yaml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for flag in (["--dry-run"], ["--cfg", "job"]):
        res = cli("run", small_yaml, "n_cal=10,20", "-m", "+plot_classes=[1]", *flag)
        assert res.exit_code == 0, res.output
        doc = yaml.safe_load(res.output)
        assert doc["points"] == 2 and doc["chunks"] == 2 and doc["overrides"] == ["n_cal=[10, 20]", "+plot_classes=[1]"]
        assert doc["grid"] == [{"n_cal": 10}, {"n_cal": 20}]
        assert [r["n_cal"] for r in doc["resolved"]] == [10, 20] and doc["resolved"][0]["plot_classes"] == [1]
        assert re.fullmatch(r"outputs/small/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", doc["out"])
    one = yaml.safe_load(cli("run", small_yaml, "--dry-run", "-o", tmp_path / "x").output)
    assert one["points"] == 1 and one["resolved"]["n_cal"] == 20 and one["out"] == str(tmp_path / "x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before             # nothing written
    res = cli("run", small_yaml, "--cfg", "hydra")
    assert res.exit_code == 2 and "--cfg must be 'job'" in res.output


def test_comma_list_without_multirun_is_a_usage_error(small_yaml, tmp_path):
    res = cli("run", small_yaml, "n_cal=10,20", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "n_cal has a comma-separated value" in res.output and "-m/--multirun" in res.output
    res = cli("run", small_yaml, "n_call=10", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "unknown config key n_call" in res.output
    assert not (tmp_path / "o").exists()


def test_multirun_run_into_the_default_timestamped_dir(small_yaml, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli("run", small_yaml, "n_cal=10,20", "-m", "--no-report")
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert first.startswith("run directory: outputs/small/")
    run_dir = tmp_path / first.removeprefix("run directory: ")
    assert "2 grid point(s), 2 chunk(s), 2 computed now" in res.output
    df = load_results(run_dir)
    assert sorted(df.groupby("point")["n_cal"].first().tolist()) == [10, 20]
    assert (df.groupby("point")["trial"].nunique() == 2).all()


def test_default_run_dir_layout(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    d = default_run_dir("sppi", root=tmp_path, now=now)
    assert d == tmp_path / "sppi" / "2026-01-02_03-04-05"
    d.mkdir(parents=True)
    assert default_run_dir("sppi", root=tmp_path, now=now) == tmp_path / "sppi" / "2026-01-02_03-04-05_2"
