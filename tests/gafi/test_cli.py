"""YAML configs (spec section 9) and the ``synthperf gafi`` commands, run in-process with typer's
CliRunner at the smallest sizes: train-classifier -> train-gan -> pipeline -> multigan -> cas,
each writing Parquet (+ plots), then resume skipping finished work."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from synthperf.gafi import classifier as C
from synthperf.gafi import gan_train as GT
from synthperf.gafi import pipeline as P
from synthperf.gafi.cli import app
from synthperf.gafi.config import classifier_config, gan_configs, load_yaml, pipeline_config

runner = CliRunner()


def _text(result) -> str:
    """CLI output with rich's box drawing removed and whitespace collapsed."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", result.output).split())


def _write(path, cfg: dict):
    path.write_text(yaml.safe_dump(cfg))
    return path


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ------------------------------------------------------------------ config parsing
UPSTREAM_PIPELINE = """
DATA: {dataset: digits, image_size: 8, categorical: true, val_categorical: true, normalize: true,
       merge_train_val: false}
OPTIMIZATION: {optimizer: sgdw, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1e-4,
               batch_size: 128, val_batch_size: 128, epochs: 100}
MODEL: {name: resnet20, width: 64}
AUG: {random_flip: true, random_crop: true, random_erasing: true}
CLS_PRE: {name: resnet20, optimizer: sgdw, random_erasing: true, extra_name: ''}
PIPELINE: {gan_name: BigGAN_Deep_StudioGAN_cifar10_normalized_seed42_3discStep, steps: [all],
           ckpt_epochs: "(150, 500, 10)", stddev_search: "(1, 2, 0.05)", threshold_search: "(0, 0.9, 0.1)",
           apply_standing_stats: false, standing_stats_bs: 192, filtering_attempts: -1, class_samples: null}
RUN: {seed: 42, extra_name: '', mixed_precision: false}
"""


def test_upstream_pipeline_yaml_loads_with_upstream_grids(tmp_path):
    cfg = load_yaml(_write(tmp_path / "p.yaml", yaml.safe_load(UPSTREAM_PIPELINE)))
    assert cfg["OPTIMIZATION"]["weight_decay"] == 1e-4          # PyYAML reads 1e-4 as a string
    pcfg, ccfg = pipeline_config(cfg), classifier_config(cfg)
    assert len(pcfg.ckpt_epochs) == 36 and pcfg.ckpt_epochs[-1] == 500
    assert len(pcfg.stddev_search) == 21 and pcfg.stddev_search[-1] == 2.0
    assert len(pcfg.threshold_search) == 10 and pcfg.threshold_search[-1] == 0.9
    assert ccfg.epochs == 100 and ccfg.weight_decay == 1e-4 and ccfg.lr_milestones == (60, 80)


def test_gan_yaml_maps_onto_configs(tmp_path):
    cfg = load_yaml(_write(tmp_path / "g.yaml", {
        "DATA": {"dataset": "digits", "image_size": 8, "horizontal_flip": False},
        "OPTIMIZATION": {"optimizer": "adam", "g_lr": 2e-4, "d_updates_per_step": 3, "batch_size": 64},
        "MODEL": {"name": "biggan_deep", "g_conv_dim": 8, "apply_g_ema": True, "g_ema_decay": 0.9999},
        "LOSS": {"type": "hinge", "grad_penalty_type": None}}))
    g, t = gan_configs(cfg, channels=1, num_classes=10, image_size=8)
    assert (g.g_conv_dim, t.d_updates_per_step, t.g_ema_decay, t.horizontal_flip) == (8, 3, 0.9999, False)
    with pytest.raises(ValueError, match="image_size"):
        gan_configs(cfg, channels=3, num_classes=10, image_size=32)


@pytest.mark.parametrize("body, exc, words", [
    ({"OPTIMIZATION": {"lr_typo": 0.1}}, ValueError, "unknown config key OPTIMIZATION.lr_typo"),
    ({"EXTRA": {"a": 1}}, ValueError, "unknown config section 'EXTRA'"),
    ({"OPTIMIZATION": {"epochs": "ten"}}, TypeError, "OPTIMIZATION.epochs"),
    ({"OPTIMIZATION": {"epochs": 2.5}}, TypeError, "must be int"),
    ({"AUG": {"random_flip": "yes"}}, TypeError, "AUG.random_flip"),
    ({"OPTIMIZATION": {"lr": True}}, TypeError, "OPTIMIZATION.lr"),
    ({"OPTIMIZATION": {"lr_milestones": [60, "x"]}}, TypeError, "lr_milestones"),
    ({"PIPELINE": {"pipeline_dirs": "a"}}, TypeError, "PIPELINE.pipeline_dirs"),
    ({"LOSS": {"type": "wasserstein"}}, ValueError, "LOSS.type"),
    ({"PIPELINE": {"apply_standing_stats": True}}, ValueError, "apply_standing_stats"),
    ({"OPTIMIZATION": []}, ValueError, "must be a mapping"),
])
def test_bad_config_raises_naming_the_key(tmp_path, body, exc, words):
    with pytest.raises(exc, match=re.escape(words)):
        load_yaml(_write(tmp_path / "c.yaml", body))


@pytest.mark.parametrize("body, exc, words", [
    ({"OPTIMIZATION": {"epochs": 0}}, ValueError, "epochs must be an int >= 1"),
    ({"OPTIMIZATION": {"optimizer": "adam"}}, ValueError, "sgdw"),
    ({"PIPELINE": {"threshold_search": [0.0, 1.0]}}, ValueError, "tau"),
    ({"PIPELINE": {"stddev_search": [0.0]}}, ValueError, "sigma"),
    ({"PIPELINE": {"ckpt_epochs": [10, "x"]}}, TypeError, "ckpt_epochs"),
    ({"PIPELINE": {"stddev_search": "(1, 2)"}}, ValueError, "triplet"),
    ({"PIPELINE": {"protocol": "test"}}, ValueError, "protocol"),
])
def test_bad_values_raise_when_building_configs(tmp_path, body, exc, words):
    cfg = load_yaml(_write(tmp_path / "c.yaml", body))
    with pytest.raises(exc, match=re.escape(words)):
        pipeline_config(cfg), classifier_config(cfg)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("OPTIMIZATION: {lr: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping of sections"):
        load_yaml(tmp_path / "list.yaml")


def test_cli_reports_config_errors_as_usage_errors(tmp_path):
    bad = _write(tmp_path / "bad.yaml", {"OPTIMIZATION": {"epochs": "ten"}})
    r = _invoke("train-classifier", "--config", bad, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "OPTIMIZATION.epochs" in _text(r) and "must be int, got str 'ten'" in _text(r)
    typo = _write(tmp_path / "typo.yaml", {"MODEL": {"widht": 4}})
    r = _invoke("train-classifier", "--config", typo, "--out", tmp_path / "o")
    assert r.exit_code == 2 and "unknown config key MODEL.widht" in _text(r)
    r = _invoke("pipeline", "--config", _write(tmp_path / "p.yaml", {}), "--out", tmp_path / "o")
    assert r.exit_code == 2 and "PIPELINE.gan_dir" in _text(r)
    r = _invoke("demo", "--size", "huge", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "size must be" in _text(r)
    assert not (tmp_path / "o").exists()                        # nothing written on a config error


# ------------------------------------------------------------------ a tiny CLI run
CLS = {"OPTIMIZATION": {"epochs": 2, "batch_size": 64, "lr_milestones": [2]},
       "MODEL": {"width": 4}, "AUG": {"random_flip": False, "crop_padding": 1}, "RUN": {"seed": 1}}


def _boom(*a, **k):
    raise AssertionError("finished work was redone on resume")


def test_cli_stages_write_results_and_resume(tmp_path, monkeypatch):
    # 1. filter classifier
    cls_yaml = _write(tmp_path / "cls.yaml", CLS)
    r = _invoke("train-classifier", "--config", cls_yaml, "--out", tmp_path / "cls")
    assert r.exit_code == 0, r.output
    hist = pd.read_parquet(tmp_path / "cls" / "classifier" / "history.parquet")
    assert hist["epoch"].tolist() == [1, 2] and {"val_accuracy", "test_accuracy"} <= set(hist.columns)
    # 2. GAN with an EMA checkpoint per epoch
    gan_yaml = _write(tmp_path / "gan.yaml", {
        "DATA": {"horizontal_flip": False},
        "OPTIMIZATION": {"epochs": 2, "batch_size": 64, "d_updates_per_step": 2, "g_lr": 1e-3, "d_lr": 1e-3},
        "MODEL": {"latent_dim": 8, "shared_dim": 8, "g_conv_dim": 4, "d_conv_dim": 4, "g_depth": 1, "d_depth": 1,
                  "g_ema_start": 5, "g_ema_decay": 0.9}})
    r = _invoke("train-gan", "--config", gan_yaml, "--out", tmp_path / "gan")
    assert r.exit_code == 0, r.output
    assert GT.available_checkpoint_epochs(tmp_path / "gan") == [1, 2]
    assert pd.read_parquet(tmp_path / "gan" / "history.parquet")["epoch"].tolist() == [1, 2]
    # 3. GaFi search; ckpt 3 does not exist and is skipped, as upstream
    pipe = {**CLS, "CLS_PRE": {"path": str(tmp_path / "cls" / "classifier" / "best")},
            "PIPELINE": {"gan_dir": str(tmp_path / "gan"), "ckpt_epochs": [1, 2, 3], "stddev_search": [1.0, 1.5],
                         "threshold_search": [0.0], "class_samples": 8, "search_regen_every": 1,
                         "filtering_attempts": 3}}
    pipe_yaml = _write(tmp_path / "pipe.yaml", pipe)
    r = _invoke("pipeline", "--config", pipe_yaml, "--out", tmp_path / "pipe")
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "pipe" / "summary.json").read_text())
    assert summary["ckpt"] in (1, 2) and summary["sigma"] in (1.0, 1.5) and summary["tau"] == 0.0
    assert len(pd.read_parquet(tmp_path / "pipe" / "ckpt" / "results.parquet")) == 2
    assert (tmp_path / "pipe" / "stddev" / "search.png").is_file()
    # 4. MultiGAN (the same tuned GAN listed twice: 2 x 4 samples per class) and 5. CAS
    multi_yaml = _write(tmp_path / "multi.yaml", {**pipe, "PIPELINE": {
        "pipeline_dirs": [str(tmp_path / "pipe")] * 2, "class_samples": 8, "filtering_attempts": 3}})
    r = _invoke("multigan", "--config", multi_yaml, "--out", tmp_path / "multi")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "multi" / "cas.parquet")
    assert df["method"].tolist() == ["multigan"] and 0 <= df["cas"].iloc[0] <= 1
    assert (tmp_path / "multi" / "cas.png").is_file() and (tmp_path / "multi" / "cas.pdf").is_file()
    cas_yaml = _write(tmp_path / "cas.yaml", {**pipe, "PIPELINE": {
        "gan_checkpoint": str(GT.ema_checkpoint_path(tmp_path / "gan", 2)), "filter": True, "tau": 0.3,
        "class_samples": 8, "filtering_attempts": 3, "protocol": "upstream_test_selected"}})
    r = _invoke("cas", "--config", cas_yaml, "--out", tmp_path / "cas")
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(tmp_path / "cas" / "cas.parquet")
    assert df["method"].tolist() == ["gan"] and df["protocol"].tolist() == ["upstream_test_selected"]

    # resume: every command finds its work done and trains / generates nothing
    with monkeypatch.context() as m:
        m.setattr(C, "_train_epoch", _boom)
        m.setattr(GT, "hinge_d_loss", _boom)
        m.setattr(P, "run_cas", _boom)
        for cmd, yml, out in (("train-classifier", cls_yaml, "cls"), ("train-gan", gan_yaml, "gan"),
                              ("pipeline", pipe_yaml, "pipe"), ("multigan", multi_yaml, "multi"),
                              ("cas", cas_yaml, "cas")):
            r = _invoke(cmd, "--config", yml, "--out", tmp_path / out)
            assert r.exit_code == 0, (cmd, r.output)
        # --no-resume really recomputes
        r = _invoke("train-classifier", "--config", cls_yaml, "--out", tmp_path / "cls", "--no-resume")
        assert r.exit_code != 0 and "finished work was redone" in str(r.exception)
    # resuming into a directory written under another config is refused with a clear message
    longer = _write(tmp_path / "cls3.yaml", {**CLS, "OPTIMIZATION": {**CLS["OPTIMIZATION"], "epochs": 3}})
    r = _invoke("train-classifier", "--config", longer, "--out", tmp_path / "cls")
    assert r.exit_code == 1 and "different config" in _text(r)
    # a missing or corrupt checkpoint named in the config is reported, not a traceback
    (tmp_path / "cls" / "classifier" / "best.safetensors").write_bytes(b"not a safetensors file")
    r = _invoke("pipeline", "--config", pipe_yaml, "--out", tmp_path / "pipe2")
    assert r.exit_code == 1 and "corrupt" in _text(r)
    r = _invoke("cas", "--config", _write(tmp_path / "c2.yaml", {**pipe, "PIPELINE": {
        "gan_checkpoint": str(tmp_path / "gan" / "nope")}}), "--out", tmp_path / "cas2")
    assert r.exit_code == 1 and "missing" in _text(r)  # a missing checkpoint: CheckpointError, status 1


def test_gafi_group_is_registered_in_synthperf_cli():
    import importlib

    from synthperf.cli_groups import GROUPS

    module, _, attr = GROUPS["gafi"][0].partition(":")
    assert getattr(importlib.import_module(module), attr) is app
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("train-classifier", "train-gan", "pipeline", "multigan", "cas", "demo"):
        assert cmd in r.output
