"""seapig.scores.knn -> synthperf.selective.knn_scores synthperf.selective.classwise synthperf.selective.knn (test-only shim, names merged)."""
from seapig._shim import merge

merge(globals(), "synthperf.selective.knn_scores", "synthperf.selective.classwise", "synthperf.selective.knn")
del merge
