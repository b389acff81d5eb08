"""seapig.scores.utils -> synthperf.selective.scores.utils (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.scores.utils")
