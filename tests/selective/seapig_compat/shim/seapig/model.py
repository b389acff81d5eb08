"""seapig.model -> synthperf.selective.model (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.model")
