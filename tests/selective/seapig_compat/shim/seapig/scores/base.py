"""seapig.scores.base -> synthperf.selective.base (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.base")
