"""``SelectiveInferenceTask``: a Lightning module wrapping a task and a fitted score (spec §5, version A).

``forward(x)`` returns ``task(x)`` (a tensor becomes ``{"predictions": ...}``) merged with the
score's ``{"score", "selected"}``, computed on ``task.embed(x)`` (embedding scores),
``task.logits(x)`` (logit scores) or ``x`` (others). ``test_step`` updates a
:class:`SelectiveMetric` (from the task's ``test_metrics``) and an optional
:class:`RiskCoverageMetric` and logs ``full/``, ``selected/``, ``rejected/`` and ``rc/`` values;
``predict_step`` returns ``{"predictions", "score", "selected"}``.

Version B (seapig 0.3.0, ``SelectiveInferenceTask(task, score, acc_test_outputs, rc_metric)``) is
the same class: when ``task`` has ``extract(batch)`` and no ``embed``, or when the 4th positional
argument is a :class:`RiskCoverageMetric`, ``forward(batch)`` returns ``task.extract(batch)`` (a
dict) merged with ``score.select(query=that dict)``; ``test_step`` reads ``"prediction"`` and
``"label"`` from it (KeyError if missing) and ``predict_step`` returns ``{"prediction", "score",
"selected"}``. ``api_`` is ``"A"`` or ``"B"``.

Imports lightning at module import; :mod:`synthperf.selective` loads this module lazily.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import torch
from lightning import LightningModule
from torchmetrics import Metric, MetricCollection

from ._common import SelectiveTypeError
from .base import EmbeddingScore, UncertaintyScore
from .logits import LogitScore
from .metric import RiskCoverageMetric, SelectiveMetric

INPUT_KEYS = ("image", "input", "images", "inputs", "x")
TARGET_KEYS = ("mask", "label", "masks", "labels", "targets", "target", "y", "y_true")


def _get_from_batch(batch: Any, key: str | int | None, pos: int) -> Any:
    """``batch[key]`` (dict with str key / sequence with int key), or position ``pos`` when key is None."""
    if key is None:
        if isinstance(batch, Mapping):
            return list(batch.values())[pos]
        if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
            return batch[pos]
        if isinstance(batch, torch.Tensor) and pos == 0:
            return batch
        raise TypeError(f"Unsupported batch type {type(batch).__name__}: expected a dict, list or tuple")
    if isinstance(batch, Mapping):
        if key not in batch:
            raise KeyError(f"batch has no key {key!r}; keys are {sorted(map(str, batch))}")
        return batch[key]
    if isinstance(batch, Sequence):
        if not isinstance(key, int):
            raise TypeError(f"sequence batches need an integer key, got {key!r}")
        return batch[key]
    raise TypeError(f"Unsupported batch type {type(batch).__name__}")


class SelectiveInferenceTask(LightningModule):
    """Wrap ``task`` (an nn.Module / LightningModule with ``embed(x)``) and a fitted ``score``.

    input_key / target_key : dict-batch keys (input in ``INPUT_KEYS``, target in ``TARGET_KEYS``);
        None means positions 0 and 1 (or the first two dict values).
    acc_test_outputs : keep every test step's outputs in ``test_outputs``.
    rc_metric : optional :class:`RiskCoverageMetric` updated with (predictions, target, score).
    """

    def __init__(self, task: torch.nn.Module, score: UncertaintyScore, acc_test_outputs: bool = False,
                 input_key: str | None = None, target_key: str | None = None,
                 rc_metric: RiskCoverageMetric | None = None) -> None:
        super().__init__()
        if isinstance(input_key, RiskCoverageMetric) and rc_metric is None:  # B: (task, score, acc, rc_metric)
            input_key, rc_metric = None, input_key
        if not isinstance(task, torch.nn.Module):
            raise TypeError(f"task must be a torch.nn.Module, got {type(task).__name__}")
        has_embed, has_extract = callable(getattr(task, "embed", None)), callable(getattr(task, "extract", None))
        if not (has_embed or has_extract):
            raise TypeError("Wrapped task must have an embed() method (seapig git main), or `task` is required to "
                            "expose a `extract()` method (seapig 0.3.0).")
        self.api_ = "A" if has_embed else "B"
        if self.api_ == "B" and (input_key is not None or target_key is not None):
            raise ValueError("input_key/target_key apply to embed() tasks; extract() tasks read 'prediction' and "
                             "'label' from their output dict")
        if not isinstance(score, UncertaintyScore):
            raise TypeError(f"score must be a synthperf.selective UncertaintyScore, got {type(score).__name__}")
        if input_key is not None and input_key not in INPUT_KEYS:
            raise ValueError(f"input_key must be one of {INPUT_KEYS} or None, got {input_key!r}")
        if target_key is not None and target_key not in TARGET_KEYS:
            raise ValueError(f"target_key must be one of {TARGET_KEYS} or None, got {target_key!r}")
        if rc_metric is not None and not isinstance(rc_metric, RiskCoverageMetric):
            raise TypeError("rc_metric must be a seapig RiskCoverageMetric instance or None. "
                            "(synthperf.selective.RiskCoverageMetric is seapig's)")
        self.task = copy.deepcopy(task).eval()
        self.score = score
        self.input_key = input_key
        self.target_key = target_key
        base = getattr(task, "test_metrics", None)
        if base is not None and not isinstance(base, (Metric, MetricCollection)):
            raise TypeError("Wrapped task's test_metrics must be a Metric or MetricCollection")
        self.test_metrics = SelectiveMetric(base) if base is not None else None
        self.rc_metric = rc_metric
        self.test_outputs: list[dict[str, Any]] | None = [] if acc_test_outputs else None

    def _select(self, x: Any) -> dict[str, torch.Tensor]:
        if isinstance(self.score, EmbeddingScore):
            return self.score.select(self.task.embed(x))
        if isinstance(self.score, LogitScore):
            if not callable(getattr(self.task, "logits", None)):
                raise TypeError("logit scores need the wrapped task to have a logits() method")
            return self.score.select(self.task.logits(x))
        return self.score.select(x)

    @staticmethod
    def _as_dict(preds: Any) -> dict[str, Any]:
        if isinstance(preds, torch.Tensor):
            return {"predictions": preds}
        if not isinstance(preds, dict):
            raise SelectiveTypeError(f"the wrapped task must return a tensor or a dict, got {type(preds).__name__}")
        return dict(preds)

    def forward(self, x: object) -> dict[str, Any]:
        """A: ``task(x)`` merged with the selection; B: ``task.extract(batch)`` merged with it."""
        with torch.inference_mode():
            if self.api_ == "B":
                out = self.task.extract(x)
                if not isinstance(out, dict):
                    raise TypeError(f"Wrapped task must return a dict, got {type(out).__name__}")
                return out | self.score.select(query=out)
            out = self._as_dict(self.task(x))
            return out | self._select(x)

    @staticmethod
    def _require(out: Mapping[str, Any], *keys: str) -> None:
        missing = [k for k in keys if k not in out]
        if missing:
            raise KeyError(f"task.extract() output is missing key(s) {missing} (keys {sorted(map(str, out))})")

    def _test_step_b(self, batch: Any) -> dict[str, Any]:
        outputs = self(batch)
        self._require(outputs, "prediction", "label")
        preds, y = outputs["prediction"], outputs["label"]
        if self.test_metrics is not None:
            self.test_metrics.update(preds, y, outputs["selected"])
            self.log_dict(self.test_metrics.compute(), sync_dist=True)
        if self.rc_metric is not None:
            self.rc_metric.update(preds, y, outputs["score"])
            self.log_dict(self.rc_metric.compute(), sync_dist=True)
        if self.test_outputs is not None:
            self.test_outputs.append(outputs)
        return outputs

    def test_step(self, batch: object, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        if self.api_ == "B":
            return self._test_step_b(batch)
        x = _get_from_batch(batch, self.input_key, 0)
        y = _get_from_batch(batch, self.target_key, 1)
        outputs = self(x)
        preds = outputs["predictions"]
        if self.test_metrics is not None:
            self.test_metrics.update(preds, y, outputs["selected"])
            self.log_dict(self.test_metrics.compute(), sync_dist=True)
        if self.rc_metric is not None:
            self.rc_metric.update(preds, y, outputs["score"])
            self.log_dict(self.rc_metric.compute(), sync_dist=True)
        if self.test_outputs is not None:
            self.test_outputs.append(outputs)
        return outputs

    def on_test_epoch_end(self) -> None:
        if self.test_metrics is not None:
            self.log_dict(self.test_metrics.compute(), sync_dist=True)
        if self.rc_metric is not None:
            self.log_dict(self.rc_metric.compute(), sync_dist=True)

    def predict_step(self, batch: object, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        if self.api_ == "B":
            out = self(batch)
            self._require(out, "prediction")
            return {"prediction": out["prediction"], "score": out["score"], "selected": out["selected"]}
        x = _get_from_batch(batch, self.input_key, 0)
        custom = getattr(type(self.task), "predict_step", None)
        if custom is None or custom is LightningModule.predict_step:
            # plain nn.Module, or a LightningModule without its own predict_step: predict on the input
            # (Lightning's default predict_step would call task(batch) on the whole [x, y] batch).
            return self(x)
        with torch.inference_mode():
            out = self._as_dict(self.task.predict_step(batch, batch_idx, dataloader_idx))
            return out | self._select(x)

    def get_risk_coverage_curve(self):
        """The risk-coverage curve(s) of the last rc_metric compute, or None."""
        return None if self.rc_metric is None else self.rc_metric.get_curve()
