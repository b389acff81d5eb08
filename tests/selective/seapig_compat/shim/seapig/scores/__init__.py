"""seapig.scores -> synthperf.selective.scores (test-only shim)."""
from synthperf.selective.scores import *  # noqa: F401,F403
from synthperf.selective.scores import __all__  # noqa: F401
