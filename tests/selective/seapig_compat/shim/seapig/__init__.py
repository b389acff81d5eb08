"""Test-only import shim: ``import seapig`` gives synthperf's implementation (issue 15 acceptance).

Put the directory holding this package first on ``sys.path`` (``PYTHONPATH``) to run seapig's own
test suites against :mod:`synthperf.selective`. Every ``seapig.<module>`` maps to the synthperf module
that implements it (see ``_MAP`` in ``run_suites.py``'s documentation and each shim file); no
behaviour lives here (its one call, ``set_package_logger("seapig")``, is synthperf's public switch). Both seapig APIs (git main and PyPI 0.3.0) are served by the same modules.
"""
from __future__ import annotations

from synthperf.selective import RiskCoverage, RiskCoverageMetric, SelectiveInferenceTask, SelectiveMetric
from synthperf.selective.utils import set_package_logger

from . import scores, utils

__version__ = "0.3.0"

# what a seapig-named distribution of synthperf does: the selective system logs on "seapig" (with a
# NullHandler, as seapig's __init__); a configuration call, no behaviour of its own
set_package_logger("seapig")

__all__ = ["RiskCoverage", "RiskCoverageMetric", "SelectiveInferenceTask", "SelectiveMetric", "scores", "utils"]
