"""One dispatch policy (issue 14 item 3): the process setting is a preference that falls back
along each kernel's supported list; only an explicit per-call request raises; ``auto``
keeps small host arrays on the CPU; ``backend=None`` in estimators means the process setting."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import synthperf
from synthperf import backend as bk
from synthperf.backend import BackendUnavailableError, backend_option, fallback_order, resolve_backend, use_backend
from synthperf.ops import order_statistics

NO_GPU = "cuda" not in synthperf.available_backends()

# Every kernel entry point on a CPU machine with SYNTHPERF_BACKEND=cuda: each must run, on cpu,
# and give the cpu answer; an explicit backend="cuda" must still raise.
_EVERY_KERNEL = r"""
import json, numpy as np, synthperf
from synthperf.backend import resolve_backend, BackendUnavailableError
from synthperf import ops
from importlib import import_module
ds, os_ = import_module("synthperf.ops.discrete_score"), import_module("synthperf.ops.order_stats")
th = import_module("synthperf.conformal.thresholds")
rng = np.random.default_rng(0)
x = rng.random((4, 30)); y = rng.normal(size=(20, 3)); z = rng.normal(size=(6, 3))
tabs = {k: np.full((3, 3), v) for k, v in dict(s=1.0, r=-0.1, a=0.3, gamma=0.2).items()}
coef = {k: v[0] for k, v in tabs.items()}
R, S = rng.random((3, 8)), rng.random((3, 25))
runs = {
  "order_statistics": (lambda b: ops.order_statistics(x, [1, 5, 30], backend=b), os_.SUPPORTED_BACKENDS),
  "discrete_score": (lambda b: ops.discrete_score(z, y, 0.3, backend=b), ds.SUPPORTED_BACKENDS),
  "integrate_discrete": (lambda b: ops.integrate_discrete(z, y, tabs, np.linspace(0, .2, 3), backend=b)["z"],
                         ds.SUPPORTED_BACKENDS),
  "pfode_step": (lambda b: ops.pfode_step(z, y, coef, coef, 0.1, backend=b), ds.SUPPORTED_BACKENDS),
  "split_conformal_thresholds": (lambda b: th.split_conformal_thresholds(x, [0.1, 0.01], backend=b),
                                 th.SUPPORTED_BACKENDS),
  "sppi_thresholds": (lambda b: th.sppi_thresholds(R, S, [0.1, 0.3], backend=b), th.SUPPORTED_BACKENDS),
}
report = {"setting": synthperf.get_backend()}
for name, (run, supported) in runs.items():
    chosen = resolve_backend(None, supported=supported, kernel=name, data=x)
    same = bool(np.array_equal(np.asarray(run(None)), np.asarray(run("cpu"))))
    try:
        run("cuda"); explicit = "ran"
    except BackendUnavailableError:
        explicit = "BackendUnavailableError"
    except ValueError as e:
        explicit = "ValueError" if "has no 'cuda' backend" in str(e) else repr(e)
    report[name] = [chosen, same, explicit]
print(json.dumps(report))
"""


def _run_child(code: str, **env: str) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHPERF_BACKEND")}
    child_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env, timeout=120)


@pytest.mark.skipif(not NO_GPU, reason="the fallback under test is the one of a CPU machine")
def test_env_cuda_on_a_cpu_machine_runs_every_kernel_on_cpu():
    out = _run_child(_EVERY_KERNEL, SYNTHPERF_BACKEND="cuda", TRITON_INTERPRET="0", OMP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report.pop("setting") == "cuda"
    assert len(report) == 6
    for name, (chosen, same, explicit) in report.items():
        assert chosen == "cpu", name
        assert same, f"{name}: the process-setting result differs from backend='cpu'"
        # an explicit per-call request is not a preference: it raises
        assert explicit in ("BackendUnavailableError", "ValueError"), (name, explicit)


def test_preference_falls_back_in_process():
    with use_backend("cuda"):
        got = resolve_backend(None, supported=("reference", "cpu", "triton"), kernel="k")
        assert got == ("triton" if not NO_GPU else "cpu")
    with use_backend("cpu"):  # a kernel without a C++ core: next in the kernel's list
        assert resolve_backend(None, supported=("reference", "triton"), kernel="k") in (
            ("reference",) if NO_GPU else ("triton",))
    with use_backend("reference"):
        assert resolve_backend(None, supported=("reference", "cpu"), kernel="k") == "reference"
        with pytest.raises(ValueError, match="has no 'reference' backend"):
            resolve_backend("reference", supported=("cpu",), kernel="k")  # explicit: raises
        assert resolve_backend(None, supported=("cpu",), kernel="k") == "cpu"  # preference: falls back


def test_fallback_order_walks_the_kernel_list():
    assert fallback_order("cuda", ("reference", "cpu", "cuda", "triton")) == ["cuda", "triton", "cpu", "reference"]
    assert fallback_order("cuda", ("reference", "cpu", "triton")) == ["triton", "cpu", "reference"]
    assert fallback_order("reference", ("reference", "cpu")) == ["reference", "cpu"]
    assert fallback_order("triton", ("cpu",)) == ["cpu"]


@pytest.mark.skipif(not NO_GPU, reason="CPU machine")
def test_explicit_request_raises_on_a_cpu_machine():
    with pytest.raises(BackendUnavailableError, match="no CUDA device|without CUDA"):
        resolve_backend("cuda", supported=("cpu", "cuda"), kernel="k")
    with use_backend("cuda"):  # the process setting does not turn an explicit request into a preference
        with pytest.raises(BackendUnavailableError):
            order_statistics(np.ones((2, 3)), [1], backend="cuda")


def test_auto_keeps_small_host_arrays_on_cpu(monkeypatch):
    """With a (simulated) GPU: small host inputs stay on cpu, large ones and CUDA tensors go
    to the GPU backend."""
    monkeypatch.setattr(bk, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(bk, "_unavailable_reason", lambda name: None)
    sup = ("reference", "cpu", "cuda", "triton")
    small = np.zeros((10, 10))
    large = np.zeros(bk.AUTO_HOST_MAX_ELEMENTS + 1)
    assert resolve_backend("auto", supported=sup, kernel="k", data=small) == "cpu"
    assert resolve_backend("auto", supported=sup, kernel="k", data=np.zeros(bk.AUTO_HOST_MAX_ELEMENTS)) == "cpu"
    assert resolve_backend("auto", supported=sup, kernel="k", data=large) == "cuda"
    assert resolve_backend("auto", supported=("reference", "cpu", "triton"), kernel="k", data=large) == "triton"
    assert resolve_backend("auto", supported=sup, kernel="k") == "cuda"  # no data: the device
    import torch

    assert resolve_backend("auto", supported=sup, kernel="k", data=torch.zeros(3)) == "cpu"  # small CPU tensor

    class FakeCudaTensor:  # a CUDA tensor, however small, is already on the device
        __module__ = "torch"
        device = torch.device("cuda", 0)

        def numel(self):
            return 4

    assert resolve_backend("auto", supported=sup, kernel="k", data=FakeCudaTensor()) == "cuda"
    with use_backend("auto"):
        assert resolve_backend(None, supported=sup, kernel="k", data=small) == "cpu"


def test_backend_option_validates_without_resolving():
    assert backend_option(None) is None
    assert backend_option("cuda") == "cuda"  # stored as a request; checked when a kernel runs
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        backend_option("gpu")
    with pytest.raises(TypeError, match="engine must be a string"):
        backend_option(3, "engine")
