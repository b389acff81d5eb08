"""``synthperf.selective.scores.extractor`` (seapig 0.3.0's ``seapig.scores.extractor``)."""
from __future__ import annotations

from ..extractor import ModelExtractor, _resolve_method

__all__ = ["ModelExtractor", "_resolve_method"]
