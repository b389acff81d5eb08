"""seapig.scores.pyod -> synthperf.selective.pyod_score (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.pyod_score")
