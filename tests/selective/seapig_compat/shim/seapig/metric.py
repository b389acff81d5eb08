"""seapig.metric -> synthperf.selective.metric (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.metric")
