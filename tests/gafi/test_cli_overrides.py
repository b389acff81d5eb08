"""GaFi per-key overrides (issue 16 "Runs"): upstream's README flags (``--epochs 2``,
``--mixed_precision``, ``--random_erasing False``, ``--seed 3``) and Hydra-style overrides go
through the one override mechanism (synthperf._overrides) of ``synthperf run``; -m sweeps become
jobs OUT/i on an executor; MODEL.standing_stats maps GANTrainConfig.standing_stats."""
from __future__ import annotations

import sys
import types

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from synthperf import _native
from synthperf.gafi.cli import app
from synthperf.gafi.config import classifier_config, cli_overrides, flag_key, gan_configs, load_yaml

CLS = {"OPTIMIZATION": {"epochs": 3, "batch_size": 64, "lr_milestones": [2]},
       "MODEL": {"width": 4}, "AUG": {"random_flip": False, "crop_padding": 1}, "RUN": {"seed": 1}}


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _write(path, cfg: dict):
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------ flags -> overrides
def test_upstream_readme_flags_map_to_sections():
    assert cli_overrides(["--epochs", "2", "--mixed_precision", "--random_erasing", "False", "--seed", "3",
                          "--device", "cuda", "--gan_dir=/g"]) == [
        "OPTIMIZATION.epochs=2", "RUN.mixed_precision=true", "AUG.random_erasing=False", "RUN.seed=3",
        "RUN.device=cuda", "PIPELINE.gan_dir=/g"]
    # Hydra-style tokens: keys without a section are resolved the same way; dotted ones pass
    assert cli_overrides(["seed=4", "~tau", "+PIPELINE.tau=0.5", "++MODEL.width=8", "OPTIMIZATION.epochs=1,2"]) == [
        "RUN.seed=4", "~PIPELINE.tau", "+PIPELINE.tau=0.5", "++MODEL.width=8", "OPTIMIZATION.epochs=1,2"]
    assert flag_key("acml_steps") == "OPTIMIZATION.acml_steps"      # a fixed upstream key: validated later


@pytest.mark.parametrize("name, match", [
    ("batch_size", r"several sections \(OPTIMIZATION.batch_size, PIPELINE.batch_size\)"),
    ("epoch", "did you mean --epochs"), ("zzzz", "known keys:"),
])
def test_flag_key_errors(name, match):
    with pytest.raises(ValueError, match=match):
        flag_key(name)


def test_overrides_apply_before_validation(tmp_path):
    f = _write(tmp_path / "cls.yaml", CLS)
    cfg = load_yaml(f, cli_overrides(["--epochs", "2", "--mixed_precision", "--random_erasing", "False",
                                      "--seed", "3", "~AUG.crop_padding"]))
    c = classifier_config(cfg)
    assert (c.epochs, c.mixed_precision, c.random_erasing, c.seed) == (2, True, False, 3)
    assert "crop_padding" not in cfg["AUG"] and cfg["MODEL"] == {"width": 4}
    assert load_yaml(None, ["RUN.seed=5"]) == {"RUN": {"seed": 5}}       # no file: defaults plus overrides
    with pytest.raises(TypeError, match=r"OPTIMIZATION.epochs in .* with its overrides must be int, got str 'ten'"):
        load_yaml(f, cli_overrides(["--epochs", "ten"]))
    with pytest.raises(ValueError, match="already has OPTIMIZATION.epochs"):
        load_yaml(f, ["+OPTIMIZATION.epochs=2"])
    with pytest.raises(ValueError, match="OPTIMIZATION.acml_steps=2 is not supported"):
        load_yaml(f, cli_overrides(["--acml_steps", "2"]))
    with pytest.raises(ValueError, match="unknown config section 'OPTIM'"):
        load_yaml(f, ["OPTIM.epochs=2"])


def test_standing_stats_yaml_mapping(tmp_path):
    def train(cfg):
        return gan_configs(cfg, channels=1, num_classes=10, image_size=8)[1]

    assert train(load_yaml(None)).standing_stats == 0
    assert train(load_yaml(_write(tmp_path / "g.yaml", {"MODEL": {"standing_stats": 16}}))).standing_stats == 16
    assert train(load_yaml(None, cli_overrides(["--standing_stats", "4"]))).standing_stats == 4
    with pytest.raises(ValueError, match="MODEL.standing_stats .* must be >= 0"):
        load_yaml(None, ["MODEL.standing_stats=-1"])
    with pytest.raises(TypeError, match="MODEL.standing_stats .* must be int, got bool"):
        load_yaml(None, ["MODEL.standing_stats=true"])
    with pytest.raises(ValueError, match="apply_standing_stats=True is not supported"):   # upstream's key stays fixed
        load_yaml(None, ["PIPELINE.apply_standing_stats=true"])


# ------------------------------------------------------------------ the commands
def test_dry_run_prints_jobs_and_writes_nothing(tmp_path):
    f = _write(tmp_path / "cls.yaml", CLS)
    r = _invoke("train-classifier", "--cfg_file", f, "-o", tmp_path / "o", "--epochs", "2", "--seed", "1,2", "-m",
                "--dry-run")
    assert r.exit_code == 0, r.output
    jobs = yaml.safe_load(r.output)
    assert [j["out"] for j in jobs] == [str(tmp_path / "o" / "0"), str(tmp_path / "o" / "1")]
    assert [j["sweep"] for j in jobs] == [{"RUN.seed": 1}, {"RUN.seed": 2}]
    assert [j["config"]["RUN"]["seed"] for j in jobs] == [1, 2] and jobs[0]["config"]["OPTIMIZATION"]["epochs"] == 2
    r = _invoke("train-gan", "--cfg", "job", "--epochs", "1")
    assert r.exit_code == 0
    assert yaml.safe_load(r.output) == {"out": "gafi_runs", "config": {"OPTIMIZATION": {"epochs": 1}}}
    assert not (tmp_path / "o").exists()


def test_usage_errors_name_the_override(tmp_path):
    r = _invoke("train-classifier", "--seed", "1,2", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "RUN.seed has a comma-separated value" in r.output and "-m/--multirun" in r.output
    r = _invoke("train-classifier", "--epoch", "2", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "did you mean --epochs" in r.output
    r = _invoke("cas", "--batch_size", "8", "-o", tmp_path / "o")
    assert r.exit_code == 2 and "PIPELINE.batch_size" in r.output
    r = _invoke("train-classifier", "-o", tmp_path / "o", "--cfg", "all")
    assert r.exit_code == 2 and "--cfg must be 'job'" in r.output
    assert not (tmp_path / "o").exists()


def test_flags_reach_a_real_run(tmp_path):
    f = _write(tmp_path / "cls.yaml", CLS)
    r = _invoke("train-classifier", "--config", f, "--out", tmp_path / "cls", "--epochs", "1", "--random_erasing",
                "False")
    assert r.exit_code == 0, r.output
    hist = pd.read_parquet(tmp_path / "cls" / "classifier" / "history.parquet")
    assert hist["epoch"].tolist() == [1]                         # the file said 3


class _Job:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def test_multirun_jobs_go_to_slurm_with_resources(tmp_path, monkeypatch):
    seen: dict = {}

    class AutoExecutor:
        def __init__(self, folder, cluster=None):
            seen["folder"], seen["cluster"] = str(folder), cluster

        def update_parameters(self, **params):
            seen["params"] = params

        def map_array(self, fn, items):
            seen["jobs"] = list(items)
            return [_Job(j.out) for j in items]      # recorded, not run: RUN.device is cuda

    monkeypatch.setitem(sys.modules, "submitit", types.SimpleNamespace(AutoExecutor=AutoExecutor))
    threads = _native.max_threads()
    r = _invoke("train-gan", "-o", tmp_path / "sweep", "--seed", "1,2,3", "-m", "--device", "cuda",
                "--executor", "slurm", "--workers", "2", "--slurm", "partition=gpu", "--slurm", "mem=16G")
    assert r.exit_code == 0, r.output
    assert seen["folder"] == str(tmp_path / "sweep" / "slurm" / "%j")
    assert seen["params"] == {"timeout_min": 60, "slurm_array_parallelism": 2, "cpus_per_task": threads,
                              "gpus_per_node": 1, "mem_gb": 16.0, "slurm_partition": "gpu"}
    assert [(j.command, j.out, j.cfg["RUN"]) for j in seen["jobs"]] == [
        ("train-gan", str(tmp_path / "sweep" / str(i)), {"seed": s, "device": "cuda"}) for i, s in enumerate((1, 2, 3))]


def test_local_multirun_runs_every_job_into_its_folder(tmp_path):
    f = _write(tmp_path / "cls.yaml", CLS)
    r = _invoke("train-classifier", "-c", f, "-o", tmp_path / "m", "--epochs", "1", "--seed", "1,2", "-m")
    assert r.exit_code == 0, r.output
    assert "job 0:" in r.output and "job 1:" in r.output
    hists = [pd.read_parquet(tmp_path / "m" / str(i) / "classifier" / "history.parquet") for i in (0, 1)]
    assert [h["epoch"].tolist() for h in hists] == [[1], [1]]
    assert not hists[0].equals(hists[1])                  # different seeds, different training
