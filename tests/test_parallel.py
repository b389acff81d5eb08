"""synthperf._parallel.execute, the one executor layer (issue 14 item 1).

Local runs with 1 and 2 worker processes give the same results in item order even when items
finish out of order; bad arguments raise before anything runs; the ``resources`` mapping reaches
Ray and submitit as their own option names (checked against recording stand-ins, so these tests
need neither). The real Ray and submitit paths run in tests/experiments/test_executors.py and
tests/guidance/test_generate.py.
"""
from __future__ import annotations

import os
import sys
import time
import types

import pytest

from synthperf import _parallel
from synthperf._parallel import execute


def slow_square(item: tuple[int, float]) -> tuple[int, int]:
    """Module level, so spawned workers can unpickle it; sleeps so later items finish first."""
    i, delay = item
    time.sleep(delay)
    return i * i, os.getpid()


def fail_on_three(i: int) -> int:
    if i == 3:
        raise ValueError(f"item {i} is bad")
    return i


ITEMS = [(0, 0.6), (1, 0.0), (2, 0.3), (3, 0.0), (4, 0.0)]


def test_local_one_and_two_workers_give_the_same_ordered_results():
    one = execute(ITEMS, slow_square, workers=1)
    two = execute(ITEMS, slow_square, workers=2)
    assert [r for r, _ in one] == [r for r, _ in two] == [0, 1, 4, 9, 16]
    assert {p for _, p in one} == {os.getpid()}           # workers=1 runs in this process
    assert os.getpid() not in {p for _, p in two}          # workers=2 runs in spawned processes


def test_empty_items_and_generators():
    assert execute([], slow_square, workers=3) == []
    assert execute(((i, 0.0) for i in range(3)), slow_square) == [(0, os.getpid()), (1, os.getpid()),
                                                                   (4, os.getpid())]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_item_raises_its_error(workers):
    with pytest.raises(ValueError, match="item 3 is bad"):
        execute(range(6), fail_on_three, workers=workers)


def test_bad_arguments_raise_before_anything_runs():
    calls = []
    fn = calls.append
    with pytest.raises(ValueError, match="executor must be one of"):
        execute([1], fn, executor="dask")
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            execute([1], fn, workers=bad)
    with pytest.raises(TypeError, match="fn must be callable"):
        execute([1], 3)
    with pytest.raises(ValueError, match=r"resources has unknown keys \['gpu'\]"):
        execute([1], fn, resources={"gpu": 1})
    with pytest.raises(ValueError, match=r"resources\['cpus'\] must be an integer >= 1"):
        execute([1], fn, resources={"cpus": 0})
    with pytest.raises(ValueError, match=r"resources\['gpus'\] must be a number >= 0"):
        execute([1], fn, resources={"gpus": float("nan")})
    with pytest.raises(TypeError, match="resources must be a mapping"):
        execute([1], fn, resources=[("cpus", 1)])
    with pytest.raises(TypeError, match="slurm must be a mapping"):
        execute([1], fn, executor="slurm", slurm="local")
    assert calls == []


class _FakeJob:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def test_slurm_resources_become_submitit_parameters(monkeypatch, tmp_path):
    seen = {}

    class AutoExecutor:
        def __init__(self, folder, cluster=None):
            seen["folder"], seen["cluster"] = str(folder), cluster

        def update_parameters(self, **params):
            seen["params"] = params

        def map_array(self, fn, items):
            return [_FakeJob(fn(x)) for x in items]

    monkeypatch.setitem(sys.modules, "submitit", types.SimpleNamespace(AutoExecutor=AutoExecutor))
    out = execute([(2, 0.0), (3, 0.0)], slow_square, executor="slurm", workers=4, log_dir=tmp_path,
                  resources={"cpus": 4, "gpus": 1, "mem_gb": 16, "timeout_min": 30}, slurm={"partition": "gpu"})
    assert [r for r, _ in out] == [4, 9]
    assert seen["folder"] == str(tmp_path / "%j") and seen["cluster"] is None
    assert seen["params"] == {"timeout_min": 30, "slurm_array_parallelism": 4, "cpus_per_task": 4,
                              "gpus_per_node": 1, "mem_gb": 16, "partition": "gpu"}
    execute([(1, 0.0)], slow_square, executor="slurm", slurm={"cluster": "local", "timeout_min": 5})
    assert seen["cluster"] == "local" and seen["params"] == {"timeout_min": 5, "cpus_per_task": 1}


def test_ray_resources_become_remote_options(monkeypatch):
    seen = {"shutdown": 0}

    class Ref:
        def __init__(self, value):
            self.value = value

    def remote(**options):
        seen["options"] = options
        return lambda fn: types.SimpleNamespace(remote=lambda x: Ref(fn(x)))

    fake = types.SimpleNamespace(
        is_initialized=lambda: False,
        init=lambda **kw: seen.setdefault("init", kw),
        remote=remote,
        wait=lambda pending, num_returns=1: (pending[-1:], pending[:-1]),  # completes last-submitted first
        get=lambda ref: ref.value,
        shutdown=lambda: seen.__setitem__("shutdown", seen["shutdown"] + 1),
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    out = execute([(i, 0.0) for i in range(4)], slow_square, executor="ray", workers=2,
                  resources={"cpus": 2, "gpus": 0.5, "mem_gb": 1})
    assert [r for r, _ in out] == [0, 1, 4, 9]
    assert seen["init"]["num_cpus"] == 2 and seen["shutdown"] == 1
    opts = seen["options"]
    assert (opts["num_cpus"], opts["num_gpus"], opts["memory"]) == (2, 0.5, 2**30)
    n = str(_parallel._threads_per_worker(2))
    assert opts["runtime_env"]["env_vars"] == {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n}
