"""seapig.risk -> synthperf.selective.risk (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.risk")
