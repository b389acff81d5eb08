"""seapig.utils.logging -> synthperf.selective.utils.logging (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.utils.logging")
