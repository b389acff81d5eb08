"""Class-wise KNN scores (spec §1.5 "[B] ClassWiseScore").

One KNN scorer per class, fitted on that class's reference (and calibration) rows.

- **single label** (labels (N,) integer): a query is scored by the scorer of its *predicted*
  class and compared with that class's threshold (per-class ``q``-quantile).
- **multi label** (labels (N, C) in {0, 1}): every scorer scores every row, giving (N, C); the
  row score aggregates the columns of its positive labels (``"mean"``, ``"max"``, ``"min"`` or
  ``callable(scores, mask) -> (N,)``); rows without a positive label get the row mean. One
  global threshold is the ``q``-quantile of the aggregated calibration scores.

Without a calibration set the reference rows of class c are scored by scorer c leave-one-out.

Model mode (seapig 0.3.0): ``fit(model=, loaders={"train", "cal"})`` takes the embeddings from
the model (``.extract(batch)["embedding"]`` or ``.embed(x)``) and the labels from its output's or
the batch's ``"label"``; ``score/select(model=, loader=)`` take the predicted labels from
``extract``'s ``"prediction"`` (not needed with ``full_matrix=True``).
"""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable

import torch

from ._common import LABEL_KEYS, SelectiveInputError, as_tensor, check_embeddings, check_q, pick, quantile_threshold
from ._model_io import resolve_protocol, run_model
from ._types import LabelsInput, Loader, Loaders, Projection, SelectiveModel, TensorInput
from .base import _B_TENSORS, UncertaintyScore
from .knn_scores import CosineScore, EuclideanScore, KNNScore, MahalanobisScore


class ClassWiseMode(str, Enum):
    SINGLE_LABEL = "single_label"
    MULTI_LABEL = "multi_label"


def _split(x: Any, labels: Any, name: str, arg: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(x, dict) and labels is None:
        labels = next((x[k] for k in LABEL_KEYS if k in x), None)
    if labels is None and not isinstance(x, dict) and arg in ("ref", "cal"):  # seapig 0.3.0's dict-only API
        raise TypeError(f"`{arg}` must be a dictionary with 'embedding' and 'label' (or pass the labels argument), "
                        f"got {type(x).__name__}")
    emb = check_embeddings(x, f"{name} embeddings")
    if labels is None:
        raise ValueError(f"{name} needs labels: pass a dict with 'embedding' and 'label' or the labels argument")
    y = as_tensor(labels, f"{name} labels", keys=LABEL_KEYS)
    if y.shape[0] != emb.shape[0]:
        raise SelectiveInputError(f"{name} has {emb.shape[0]} embeddings but {y.shape[0]} labels")
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise TypeError(f"{name} labels must be integer class indices or 0/1 indicators")
    return emb, y.long()


def _from_model(model: Any, loader: Any, what: str, *, labels: bool = False,
                predictions: bool = False) -> tuple[torch.Tensor, Any, Any]:
    """(embeddings (N, D), labels or None, predictions or None) of ``loader`` through ``model``."""
    if model is None or loader is None:
        raise ValueError(f"{what}: `model` and `loader` must be given together." + _B_TENSORS)
    zs, ys = run_model(model, loader, "embedding", desc="Embedding")
    if not zs:
        raise ValueError(f"{what}: no batches found in loader")
    emb = torch.cat([z.detach().cpu() for z in zs])
    y = torch.cat([torch.as_tensor(v).cpu() for v in ys]) if labels and all(v is not None for v in ys) else None
    pred = None
    if predictions:
        method, key = resolve_protocol(model, "embedding")
        if key is None:
            raise ValueError(f"{what}: class-wise scores need predicted labels; a model with .embed() gives none, "
                             "pass prediction= or use a model whose extract(batch) returns 'prediction'")
        zs, _ = run_model(_PredictionView(model), loader, "embedding", desc="Predicting")
        pred = torch.cat([z.detach().cpu() for z in zs])
    return emb, y, pred


class _PredictionView:
    """A model whose ``extract(batch)["embedding"]`` is the wrapped model's ``"prediction"``."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def extract(self, batch: Any) -> dict[str, Any]:
        out = self._model.extract(batch)
        if not isinstance(out, dict) or "prediction" not in out:
            raise KeyError("model.extract() output has no 'prediction' for the class-wise scores")
        return {"embedding": out["prediction"]}


class ClassWiseScore(UncertaintyScore):
    """Per-class KNN scores; ``base_score_cls`` is a KNNScore subclass built with ``base_kwargs``."""

    train_required = True
    ident = "classwise"

    def __init__(self, base_score_cls: type, global_pca: Projection | None = None,
                 aggregation: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "mean", **base_kwargs: object) -> None:
        super().__init__()
        if not (isinstance(base_score_cls, type) and issubclass(base_score_cls, KNNScore)):
            raise TypeError("Class-wise scores are currently only supported for KNNScore.")
        if not callable(aggregation) and aggregation not in ("mean", "max", "min"):
            raise ValueError(f"Unknown aggregation {aggregation!r}: aggregation must be 'mean', 'max', 'min' "
                             "or a callable")
        base_score_cls(**base_kwargs)  # validate k, stat, ... now (ValueError/TypeError naming them), not at fit
        self.base_score_cls, self.base_kwargs = base_score_cls, base_kwargs
        self.global_pca, self.aggregation = global_pca, aggregation
        self.ident = f"classwise-{base_score_cls.ident}"
        self.scorers = torch.nn.ModuleDict()
        self.classes_: list[int] = []
        self.mode_: ClassWiseMode | None = None
        self.class_thresholds_: dict[int, torch.Tensor] | None = None

    def _proj(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.global_pca is None else self.global_pca.transform(x)

    def _aggregate(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if callable(self.aggregation):
            out = self.aggregation(s, mask)
        else:
            m = mask.bool()
            if self.aggregation == "mean":
                out = (s * m).sum(1) / m.sum(1)
            elif self.aggregation == "max":
                out = s.masked_fill(~m, float("-inf")).amax(1)
            else:
                out = s.masked_fill(~m, float("inf")).amin(1)
            out = torch.where(m.any(1), out, torch.full_like(out, float("nan")))
        return torch.where(torch.isnan(out), s.mean(1), out)

    def _members(self, y: torch.Tensor, c: int) -> torch.Tensor:
        return (y == c) if self.mode_ == ClassWiseMode.SINGLE_LABEL else (y[:, c] == 1)

    def fit(self, X: TensorInput | None = None, Y: TensorInput | None = None, *, ref: TensorInput | None = None,
            cal: TensorInput | None = None, labels: LabelsInput | None = None, cal_labels: LabelsInput | None = None,
            model: SelectiveModel | None = None, loaders: Loaders | None = None, y: LabelsInput | None = None) -> "ClassWiseScore":
        """Fit on ``X`` (dict ``{"embedding", "label"}`` or embeddings (N, D) + ``labels`` (N,) / (N, C))
        and optional ``Y`` (same forms, labels in ``cal_labels``), or on ``model`` + ``loaders``
        (``"train"``, optional ``"cal"``/``"val"``; module notes). ``y`` is an alias of ``labels``."""
        _, labels = pick(("labels", labels), ("y", y))
        x_arg, X = pick(("X", X), ("ref", ref))
        y_arg, Y = pick(("Y", Y), ("cal", cal))
        if (X is not None or Y is not None) and (model is not None or loaders is not None):
            raise ValueError("Cannot specify both embeddings (X/Y) and model+loaders." + _B_TENSORS)
        if model is not None or loaders is not None:
            if model is None or not isinstance(loaders, dict) or "train" not in loaders:
                raise ValueError("model mode needs model= and loaders= (a dict with a 'train' loader)" + _B_TENSORS)
            e, y_ref, _ = _from_model(model, loaders["train"], "loaders['train']", labels=True)
            X = {"embedding": e, "label": y_ref}
            cal_key = "cal" if "cal" in loaders else ("val" if "val" in loaders else None)
            if cal_key is not None:
                e, y_cal, _ = _from_model(model, loaders[cal_key], f"loaders[{cal_key!r}]", labels=True)
                Y = {"embedding": e, "label": y_cal}
        if X is None:
            raise ValueError("Must specify reference embeddings with labels (X= or ref=)" + _B_TENSORS)
        emb, y = _split(X, labels, "reference", x_arg)
        self.mode_ = ClassWiseMode.SINGLE_LABEL if y.ndim == 1 else ClassWiseMode.MULTI_LABEL
        if self.global_pca is not None:
            self.global_pca.fit(emb)
        emb = self._proj(emb)
        cal_e = cal_y = None
        if Y is not None:
            cal_e, cal_y = _split(Y, cal_labels, "calibration", y_arg)
            if (cal_y.ndim == 1) != (y.ndim == 1):
                raise ValueError("reference and calibration labels must both be 1-D (single label) or 2-D (multi label)")
            cal_e = self._proj(cal_e)
        self.classes_ = sorted(int(c) for c in torch.unique(y)) if y.ndim == 1 else list(range(y.shape[1]))
        self.scorers = torch.nn.ModuleDict()
        for c in self.classes_:
            m = self._members(y, c)
            if not bool(m.any()):
                raise ValueError(f"No training samples found for class {c}")
            scorer = self.base_score_cls(**self.base_kwargs)
            cal_c = None
            if cal_e is not None:  # each class calibrates on its own calibration rows (both modes)
                mc = self._members(cal_y, c)
                cal_c = cal_e[mc] if bool(mc.any()) else None
            scorer.fit(X=emb[m], Y=cal_c)
            self.scorers[str(c)] = scorer
        if self.mode_ == ClassWiseMode.MULTI_LABEL:
            base_e, base_y = (cal_e, cal_y) if cal_e is not None else (emb, y)
            full = self._full(base_e)
            if cal_e is None:  # own-class rows: leave-one-out self-scores
                for j, c in enumerate(self.classes_):
                    full[self._members(y, c), j] = self.scorers[str(c)].scores.to(full.dtype)
            self.scores = self._aggregate(full, base_y)
        else:
            self.scores = torch.cat([self.scorers[str(c)].scores for c in self.classes_])
        self.n_features_in_ = int(as_tensor(X, "reference").shape[1])
        self.threshold, self.class_thresholds_ = None, None
        self.set_trained()
        if cal_e is not None:
            self.set_calibrated()
        return self

    @property
    def mode(self) -> ClassWiseMode:
        """``ClassWiseMode.SINGLE_LABEL`` (1-D labels) or ``MULTI_LABEL`` (2-D); RuntimeError before fit
        (as seapig; ``mode_`` is None until then)."""
        if self.mode_ is None:
            raise RuntimeError("fit() must be called before mode is known: ClassWiseScore is not fitted")
        return self.mode_

    def _full(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.scorers[str(c)]._score_embeddings(emb) for c in self.classes_], dim=1)

    def set_threshold(self, q: float = 0.99) -> dict[int, torch.Tensor] | torch.Tensor:
        q = check_q(q, allow_one=True)
        if not self.is_trained():
            raise RuntimeError("fit() must be called before setting thresholds: ClassWiseScore is not fitted")
        self.class_thresholds_ = {c: self.scorers[str(c)].set_threshold(q) for c in self.classes_}
        self.threshold = quantile_threshold(self.scores, q)
        self.threshold_q_ = q
        return self.class_thresholds_ if self.mode_ == ClassWiseMode.SINGLE_LABEL else self.threshold

    def get_threshold(self, full_matrix: bool = False):
        if self.mode_ == ClassWiseMode.SINGLE_LABEL or full_matrix:
            return self.class_thresholds_
        return self.threshold

    def _query(self, X: Any, query: Any, prediction: Any, model: Any = None, loader: Any = None,
               full_matrix: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        _, x = pick(("X", X), ("query", query))
        if x is not None and (model is not None or loader is not None):
            raise ValueError("Cannot specify both query embeddings and model+loader." + _B_TENSORS)
        if isinstance(x, dict):  # seapig 0.3.0's query dict, checked before the fitted state as there
            if "embedding" not in x:
                raise KeyError("Key `embedding` must be in `query`.")
            if prediction is None and not full_matrix and "prediction" not in x and "predictions" not in x:
                raise KeyError("Key `prediction` must be in `query` if `full_matrix=False`.")
        elif x is not None and not hasattr(x, "shape"):
            raise TypeError(f"`query` must be a dictionary. (or embeddings with prediction=), got {type(x).__name__}")
        if not self.is_trained():
            raise RuntimeError("fit() must be called before scoring: ClassWiseScore is not fitted")
        if x is None and (model is not None or loader is not None):
            emb, _, pred = _from_model(model, loader, "score()", predictions=prediction is None and not full_matrix)
            x = {"embedding": emb, "prediction": pred if prediction is None else prediction}
        if x is None:
            raise ValueError("score() needs query embeddings (X= or query=) or model= and loader=" + _B_TENSORS)
        if isinstance(x, dict) and prediction is None:
            prediction = x.get("prediction", x.get("predictions"))
        self._check_ready("score()/select()")
        emb = self._proj(check_embeddings(x, "query embeddings", dim=self.n_features_in_))
        pred = None if prediction is None else as_tensor(prediction, "prediction").long()
        if pred is not None and self.mode_ == ClassWiseMode.SINGLE_LABEL and pred.ndim != 1:
            raise ValueError(f"Model was fit in 'single_label' mode but received labels of shape "
                             f"{tuple(pred.shape)}: predictions must be 1-D class indices")
        return emb, pred

    def score(self, X: TensorInput | None = None, *, query: TensorInput | None = None,
              prediction: LabelsInput | None = None, full_matrix: bool = False,
              model: SelectiveModel | None = None, loader: Loader | None = None) -> torch.Tensor:
        """(N,) scores (single: predicted class's scorer; multi: aggregated) or (N, C) with ``full_matrix``;
        query embeddings from ``X``/``query`` or from ``model`` + ``loader``."""
        emb, pred = self._query(X, query, prediction, model, loader, full_matrix)
        full = self._full(emb)
        if full_matrix:
            return full
        if pred is None:
            raise ValueError("class-wise scores need the predicted labels (query dict key 'prediction' or prediction=)")
        if self.mode_ == ClassWiseMode.MULTI_LABEL:
            return self._aggregate(full, pred)
        col = {c: j for j, c in enumerate(self.classes_)}
        unknown = set(pred.tolist()) - set(col)
        if unknown:
            raise ValueError(f"Unknown class labels in y: {sorted(unknown)} (predicted classes not seen in fit; "
                             f"classes {self.classes_})")
        j = torch.tensor([col[int(p)] for p in pred.tolist()], dtype=torch.long)
        return full[torch.arange(full.shape[0]), j]

    def select(self, X: TensorInput | None = None, *, query: TensorInput | None = None,
               prediction: LabelsInput | None = None, full_matrix: bool = False,
               model: SelectiveModel | None = None, loader: Loader | None = None) -> dict[str, torch.Tensor]:
        self._check_ready("select()")
        if self.class_thresholds_ is None:
            self._default_threshold()
        if model is not None or loader is not None:  # run the model once, then select on its outputs
            if X is not None or query is not None:
                raise ValueError("Cannot specify both query embeddings and model+loader." + _B_TENSORS)
            emb, _, pred = _from_model(model, loader, "select()", predictions=prediction is None and not full_matrix)
            query, prediction = emb, (pred if prediction is None else prediction)
        s = self.score(X, query=query, prediction=prediction, full_matrix=full_matrix)
        thr_c = torch.stack([self.class_thresholds_[c].float() for c in self.classes_])
        if full_matrix:
            return {"score": s, "selected": s < thr_c[None, :]}
        if self.mode_ == ClassWiseMode.MULTI_LABEL:
            return {"score": s, "selected": s < self.threshold}
        _, pred = self._query(X, query, prediction)
        col = {c: j for j, c in enumerate(self.classes_)}
        thr = thr_c[torch.tensor([col[int(p)] for p in pred.tolist()], dtype=torch.long)]
        return {"score": s, "selected": s < thr}


class EuclideanClassWiseScore(ClassWiseScore):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(EuclideanScore, **kwargs)


class CosineClassWiseScore(ClassWiseScore):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(CosineScore, **kwargs)


class MahalanobisClassWiseScore(ClassWiseScore):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(MahalanobisScore, **kwargs)
