"""seapig.scores.mixins -> synthperf.selective.knn (test-only shim, names merged)."""
from seapig._shim import merge

merge(globals(), "synthperf.selective.knn")
del merge
