"""Test-wide setup.

- Triton kernels run under the interpreter on CPU tensors when no CUDA device exists; the
  variable must be set before any @triton.jit module is imported, hence here.
- Progress bars are off in tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("SYNTHPERF_PROGRESS", "0")

try:
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover - torch is a core dependency
    _HAS_CUDA = False
if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

#: ../shared next to the checkout (reference data); tests needing it skip when absent.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_addoption(parser):
    parser.addoption("--fault-matrix", action="store_true", default=False,
                     help="also run the per-command fault matrix (tests/faults/test_fault_matrix.py, about 15 min on "
                          "2 cores); the default run keeps its `synthperf run` SPPI case and the fast fault suite")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--fault-matrix"):
        keep = [it for it in items if "fault_matrix" not in it.keywords]
        if len(keep) != len(items):
            config.hook.pytest_deselected(items=[it for it in items if "fault_matrix" in it.keywords])
            items[:] = keep
    if _HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device (its CPU twin runs)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared (reference data) is not present beside the checkout")
    return SHARED_DIR


@pytest.fixture(autouse=True)
def _no_automatic_thread_marker():
    """An in-process CLI call sizes threads automatically and leaves ``SYNTHPERF_THREADS_AUTO`` in
    the environment; without this, later tests would run with the ThreadGovernor active and their
    thread counts (hence float round-off) would depend on the machine's load. Tests of the
    governor set the marker themselves.

    Plain ``os.environ`` edits, not ``monkeypatch``: a test that calls ``monkeypatch.undo()``
    mid-way (the resume tests) would otherwise restore the marker half-way through the test.
    The thread variables and torch's count are put back after each test for the same reason."""
    from synthperf._threads import AUTO_MARKER

    keys = (AUTO_MARKER, "OMP_NUM_THREADS", "SYNTHPERF_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.pop(AUTO_MARKER, None)
    saved[AUTO_MARKER] = None
    threads = torch.get_num_threads()
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
