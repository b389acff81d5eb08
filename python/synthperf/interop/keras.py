"""Keras classifiers as torch-facing callables (the ``tf`` extra; ``specs/gafi.md`` section 10).

Neutral interop shared by the systems (imports no system): GaFi uses it as DSF filter /
evaluator, guidance wraps it as ``KerasTorchClassifier`` (forward criterion only).

:class:`KerasClassifier` wraps a ``.keras``/``.h5`` file (or a built ``keras.Model``) as the
callable ``images (N, C, H, W) torch float -> logits (N, K) torch float32`` that
:func:`~synthperf.gafi.sampling.generate_filtered` and :func:`~synthperf.gafi.classifier.accuracy`
accept. Images move to NHWC numpy (Keras layout); a model ending in softmax
(``outputs="probabilities"``, the upstream convention) returns ``log p``, a valid logit vector
because ``softmax(log p) = p``, so DSF decisions equal those made on the probabilities.

Import order: TensorFlow and Triton each bundle LLVM, and whichever loads *second* aborts the
process ("LLVM ERROR: inconsistency in registered CommandLine options") if it is Triton (torch
imports Triton lazily, e.g. from ``torch.optim``). :func:`import_tensorflow` therefore loads
Triton first when it is installed; use it (this module does) instead of a bare
``import tensorflow`` in processes that also run torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["KerasClassifier", "import_tensorflow"]


def _preload_triton() -> None:
    try:
        import triton  # noqa: F401 - registers its LLVM options before TensorFlow's
    except ImportError:
        pass


def import_tensorflow():
    """``import tensorflow`` after Triton (see the module docstring); ImportError names the extra."""
    _preload_triton()
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise ImportError("the Keras interop needs TensorFlow: pip install 'synthperf[tf]'") from exc
    return tf


class KerasClassifier:
    """Callable torch-facing wrapper around a Keras classifier.

    ``model``: a ``.keras``/``.h5`` path or a built ``keras.Model`` with output (N, K);
    ``outputs``: ``"probabilities"`` (softmax head: returns ``log p``) or ``"logits"``;
    ``batch_size``: Keras ``predict`` batch. Calling it maps images (N, C, H, W) torch float
    (any device) to (N, K) torch float32 on the CPU.
    """

    def __init__(self, model: Any, *, outputs: str = "probabilities", batch_size: int = 128) -> None:
        if outputs not in ("probabilities", "logits"):
            raise ValueError(f"outputs must be 'probabilities' or 'logits', got {outputs!r}")
        tf = import_tensorflow()
        if isinstance(model, (str, Path)):
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"Keras model file {str(path)!r} does not exist")
            if path.suffix not in (".keras", ".h5"):
                raise ValueError(f"Keras model file must end in .keras or .h5, got {path.name!r}")
            model = tf.keras.models.load_model(path, compile=False)
        self.model, self.outputs, self.batch_size = model, outputs, batch_size
        self.num_classes = int(model.output_shape[-1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy().astype(np.float32)
        out = np.asarray(self.model.predict(arr, batch_size=self.batch_size, verbose=0), dtype=np.float64)
        if out.ndim != 2 or out.shape[1] != self.num_classes:
            raise ValueError(f"Keras model returned shape {out.shape}, expected (N, {self.num_classes})")
        if self.outputs == "probabilities":
            with np.errstate(divide="ignore"):
                out = np.log(out)
        return torch.from_numpy(out).float()
