"""seapig.utils -> synthperf.selective.utils (test-only shim)."""
from synthperf.selective.utils import *  # noqa: F401,F403
from synthperf.selective.utils import __all__  # noqa: F401

from . import logging, progress  # noqa: F401,E402
