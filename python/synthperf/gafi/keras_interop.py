"""Former home of the Keras interop; it now lives in :mod:`synthperf.interop.keras`.

Re-exported here only for code that still imports ``synthperf.gafi.keras_interop``
(``synthperf.guidance.adapters``); new code imports :mod:`synthperf.interop.keras`.
"""
from __future__ import annotations

from ..interop.keras import KerasClassifier, import_tensorflow

__all__ = ["KerasClassifier", "import_tensorflow"]
