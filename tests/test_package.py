"""Packaging: import without CUDA libraries, CLI, version, shipped Triton sources."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import synthperf

ROOT = Path(__file__).resolve().parents[1]


def test_version_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert synthperf.__version__ == meta["project"]["version"]


def test_import_needs_no_cuda_libraries():
    """Import in a process that cannot see any CUDA library path."""
    code = "import synthperf, synthperf._native; print(synthperf._native.max_threads() >= 1)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "", "LD_LIBRARY_PATH": "", "CUDA_VISIBLE_DEVICES": ""}, check=True)
    assert out.stdout.strip() == "True"


def test_native_module_not_linked_to_cuda_or_torch():
    so = Path(synthperf._native.__file__)
    ldd = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    assert "cuda" not in ldd.lower() and "torch" not in ldd.lower()


def test_cli_help_and_version():
    out = subprocess.run([sys.executable, "-m", "synthperf", "--help"], capture_output=True, text=True, check=True)
    assert "backends" in out.stdout
    out = subprocess.run([sys.executable, "-m", "synthperf", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"synthperf {synthperf.__version__}"


def test_triton_sources_ship_inside_package():
    spec = importlib.util.find_spec("synthperf.kernels.triton.order_stats")
    assert spec is not None and spec.origin.endswith("order_stats.py")
    # and no top-level package shadows the real Triton
    import triton

    assert "site-packages" in triton.__file__ or "dist-packages" in triton.__file__


def test_cuda_module_imports_or_is_absent():
    """The CUDA module imports without a driver, and its device count is what the backend
    layer acts on: the cuda backend is available exactly when the module sees a device."""
    import torch

    from synthperf.backend import available_backends, native_cuda_built, native_cuda_module

    if not native_cuda_built():
        assert native_cuda_module() is None and "cuda" not in available_backends()
        return
    import synthperf._native_cuda as cuda_mod

    n = cuda_mod.device_count()
    assert isinstance(n, int) and n >= 0
    if torch.version.cuda is not None:  # a CUDA build of torch sees the same devices
        assert n == torch.cuda.device_count()
    assert (native_cuda_module() is not None) == (n > 0)
    assert ("cuda" in available_backends()) == (n > 0)
    # the static runtime answers without a driver; CMake builds with CUDA 13 (sm_80/sm_90)
    version = cuda_mod.runtime_version()
    assert version >= 12000 and version % 10 == 0, version
