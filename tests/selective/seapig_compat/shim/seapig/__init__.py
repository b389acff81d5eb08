"""Test-only import shim: ``import seapig`` gives synthperf's implementation (issue 15 acceptance).

Put the directory holding this package first on ``sys.path`` (``PYTHONPATH``) to run seapig's own
test suites against :mod:`synthperf.selective`. Every ``seapig.<module>`` maps to the synthperf module
that implements it (see ``_MAP`` in ``run_suites.py``'s documentation and each shim file); no
behaviour lives here. Both seapig APIs (git main and PyPI 0.3.0) are served by the same modules.
"""
from __future__ import annotations

import logging

from synthperf.selective import RiskCoverage, RiskCoverageMetric, SelectiveInferenceTask, SelectiveMetric

from . import scores, utils

__version__ = "0.3.0"

logging.getLogger("seapig").addHandler(logging.NullHandler())

__all__ = ["RiskCoverage", "RiskCoverageMetric", "SelectiveInferenceTask", "SelectiveMetric", "scores", "utils"]
