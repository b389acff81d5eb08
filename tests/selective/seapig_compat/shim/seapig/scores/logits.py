"""seapig.scores.logits -> synthperf.selective.logits synthperf.selective.ensemble (test-only shim, names merged)."""
from seapig._shim import merge

merge(globals(), "synthperf.selective.logits", "synthperf.selective.ensemble")
del merge
