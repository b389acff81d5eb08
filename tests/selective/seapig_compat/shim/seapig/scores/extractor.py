"""seapig.scores.extractor -> synthperf.selective.extractor (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.extractor")
