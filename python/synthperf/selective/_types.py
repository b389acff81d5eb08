"""Type aliases and protocols for the public signatures of :mod:`synthperf.selective` (annotations only).

Both seapig APIs (spec ``seapig.md`` §0) pass the same kinds of objects, named here once:

Aliases:
    TensorInput   -- an ``(N, D)`` float matrix (embeddings or logits) as a ``torch.Tensor`` or
                     ``np.ndarray``, or seapig 0.3.0's dict holding one under ``"embedding(s)"`` /
                     ``"logit(s)"`` (and ``"label(s)"`` / ``"prediction"`` where a method reads them).
    ScoresOrInput -- synthetic data for an SPPI threshold: 1-D scores, or a ``TensorInput`` to score.
    LabelsInput   -- ``(N,)`` integer class indices, or ``(N, C)`` 0/1 multi-label rows.
    ArrayOrTensor -- a plain ``torch.Tensor`` or ``np.ndarray`` (no dict form).
    Loader        -- an iterable of batches: tensors, ``(x, y, ...)`` tuples or dicts.
    Loaders       -- ``{"train": Loader, "val" | "cal": Loader}`` (seapig's ``loaders=``).
    DeviceLike    -- ``"cpu"``, ``"cuda:0"``, a ``torch.device``, or ``None`` (automatic).
    SelectiveModel -- a model with ``.embed(x)`` / ``.logits(x)`` (seapig git main) or
                     ``.extract(batch) -> dict`` (seapig 0.3.0).

Protocols: :class:`EmbeddingModel`, :class:`LogitModel`, :class:`ExtractorModel`,
:class:`Projection` (PCA-like ``fit`` / ``transform``), :class:`OutlierDetector` (pyod-style).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Protocol, Union

import numpy as np
import torch

ArrayOrTensor = Union[torch.Tensor, np.ndarray]
TensorInput = Union[torch.Tensor, np.ndarray, Mapping[str, Union[torch.Tensor, np.ndarray]]]
ScoresOrInput = TensorInput
LabelsInput = Union[torch.Tensor, np.ndarray]
Loader = Iterable[object]
Loaders = Mapping[str, Iterable[object]]
DeviceLike = Union[str, torch.device, None]


class EmbeddingModel(Protocol):
    """seapig git main: ``embed(x) -> (B, D)`` embeddings of one batch input."""

    def embed(self, x: torch.Tensor) -> torch.Tensor: ...


class LogitModel(Protocol):
    """seapig git main: ``logits(x) -> (B, C)`` (or ``(B,)`` single-logit) of one batch input."""

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...


class ExtractorModel(Protocol):
    """seapig 0.3.0: ``extract(batch) -> {"embedding" | "logits" | "labels" | ...: tensor}``."""

    def extract(self, batch: object) -> Mapping[str, torch.Tensor]: ...


SelectiveModel = Union[EmbeddingModel, LogitModel, ExtractorModel, torch.nn.Module]


class Projection(Protocol):
    """A PCA-like projection: ``fit(X (N, D))`` then ``transform(X (M, D)) -> (M, d)``
    (:class:`synthperf.selective.TensorPCA`, or e.g. sklearn's PCA on numpy input)."""

    def fit(self, X: torch.Tensor) -> object: ...

    def transform(self, X: torch.Tensor) -> torch.Tensor: ...


class OutlierDetector(Protocol):
    """A pyod-style detector: ``fit(X (N, D))`` then ``decision_function(X (M, D)) -> (M,)``,
    higher = more outlying."""

    def fit(self, X: np.ndarray) -> object: ...

    def decision_function(self, X: np.ndarray) -> np.ndarray: ...


__all__ = ["ArrayOrTensor", "TensorInput", "ScoresOrInput", "LabelsInput", "Loader", "Loaders", "DeviceLike",
           "EmbeddingModel", "LogitModel", "ExtractorModel", "SelectiveModel", "Projection", "OutlierDetector"]
