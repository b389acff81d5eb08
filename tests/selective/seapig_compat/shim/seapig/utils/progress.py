"""seapig.utils.progress -> synthperf.selective.utils.progress (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.utils.progress")
