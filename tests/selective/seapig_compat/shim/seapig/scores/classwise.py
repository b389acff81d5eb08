"""seapig.scores.classwise -> synthperf.selective.classwise (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.classwise")
