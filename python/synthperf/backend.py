"""Backend selection: which implementation of a kernel runs.

Every kernel entry point in :mod:`synthperf.ops` (and every estimator built on them) takes
``backend=`` with one of

- ``"reference"`` - the readable numpy/torch implementation, the ground truth of the tests;
- ``"cpu"``       - the C++ core (``synthperf._native``, OpenMP);
- ``"cuda"``      - CUDA kernels (``synthperf._native_cuda``), only with a CUDA device;
- ``"triton"``    - Triton kernels (``synthperf.kernels.triton``), with a CUDA device, or on
  CPU tensors under the Triton interpreter (``TRITON_INTERPRET=1`` set before import);
- ``"auto"``      - ``cuda``/``triton`` when a CUDA device is present, except that small host
  arrays (numpy or CPU tensors of at most :data:`AUTO_HOST_MAX_ELEMENTS` elements) stay on
  ``cpu``; without a device ``cpu`` (``reference`` for a kernel with no C++ core). It never
  raises because a GPU is absent.

One dispatch policy (issue 14 item 3):

- ``backend=None`` (every default) means the **process setting**: ``set_backend()``, else the
  environment variable ``SYNTHPERF_BACKEND``, else ``"auto"``. A concrete process setting is
  a *preference*: when the kernel does not implement it, or it cannot run here, the kernel
  falls back along its supported list (:func:`fallback_order`) and never raises for it.
- An explicit per-call ``backend="cuda"`` (or any concrete name) is a *request*: a kernel
  that lacks it raises ``ValueError``, one that cannot run here raises
  :class:`BackendUnavailableError`. ``backend="auto"`` never raises.
- Estimators store ``backend=None`` by default (validated with :func:`backend_option`) and
  pass it on, so they follow the process setting at call time.
"""
from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, Sequence

KNOWN_BACKENDS: tuple[str, ...] = ("auto", "reference", "cpu", "cuda", "triton")
CONCRETE_BACKENDS: tuple[str, ...] = ("reference", "cpu", "cuda", "triton")


class BackendUnavailableError(ValueError):
    """A backend was requested explicitly but cannot run on this machine."""


def _check_name(name: object, argument: str = "backend") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, one of {KNOWN_BACKENDS}; got {type(name).__name__}")
    if name not in KNOWN_BACKENDS:
        raise ValueError(f"unknown {argument} {name!r}: expected one of {KNOWN_BACKENDS}")
    return name


def _default_from_env() -> str:
    value = os.environ.get("SYNTHPERF_BACKEND", "auto").strip() or "auto"
    return _check_name(value, "SYNTHPERF_BACKEND")


_current: str | None = None  # set_backend() value; None means "read SYNTHPERF_BACKEND"


def set_backend(name: str) -> None:
    """Set the process-wide default backend (validated immediately)."""
    global _current
    _current = _check_name(name)


def get_backend() -> str:
    """The process-wide default backend (may be ``"auto"``)."""
    return _current if _current is not None else _default_from_env()


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Temporarily switch the default backend: ``with use_backend("reference"): ...``."""
    global _current
    previous = _current
    set_backend(name)
    try:
        yield
    finally:
        _current = previous


@lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """Number of CUDA devices torch can use (0 for the CPU wheel or with no driver)."""
    try:
        import torch
    except ImportError:  # torch is a core dependency, but never fail device discovery on it
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver install reads as "no GPU"
        return 0


@lru_cache(maxsize=1)
def native_cuda_module():
    """``synthperf._native_cuda`` if it was built, imports and sees a device, else None."""
    try:
        from . import _native_cuda  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return _native_cuda if _native_cuda.device_count() > 0 else None
    except Exception:
        return None


def native_cuda_built() -> bool:
    """Whether the CUDA extension exists in this install (whether or not a GPU is present)."""
    return importlib.util.find_spec("synthperf._native_cuda") is not None


def triton_interpreter_enabled() -> bool:
    """True when ``TRITON_INTERPRET=1``: Triton kernels then run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@lru_cache(maxsize=1)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _unavailable_reason(name: str) -> str | None:
    if name in ("reference", "cpu"):
        return None  # the C++ core is always built and imported with the package
    if name == "cuda":
        if not native_cuda_built():
            return "synthperf was built without CUDA (rebuild with -C cmake.define.SYNTHPERF_CUDA=ON)"
        if native_cuda_module() is None:
            return "no CUDA device is available (the CUDA module imports but sees 0 devices)"
        return None
    if name == "triton":
        if not _triton_installed():
            return "triton is not installed (pip install 'synthperf[gpu]')"
        if cuda_device_count() == 0 and not triton_interpreter_enabled():
            return ("no CUDA device is available; to run Triton kernels on CPU tensors set "
                    "TRITON_INTERPRET=1 before importing synthperf")
        return None
    raise ValueError(f"unknown backend {name!r}")


def available_backends() -> list[str]:
    """Concrete backends that can run here, e.g. ``['reference', 'cpu']`` on a CPU machine."""
    return [name for name in CONCRETE_BACKENDS if _unavailable_reason(name) is None]


#: ``auto`` keeps host inputs with at most this many elements on the CPU even when a GPU is
#: present (the copy to the device would cost more than the kernel saves).
AUTO_HOST_MAX_ELEMENTS: int = 1 << 18

#: The order in which a preference falls back (GPU backends only when a CUDA device is present).
FALLBACK_ORDER: tuple[str, ...] = ("cuda", "triton", "cpu", "reference")


def backend_option(backend: object, argument: str = "backend") -> str | None:
    """Validate a ``backend=`` option without resolving it, for estimators to store.

    Returns ``None`` (follow the process setting at call time) or one of
    :data:`KNOWN_BACKENDS`; raises TypeError/ValueError naming ``argument`` otherwise. Pass
    the stored value on to the kernels unchanged: ``None`` stays a preference with fallback,
    a concrete name stays an explicit request.
    """
    if backend is None:
        return None
    return _check_name(backend, argument)


def _host_elements(data: object) -> int | None:
    """Element count of a host input (numpy array or CPU tensor); None for device tensors
    and for anything that is not an array."""
    import numpy as np

    if isinstance(data, np.ndarray):
        return int(data.size)
    mod = type(data).__module__
    if mod.startswith("torch") and hasattr(data, "device") and hasattr(data, "numel"):
        return int(data.numel()) if data.device.type == "cpu" else None  # type: ignore[attr-defined]
    return None


def _is_cuda_tensor(data: object) -> bool:
    return type(data).__module__.startswith("torch") and getattr(getattr(data, "device", None), "type", None) == "cuda"


def _auto(supported: Sequence[str], data: object) -> str:
    if cuda_device_count() > 0:
        host = _host_elements(data)
        small_host = host is not None and host <= AUTO_HOST_MAX_ELEMENTS
        if not small_host or _is_cuda_tensor(data):
            for candidate in ("cuda", "triton"):
                if candidate in supported and _unavailable_reason(candidate) is None:
                    return candidate
    return "cpu" if "cpu" in supported else "reference"


def fallback_order(preference: str, supported: Sequence[str]) -> list[str]:
    """Candidates tried, in order, for a process-wide ``preference``: the preference itself,
    then the kernel's other supported backends in :data:`FALLBACK_ORDER`."""
    rest = [b for b in FALLBACK_ORDER if b in supported and b != preference]
    return ([preference] if preference in supported else []) + rest


def resolve_backend(backend: str | None, *, supported: Sequence[str], kernel: str, data: object = None) -> str:
    """Turn ``backend=`` (or the process setting) into the concrete backend that runs ``kernel``.

    ``supported`` lists the concrete backends the kernel implements; ``data`` (optional) is
    the main input, which lets ``auto`` keep small host arrays on the CPU. ``None`` follows
    the process setting as a preference with fallback (module docstring); ``"auto"`` never
    raises; an explicit concrete name that is unsupported raises ``ValueError``, one that
    cannot run here :class:`BackendUnavailableError` with the reason.
    """
    if backend is None:
        preference = get_backend()
        if preference == "auto":
            return _auto(supported, data)
        for candidate in fallback_order(preference, supported):
            if candidate in ("cuda", "triton") and candidate != preference and cuda_device_count() == 0:
                continue  # falling back never picks the Triton interpreter
            if _unavailable_reason(candidate) is None:
                return candidate
        return _auto(supported, data)
    name = _check_name(backend)
    if name == "auto":
        return _auto(supported, data)
    if name not in supported:
        raise ValueError(f"{kernel} has no {name!r} backend; it supports {tuple(supported)}")
    reason = _unavailable_reason(name)
    if reason is not None:
        raise BackendUnavailableError(f"backend {name!r} requested for {kernel} but {reason}")
    return name
