"""synthperf: performance-first synthetic-data-powered trustworthy ML.

Five systems on one kernel layer (see docs/ARCHITECTURE.md):

- :mod:`synthperf.conformal` - SPPI, conformal prediction with synthetic calibration data;
- :mod:`synthperf.selective` - selective prediction (seapig API);
- :mod:`synthperf.flows` - inflationary flows;
- :mod:`synthperf.guidance` - feedback-guided diffusion synthesis;
- :mod:`synthperf.gafi` - GaFi post-processing of GAN synthetic data.

Kernels live in :mod:`synthperf.ops`; every entry point takes ``backend=`` (one of
``"auto"``, ``"reference"``, ``"cpu"``, ``"cuda"``, ``"triton"``).
"""
from __future__ import annotations

from ._version import __version__
from . import _native  # the C++ CPU core is always built; it never needs CUDA libraries
from .backend import (
    BackendUnavailableError,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from .progress import disable_progress, enable_progress, progress_enabled

__all__ = [
    "__version__",
    "BackendUnavailableError",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "disable_progress",
    "enable_progress",
    "progress_enabled",
]
