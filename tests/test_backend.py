"""Backend layer: selection, environment variable, availability and errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import synthperf
from synthperf.backend import resolve_backend, use_backend


def test_available_backends_has_cpu_and_reference():
    avail = synthperf.available_backends()
    assert avail[:2] == ["reference", "cpu"]


def test_auto_never_fails_without_gpu():
    name = resolve_backend("auto", supported=("reference", "cpu", "cuda", "triton"), kernel="k")
    expected = "cpu" if "cuda" not in synthperf.available_backends() else "cuda"
    assert name == expected


def test_auto_falls_back_to_reference_when_no_cpu_kernel():
    if "cuda" in synthperf.available_backends():
        pytest.skip("GPU present")
    assert resolve_backend("auto", supported=("reference", "cuda"), kernel="k") == "reference"


def test_set_backend_and_context():
    before = synthperf.get_backend()
    with use_backend("reference"):
        assert synthperf.get_backend() == "reference"
        assert resolve_backend(None, supported=("reference", "cpu"), kernel="k") == "reference"
    assert synthperf.get_backend() == before
    with pytest.raises(ValueError, match="unknown backend"):
        synthperf.set_backend("gpu")
    with pytest.raises(TypeError):
        synthperf.set_backend(3)


def test_unsupported_backend_for_kernel():
    with pytest.raises(ValueError, match="has no 'triton' backend"):
        resolve_backend("triton", supported=("reference", "cpu"), kernel="k")


def test_env_variable_selects_backend():
    code = "import synthperf; print(synthperf.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"SYNTHPERF_BACKEND": "reference", "PATH": ""}, check=True)
    assert out.stdout.strip() == "reference"
    bad = subprocess.run([sys.executable, "-c", "import synthperf, numpy as np; from synthperf.ops import order_statistics; order_statistics(np.ones((1,2)), [1])"],
                         capture_output=True, text=True, env={"SYNTHPERF_BACKEND": "quantum", "PATH": ""})
    assert bad.returncode != 0 and "SYNTHPERF_BACKEND" in bad.stderr


_TRITON_PROBE = ("import sys, numpy as np, synthperf; from synthperf.ops import order_statistics;"
                 "order_statistics(np.ones((2,3)), [1], backend={backend!r});"
                 "print(sorted(m for m in sys.modules if m == 'triton' or m.startswith(('triton.', "
                 "'synthperf.kernels'))))")


def test_auto_without_triton_interpreter_does_not_import_triton_kernels():
    """On a small host array ``auto`` runs on cpu (with or without a GPU) and imports neither
    Triton nor synthperf's Triton kernels. The positive control (an explicit triton run under
    the interpreter) shows the probe sees those modules when they are imported."""
    out = subprocess.run([sys.executable, "-c", _TRITON_PROBE.format(backend="auto")], capture_output=True,
                         text=True, env={"PATH": "", "TRITON_INTERPRET": "0"}, check=True)
    assert out.stdout.strip() == "[]"
    if "cuda" not in synthperf.available_backends():
        control = subprocess.run([sys.executable, "-c", _TRITON_PROBE.format(backend="triton")],
                                 capture_output=True, text=True, env={"PATH": "", "TRITON_INTERPRET": "1"},
                                 check=True)
        assert "synthperf.kernels.triton.order_stats" in control.stdout and "'triton'" in control.stdout


def test_progress_switch():
    synthperf.disable_progress()
    assert not synthperf.progress_enabled()
    from synthperf.progress import track

    assert list(track(range(3), "x")) == [0, 1, 2]
    synthperf.enable_progress()
    assert synthperf.progress_enabled()
    synthperf.disable_progress()


def test_numpy_result_for_list_input():
    from synthperf.ops import order_statistics

    out = order_statistics([[3.0, 1.0]], [1], backend="cpu")
    assert isinstance(out, np.ndarray) and out.tolist() == [[1.0]]
