"""Config engine: typed validation, CLI overrides (the fixes of sppi.md pitfall P1), grids."""
from __future__ import annotations

import pytest
import yaml

from synthperf.experiments.config import (ConfigError, apply_overrides, expand_grid, load_config, parse_override,
                                          resolve)
from synthperf.experiments.schemas import SPPIConfig

BASE = {"experiment": "sppi", "data": {"kind": "imagenet_like"}, "alpha": [0.1], "n_seeds": 3}


def one(overrides, raw=BASE):
    points = resolve(raw, overrides)
    assert len(points) == 1
    return points[0][0]


def test_bool_overrides_are_real_bools():
    assert one(["class_conditional=false"]).class_conditional is False
    assert one(["class_conditional=False"]).class_conditional is False  # upstream: bool('False') is True
    assert one(["class_conditional=true"]).class_conditional is True
    with pytest.raises(TypeError, match="class_conditional must be a bool"):
        one(["class_conditional=1"])
    with pytest.raises(TypeError, match="class_conditional must be a bool"):
        one(["class_conditional=maybe"])


def test_list_overrides():
    assert one(["alpha=[0.05,0.1]"]).alpha == [0.05, 0.1]
    assert one(["alpha=0.2"]).alpha == [0.2]  # scalar to a list-valued key: a one-element list
    assert one(["methods=SC"]).methods == ["SC"]  # not iterated character by character
    assert one(["methods=[SC, SPI]"]).methods == ["SC", "SPI"]
    with pytest.raises(TypeError, match=r"alpha\[1\] must be a number"):
        one(["alpha=[0.1, x]"])


def test_nested_and_dotted_keys():
    cfg = one(["data.n_classes=7", "data.signal=2"])
    assert cfg.data.n_classes == 7 and cfg.data.signal == 2.0 and cfg.data.kind == "imagenet_like"
    raw = apply_overrides({"a": {"b": 1}}, ["a.c.d=[1, 2]"])
    assert raw == {"a": {"b": 1, "c": {"d": [1, 2]}}}
    with pytest.raises(ConfigError, match="n_seeds is a int"):
        apply_overrides(BASE, ["n_seeds.x=1"])
    with pytest.raises(ConfigError, match="unknown config key data.nope"):
        one(["data.nope=1"])


def test_unknown_keys_are_clear_errors():
    with pytest.raises(ConfigError, match=r"unknown config key n_seed\b.*known keys.*n_seeds"):
        one(["n_seed=10"])
    with pytest.raises(ConfigError, match="experiment must be one of"):
        resolve({"experiment": "nope"})
    with pytest.raises(ConfigError, match="no 'experiment' key"):
        resolve({"alpha": [0.1]})


def test_type_errors_name_the_key():
    with pytest.raises(TypeError, match="n_seeds must be int, got float 2.5"):
        one(["n_seeds=2.5"])
    with pytest.raises(TypeError, match="n_cal must be int, got bool"):
        one(["n_cal=true"])
    with pytest.raises(TypeError, match="beta must be a number, got str 'abc'"):
        one(["beta=abc"])
    with pytest.raises(TypeError, match="data must be a mapping"):
        one(["data=3"])
    with pytest.raises(ConfigError, match="data.kind must be one of"):
        one(["data.kind=cifar"])
    with pytest.raises(TypeError, match="dataset must be a string"):
        one(["dataset=12"])
    assert one(["beta=1e-1"]).beta == 0.1  # YAML 1.1 reads 1e-1 as a string; numeric strings are accepted
    with pytest.raises(ConfigError, match="beta must lie in"):
        one(["beta=1.5"])
    with pytest.raises(ConfigError, match="methods must be a non-empty list"):
        one(["methods=[SC, CP]"])


def test_parse_override_errors():
    assert parse_override("a=") == ("a", None)
    assert parse_override("x.y=[1, 2]") == ("x.y", [1, 2])
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("a..b=1")
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_override("a=[1,")


def test_grid_expansion_order_and_list_valued_keys():
    raw = {**BASE, "n_cal": [10, 15], "data": {"kind": "imagenet_like", "signal": [1.0, 2.0, 3.0]},
           "alpha": [0.05, 0.1]}
    points = resolve(raw)
    assert len(points) == 6  # alpha (list-valued) is not an axis
    # "data" precedes "n_cal" in document order, so data.signal varies slowest (upstream order)
    assert [p[1] for p in points][:3] == [{"data.signal": 1.0, "n_cal": 10}, {"data.signal": 1.0, "n_cal": 15},
                                          {"data.signal": 2.0, "n_cal": 10}]
    assert [p[0].n_cal for p in points] == [10, 15] * 3
    assert all(p[0].alpha == [0.05, 0.1] for p in points)
    grid = expand_grid(SPPIConfig, {**BASE, "alpha": [[0.1], [0.05, 0.2]]})  # list of lists: an axis
    assert [g for _, g in grid] == [{"alpha": [0.1]}, {"alpha": [0.05, 0.2]}]
    assert len(resolve(BASE, ["class_conditional=[false, true]"])) == 2
    with pytest.raises(ConfigError, match="empty list"):
        resolve(BASE, ["n_cal=[]"])


def test_meps_alpha_must_match_dataset_and_data_root_required():
    raw = {"experiment": "sppi", "data": {"kind": "meps"}, "data_root": "/x", "alpha": [0.1]}
    assert one([], raw).dataset == "MEPS_alpha_0.1"
    with pytest.raises(ConfigError, match="disagrees with dataset"):
        one(["alpha=0.05"], raw)
    with pytest.raises(ConfigError, match="data_root is required"):
        one(["data_root=null"], raw)


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)
    bad.write_text("!!python/object:os.system {}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):  # safe_load refuses python tags
        load_config(bad)


def test_shipped_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    files = sorted(root.rglob("*.yaml"))
    assert len([f for f in files if f.parent.name == "sppi"]) == 8
    extra = {"sppi": ["data_root=/data"], "guidance": ["model_dir=/m"], "gafi": [], "flows": []}
    for f in files:
        raw = load_config(f)
        ov = extra[f.parent.name] + (["data_root=/d", "upstream_config=/u.yaml"] if "cifar" in f.name else [])
        points = resolve(raw, ov)
        assert len(points) == 1 and points[0][0].experiment == f.parent.name, f


# ----------------------------------------------------------------------------------------
# One coercion for experiments and GaFi configs (issue 14 item 1)
# ----------------------------------------------------------------------------------------
from dataclasses import dataclass  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

from synthperf import _config  # noqa: E402


@dataclass
class _Probe:
    f: float = 0.0
    i: int = 0
    b: bool = False
    s: str = ""
    names: Optional[list[str]] = None
    pair: Optional[tuple[int, ...]] = None


# (probe field, GaFi SECTION.key of the same type, value)
PARITY = [("f", "OPTIMIZATION.lr", v) for v in (0.1, 3, "1e-4", "abc", True, None, float("nan"), float("inf"), [1.0])]
PARITY += [("i", "OPTIMIZATION.epochs", v) for v in (3, 2.5, True, "3", None)]
PARITY += [("b", "AUG.random_flip", v) for v in (True, False, 1, "yes", None)]
PARITY += [("s", "RUN.device", v) for v in ("cpu", 12, None, ["cpu"])]
PARITY += [("names", "PIPELINE.pipeline_dirs", v) for v in (["a", "b"], [1], ["a", None], [])]
PARITY += [("pair", "OPTIMIZATION.lr_milestones", v) for v in ([60, 80], [60, "x"], [True])]


def _outcome(fn):
    try:
        return "ok", fn()
    except (TypeError, ValueError) as exc:  # the rule part of the message, without the key prefix
        return type(exc), str(exc).split(" must be ", 1)[1].split(" (in ", 1)[0].split(" in '", 1)[0]


@pytest.mark.parametrize("field,gafi_key,value", PARITY)
def test_experiments_and_gafi_coerce_alike(tmp_path, field, gafi_key, value):
    from synthperf.experiments.config import build
    from synthperf.gafi.config import load_yaml

    section, key = gafi_key.split(".")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    exp = _outcome(lambda: getattr(build(_Probe, {field: value}), field))
    gafi = _outcome(lambda: load_yaml(path)[section][key])
    norm = lambda o: (o[0], list(o[1]) if isinstance(o[1], tuple) else o[1])  # noqa: E731
    if field == "pair" and exp[0] == "ok":
        assert isinstance(gafi[1], tuple) and isinstance(exp[1], tuple)  # tuple[int, ...] stays a tuple
    assert norm(exp) == norm(gafi), (exp, gafi)
    if exp[0] is not TypeError and exp[0] != "ok":  # a ValueError only for a non-finite float
        assert field == "f" and not np.isfinite(value)


def test_scalar_to_list_is_the_one_documented_difference(tmp_path):
    from synthperf.experiments.config import build
    from synthperf.gafi.config import load_yaml

    assert build(_Probe, {"names": "a"}).names == ["a"]  # P1: `methods=SC` on the command line
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"PIPELINE": {"pipeline_dirs": "a"}}))
    with pytest.raises(TypeError, match="PIPELINE.pipeline_dirs .*must be a list of strings, got str 'a'"):
        load_yaml(path)
    assert _config.coerce("a", list[str], "k", wrap_scalars=True) == ["a"]
    with pytest.raises(TypeError, match="k must be a list of strings"):
        _config.coerce("a", list[str], "k")


def test_shared_coerce_rules():
    c = _config.coerce
    assert c("2.5e-1", float, "x") == 0.25 and c(3, float, "x") == 3.0 and isinstance(c(3, float, "x"), float)
    assert c([1, 2.5], tuple[int, float], "t") == (1, 2.5)
    with pytest.raises(TypeError, match=r"t must be a list of 2 values \(int, a number\)"):
        c([1, 2, 3], tuple[int, float], "t")
    assert c(0.5, float | tuple[float, float], "sigma") == 0.5
    assert c([0.1, 0.2], float | tuple[float, float], "sigma") == (0.1, 0.2)
    with pytest.raises(TypeError, match="sigma must be a number or a list of 2 values"):
        c("x", float | tuple[float, float], "sigma")
    with pytest.raises(_config.ConfigError, match="x must be a finite number, got -inf"):
        c(float("-inf"), float, "x")
    with pytest.raises(_config.ConfigError, match="one of 'a', 'b'"):
        c("c", __import__("typing").Literal["a", "b"], "lit")
    assert issubclass(_config.ConfigError, ValueError) and ConfigError is _config.ConfigError
