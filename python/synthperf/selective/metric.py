"""torchmetrics wrappers: ``SelectiveMetric`` and ``RiskCoverageMetric`` (spec §3).

Imports torchmetrics at module import; :mod:`synthperf.selective` loads this module lazily.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
from torchmetrics import Metric, MetricCollection

from .risk import RISKS, RiskCoverage, risk_coverage

SCOPES = ("full", "selected", "rejected")


class SelectiveMetric(Metric):
    """Evaluate ``base`` on all samples, the selected ones and the rejected ones.

    ``compute()`` returns ``{"full/<name>", "selected/<name>", "rejected/<name>"}``; a subset
    never updated reports ``tensor(0.)``. A bare Metric is wrapped in a MetricCollection (its key
    is the class name, e.g. ``BinaryAccuracy``).
    """

    full_state_update = False

    def __init__(self, base: Metric | MetricCollection, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if isinstance(base, Metric) and not isinstance(base, MetricCollection):
            base = MetricCollection(base)
        if not isinstance(base, MetricCollection):
            raise TypeError(f"base must be a torchmetrics Metric or MetricCollection, got {type(base).__name__}")
        self.metrics = {scope: copy.deepcopy(base) for scope in SCOPES}
        self._updated = {scope: False for scope in SCOPES}

    def update(self, preds: torch.Tensor, target: torch.Tensor, selected: torch.Tensor) -> None:
        """preds/target as the base metric expects (batch first); ``selected`` (B,) bool-like."""
        dev = preds.device
        target, selected = target.to(dev), torch.as_tensor(selected).to(dev)
        if not (preds.shape[0] == target.shape[0] == selected.shape[0]):
            raise ValueError(f"preds, target and selected must have the same batch size, got "
                             f"{preds.shape[0]}, {target.shape[0]} and {selected.shape[0]}")
        for m in self.metrics.values():
            m.to(dev)
        mask = selected.reshape(-1).to(torch.bool)
        self.metrics["full"].update(preds, target)
        self._updated["full"] = True
        for scope, m_ in (("selected", mask), ("rejected", ~mask)):
            if bool(m_.any()):
                self.metrics[scope].update(preds[m_], target[m_])
                self._updated[scope] = True

    def compute(self) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for scope, coll in self.metrics.items():
            if self._updated[scope]:
                for name, value in coll.compute().items():
                    out[f"{scope}/{name}"] = value
            else:
                for name in coll.keys():
                    out[f"{scope}/{name}"] = torch.tensor(0.0)
        return out

    def reset(self) -> None:
        for coll in self.metrics.values():
            coll.reset()
        self._updated = {scope: False for scope in SCOPES}
        super().reset()


class RiskCoverageMetric(Metric):
    """Accumulate (scores, residuals) and compute risk-coverage AUCs (AURC, oracle, E-AURC).

    ``error_metric``: a torchmetrics Metric/MetricCollection returning per-sample residuals (B,)
    (e.g. ``MeanSquaredError`` is *not* per-sample; use a metric with ``reduction='none'``); one
    curve per metric. Default residual: ``|preds - target|`` averaged over non-batch dims.
    ``compute()`` returns ``rc/auc_empirical``, ``rc/auc_reference``, ``rc/auc_excess`` for the
    default residual (and ``error_fn``), and ``rc/<name>/auc_*`` for every metric of
    ``error_metric`` - also when there is only one (seapig: a bare Metric is keyed by its class
    name, e.g. ``rc/MeanAbsoluteError/auc_empirical``). AUCs are taken after binning to
    ``n_bins`` points (:mod:`synthperf.selective.risk`).
    """

    full_state_update = False

    def __init__(self, risk: str = "generalized", n_bins: int = 100, *, error_metric: Metric | MetricCollection | None = None,
                 error_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if risk not in RISKS:
            raise ValueError(f"risk must be 'generalized' or 'selective', got '{risk}'")
        if error_metric is not None and error_fn is not None:
            raise ValueError("pass either error_metric or error_fn, not both")
        if error_metric is not None and isinstance(error_metric, Metric) and not isinstance(error_metric, MetricCollection):
            error_metric = MetricCollection(error_metric)
        self.risk, self.n_bins = risk, int(n_bins)
        self.error_metric, self.error_fn = error_metric, error_fn
        self.names = list(error_metric.keys()) if error_metric is not None else []
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("residuals", default=[], dist_reduce_fx="cat")
        for name in self.names:
            self.add_state(f"residuals_{name}", default=[], dist_reduce_fx="cat")
        self._curves: dict[str, RiskCoverage] | None = None

    @staticmethod
    def _validate_tensor(name: str, t: torch.Tensor, batch: int) -> torch.Tensor:
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim != 1 or t.shape[0] != batch:
            raise ValueError(f"Metric {name} must return a 1\u2011D tensor of residuals (shape (B,) or (B,1)), "
                             f"got shape {tuple(t.shape)}")
        return t

    def update(self, preds: torch.Tensor, target: torch.Tensor, scores: torch.Tensor) -> None:
        B = preds.shape[0]
        if target.shape[0] != B or scores.reshape(-1).shape[0] != B:
            raise ValueError(f"preds, target and scores must share the batch size {B}")
        if preds.ndim == 1:
            preds, target = preds.unsqueeze(1), target.unsqueeze(1)
        if self.error_metric is not None:
            self.error_metric.to(preds.device)
            self.error_metric.update(preds, target)
            out = self.error_metric.compute()
            self.error_metric.reset()
            first = None
            for name in self.names:
                r = self._validate_tensor(name, out[name].detach(), B).float()
                getattr(self, f"residuals_{name}").append(r)
                first = r if first is None else first
            self.residuals.append(first)
        else:
            if self.error_fn is not None:  # warned on every update, as seapig does
                warnings.warn("`error_fn` is deprecated; use `error_metric` instead.", DeprecationWarning,
                              stacklevel=2)
                r = self.error_fn(preds, target).reshape(B, -1).float().mean(dim=1)
            else:
                r = (preds.float() - target.float()).abs().reshape(B, -1).mean(dim=1)
            self.residuals.append(r)
        self.scores.append(scores.detach().reshape(-1).float())

    def compute(self) -> dict[str, torch.Tensor]:
        keys = [""] if not self.names else [f"{n}/" for n in self.names]
        streams = {"": "residuals"} if not self.names else {f"{n}/": f"residuals_{n}" for n in self.names}
        scores = self.scores
        if isinstance(scores, list):
            scores = torch.cat(scores) if scores else torch.zeros(0)
        out: dict[str, torch.Tensor] = {}
        curves: dict[str, RiskCoverage] = {}
        for key in keys:
            res = getattr(self, streams[key])
            if isinstance(res, list):
                res = torch.cat(res) if res else torch.zeros(0)
            if scores.numel() == 0:
                for part in ("empirical", "reference", "excess"):
                    out[f"rc/{key}auc_{part}"] = torch.tensor(0.0)
                continue
            curve = risk_coverage(scores, res, self.risk, self.n_bins)
            curves[key.rstrip("/") or "default"] = curve
            out[f"rc/{key}auc_empirical"] = curve.auc_empirical.float()
            out[f"rc/{key}auc_reference"] = curve.auc_reference.float()
            out[f"rc/{key}auc_excess"] = curve.auc_excess.float()
        self._curves = curves or None
        return out

    def get_curve(self, metric_name: str | None = None) -> RiskCoverage | dict[str, RiskCoverage] | None:
        """The curve(s) of the last ``compute()``: one RiskCoverage, a dict per metric, or None."""
        if self._curves is None:
            return None
        if metric_name is not None:
            if metric_name not in self._curves:
                raise KeyError(f"no curve for metric {metric_name!r}; available {sorted(self._curves)}")
            return self._curves[metric_name]
        if len(self._curves) == 1:
            return next(iter(self._curves.values()))
        return dict(self._curves)

    def reset(self) -> None:
        super().reset()
        self._curves = None
