"""seapig.scores.pca -> synthperf.selective.pca (test-only shim)."""
from seapig._shim import alias

alias(__name__, "synthperf.selective.pca")
