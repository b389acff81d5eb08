"""Distributed resources on ``synthperf run`` (issue 16 "Runs"): --device cuda -> Ray num_gpus and
a Slurm GPU, repeatable --slurm KEY=VALUE, cpus_per_task from the thread setting. The submitit and
Ray parameters are recorded by stand-in modules, so no cluster is needed; the stand-ins run the
tasks in this process, so the run directory is complete afterwards."""
from __future__ import annotations

import sys
import types

import pytest
import yaml

from synthperf import _native, _parallel
from synthperf._parallel import (device_resources, parse_slurm_options, ray_options, resource_defaults,
                                 slurm_cli_options, slurm_parameters)
from synthperf.experiments import load_results

from .conftest import cli
from .test_overrides import SMALL


@pytest.fixture
def small_yaml(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


# ------------------------------------------------------------------ builders
def test_device_resources():
    assert device_resources("cuda") == device_resources("cuda:1") == {"gpus": 1}
    assert device_resources("cpu") == device_resources(None) == device_resources("auto") == {}
    with pytest.raises(ValueError, match="device must be cpu, cuda"):
        device_resources("gpu")


def test_parse_slurm_options():
    got = parse_slurm_options(["gpus=2", "mem=32G", "account=abc", "partition=gpu", "time=1:30:00", "qos=high",
                               "cpus=8", "constraint=a100", "cluster=local", "nodes=1", "array_parallelism=3"])
    assert got == {"gpus_per_node": 2, "mem_gb": 32.0, "slurm_account": "abc", "slurm_partition": "gpu",
                   "timeout_min": 90, "slurm_qos": "high", "cpus_per_task": 8, "slurm_constraint": "a100",
                   "cluster": "local", "nodes": 1, "slurm_array_parallelism": 3}
    assert parse_slurm_options(["mem=512M"])["mem_gb"] == 0.5 and parse_slurm_options(["mem=2"])["mem_gb"] == 2.0
    assert parse_slurm_options(["mem=1T"])["mem_gb"] == 1024.0
    for t, minutes in (("45", 45), ("10:30", 11), ("2:00:00", 120), ("1-0", 1440), ("1-2:03", 1563),
                       ("0-0:00:30", 1)):
        assert parse_slurm_options([f"time={t}"])["timeout_min"] == minutes, t
    assert parse_slurm_options(None) == {}


@pytest.mark.parametrize("items, match", [
    (["gpus"], "KEY=VALUE"), (["gpus="], "KEY=VALUE"), (["color=red"], "key 'color' is unknown"),
    (["gpus=two"], "gpus must be an integer"), (["cpus=0"], "cpus must be an integer >= 1"),
    (["mem=lots"], "mem must be a size"), (["time=soon"], "time must be minutes"), (["time=0"], "at least one"),
    (["gpus=1", "gpus_per_node=2"], "gpus_per_node is given twice"),
])
def test_parse_slurm_options_errors_name_the_key(items, match):
    with pytest.raises(ValueError, match=match):
        parse_slurm_options(items)


def test_slurm_cpus_per_task_default_is_the_thread_setting():
    assert slurm_cli_options([])["cpus_per_task"] == _native.max_threads()
    assert slurm_cli_options(["cpus=5"])["cpus_per_task"] == 5


def test_slurm_parameters_and_ray_options():
    cluster, params = slurm_parameters({"gpus": 1}, 3, {"slurm_account": "a", "cpus_per_task": 4, "cluster": None})
    assert cluster is None
    assert params == {"timeout_min": 60, "slurm_array_parallelism": 3, "cpus_per_task": 4, "gpus_per_node": 1,
                      "slurm_account": "a"}
    cluster, params = slurm_parameters(None, 2, {"cluster": "local", "slurm_partition": "p", "timeout_min": 5})
    assert cluster == "local" and params == {"timeout_min": 5, "cpus_per_task": 1}
    assert ray_options({"gpus": 1}, 2, "ray://head:10001") == {"num_cpus": 1, "num_gpus": 1}
    assert "num_gpus" not in ray_options({}, 2, "auto")
    assert ray_options({}, 2, None)["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == str(
        _parallel._threads_per_worker(2))


def test_resource_defaults_apply_only_inside_and_only_without_explicit_resources(monkeypatch):
    seen = []
    monkeypatch.setattr(_parallel, "_slurm", lambda items, fn, workers, res, *a: seen.append(res) or [])
    with resource_defaults({"gpus": 1}):
        _parallel.execute([1], str, executor="slurm")
        _parallel.execute([1], str, executor="slurm", resources={"cpus": 2})
    _parallel.execute([1], str, executor="slurm")
    assert seen == [{"cpus": 1, "gpus": 1}, {"cpus": 2, "gpus": 0}, {"cpus": 1, "gpus": 0}]
    with pytest.raises(ValueError, match="unknown keys"):
        with resource_defaults({"gpu": 1}):
            pass


# ------------------------------------------------------------------ through the CLI
class _Job:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _fake_submitit(monkeypatch, seen: dict) -> None:
    class AutoExecutor:
        def __init__(self, folder, cluster=None):
            seen["cluster"] = cluster

        def update_parameters(self, **params):
            seen["params"] = params

        def map_array(self, fn, items):
            return [_Job(fn(x)) for x in items]

    monkeypatch.setitem(sys.modules, "submitit", types.SimpleNamespace(AutoExecutor=AutoExecutor))


def test_run_slurm_takes_repeatable_slurm_options_and_the_device(small_yaml, tmp_path, monkeypatch):
    seen: dict = {}
    _fake_submitit(monkeypatch, seen)
    out = tmp_path / "run"
    threads = _native.max_threads()  # the thread setting when the command starts
    res = cli("run", small_yaml, "-o", out, "--executor", "slurm", "--workers", "2", "--device", "cuda",
              "--slurm", "mem=8G", "--slurm", "account=abc", "--slurm", "partition=gpu", "--slurm", "time=1:30:00",
              "--no-report")
    assert res.exit_code == 0, res.output
    assert seen["cluster"] is None
    assert seen["params"] == {"timeout_min": 90, "slurm_array_parallelism": 2,
                              "cpus_per_task": threads, "gpus_per_node": 1, "mem_gb": 8.0,
                              "slurm_account": "abc", "slurm_partition": "gpu"}
    assert len(load_results(out)) > 0
    seen.clear()
    res = cli("run", small_yaml, "-o", tmp_path / "run2", "--executor", "slurm", "--slurm", "gpus=2",
              "--slurm", "cpus=3", "--slurm-partition", "p2", "--no-report")
    assert res.exit_code == 0, res.output
    assert seen["params"] == {"timeout_min": 60, "slurm_array_parallelism": 1, "cpus_per_task": 3,
                              "gpus_per_node": 2, "slurm_partition": "p2"}
    res = cli("run", small_yaml, "-o", tmp_path / "run3", "--slurm", "partition=a", "--slurm-partition", "b")
    assert res.exit_code == 2 and "--slurm-partition and --slurm both set partition" in res.output
    res = cli("run", small_yaml, "-o", tmp_path / "run3", "--slurm", "colour=red")
    assert res.exit_code == 2 and "--slurm key 'colour' is unknown" in res.output


def _fake_ray(monkeypatch, seen: dict) -> None:
    class Ref:
        def __init__(self, value):
            self.value = value

    def remote(**options):
        seen["options"] = options
        return lambda fn: types.SimpleNamespace(remote=lambda x: Ref(fn(x)))

    monkeypatch.setitem(sys.modules, "ray", types.SimpleNamespace(
        is_initialized=lambda: False, init=lambda **kw: seen.setdefault("init", kw), remote=remote,
        wait=lambda pending, num_returns=1: (pending[:1], pending[1:]), get=lambda ref: ref.value,
        shutdown=lambda: None))


@pytest.mark.parametrize("device, gpus", [("cuda", 1), ("cpu", None)])
def test_run_ray_asks_for_num_gpus_with_device_cuda(small_yaml, tmp_path, monkeypatch, device, gpus):
    seen: dict = {}
    _fake_ray(monkeypatch, seen)
    res = cli("run", small_yaml, "-o", tmp_path / "run", "--executor", "ray", "--address", "ray://head:10001",
              "--device", device, "--no-report")
    assert res.exit_code == 0, res.output
    assert seen["init"]["address"] == "ray://head:10001"
    assert seen["options"].get("num_gpus") == gpus and seen["options"]["num_cpus"] == 1


def test_local_ray_without_gpus_refuses_device_cuda(small_yaml, tmp_path, monkeypatch):
    monkeypatch.setattr(_parallel, "local_gpu_count", lambda: 0)
    res = cli("run", small_yaml, "-o", tmp_path / "run", "--executor", "ray", "--device", "cuda")
    assert res.exit_code == 2 and "this machine has 0 for a local Ray" in res.output
    assert not (tmp_path / "run").exists()
    res = cli("run", small_yaml, "-o", tmp_path / "run", "--device", "tpu")
    assert res.exit_code == 2 and "device must be cpu, cuda" in res.output


def test_device_flag_sets_the_config_device_key(tmp_path):
    cfg = tmp_path / "gafi.yaml"
    cfg.write_text(yaml.safe_dump({"experiment": "gafi", "preset": "micro", "gan_seeds": [1]}))
    doc = yaml.safe_load(cli("run", cfg, "--dry-run", "--device", "cuda", "-o", tmp_path / "o").output)
    assert doc["resolved"]["device"] == "cuda" and doc["resources"] == {"gpus": 1}
    doc = yaml.safe_load(cli("run", cfg, "--dry-run", "device=cuda", "-o", tmp_path / "o").output)
    assert doc["resources"] == {"gpus": 1}                     # the config's device asks for the GPU too
    res = cli("run", cfg, "--dry-run", "device=cuda", "--device", "cuda", "-o", tmp_path / "o")
    assert res.exit_code == 2 and "--device and a device override both set" in res.output
