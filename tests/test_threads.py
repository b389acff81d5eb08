"""Thread sizing (synthperf._threads): user overrides, worker division, busy-core detection."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from synthperf import _native, _threads


@pytest.fixture
def restore_threads(monkeypatch):
    old_torch, old_omp = torch.get_num_threads(), _native.max_threads()
    for var in _threads._ENV_VARS:  # monkeypatch restores the environment afterwards
        monkeypatch.setenv(var, os.environ.get(var, "")) if var in os.environ else monkeypatch.delenv(var, raising=False)
    yield
    torch.set_num_threads(old_torch)
    _native.set_num_threads(old_omp)


def test_env_overrides_win(monkeypatch):
    monkeypatch.setenv("SYNTHPERF_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert _threads.recommended_threads(workers=2) == 3
    monkeypatch.delenv("SYNTHPERF_NUM_THREADS")
    assert _threads.recommended_threads() == 5


@pytest.mark.parametrize("raw", ["zero", "0", "-2"])
def test_bad_env_named(monkeypatch, raw):
    monkeypatch.setenv("SYNTHPERF_NUM_THREADS", raw)
    with pytest.raises(ValueError, match="SYNTHPERF_NUM_THREADS"):
        _threads.recommended_threads()


def test_workers_divide_free_cores(monkeypatch):
    monkeypatch.delenv("SYNTHPERF_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "free_cores", lambda sample_s=0.2: 8)
    assert _threads.recommended_threads(workers=1) == 8
    assert _threads.recommended_threads(workers=3) == 2
    assert _threads.recommended_threads(workers=16) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_arguments(bad):
    with pytest.raises(ValueError, match="workers"):
        _threads.recommended_threads(workers=bad)
    if bad is not True and not isinstance(bad, str):
        with pytest.raises(ValueError, match="n must be"):
            _threads.configure_threads(bad)
    with pytest.raises(ValueError, match="sample_s"):
        _threads.busy_cores(0)


def test_configure_sets_torch_openmp_and_env(restore_threads):
    assert _threads.configure_threads(1) == 1
    assert torch.get_num_threads() == 1 and _native.max_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"  # inherited by worker processes and late imports
    got = _threads.current_threads()
    assert got["torch"] == 1 and got["openmp"] == 1


def test_thread_limits_restores(restore_threads):
    _threads.configure_threads(2)
    env = os.environ.get("OMP_NUM_THREADS")
    with _threads.thread_limits(1):
        assert torch.get_num_threads() == 1 and _native.max_threads() == 1
    assert torch.get_num_threads() == 2 and _native.max_threads() == 2
    assert os.environ.get("OMP_NUM_THREADS") == env


def test_busy_processes_are_seen():
    """With one spinning process per available core, at most one core is reported free, and
    this process's own CPU time is not counted as another process's."""
    n = _threads.available_cores()
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        assert _threads.busy_cores(0.3) >= n - 0.75
        assert _threads.free_cores(0.3) == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_own_cpu_time_is_not_counted(monkeypatch):
    """busy = (all busy jiffies) / (all jiffies) x ncpu - this process's own cores."""
    ncpu = 4
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: ncpu)
    stat = iter([(100.0, 400.0), (100.0 + 300.0, 400.0 + 400.0)])  # 3 of 4 cores busy in the window
    monkeypatch.setattr(_threads, "_cpu_times", lambda: next(stat))
    own = iter([10.0, 10.0 + 0.5])  # we used 0.5 s of CPU ...
    monkeypatch.setattr(_threads, "_own_cpu_seconds", lambda: next(own))
    clock = iter([0.0, 0.5])  # ... in 0.5 s of wall time: one core

    class FakeTime:  # only _threads sees it
        perf_counter = staticmethod(lambda: next(clock))
        sleep = staticmethod(lambda s: None)

    monkeypatch.setattr(_threads, "time", FakeTime)
    assert _threads.busy_cores(0.5) == pytest.approx(2.0)
