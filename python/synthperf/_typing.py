"""Shared type aliases for synthperf's public signatures (annotations only).

Aliases:
    ArrayLike      -- anything ``np.asarray`` accepts (lists, scalars, arrays).
    FloatArray     -- ``np.ndarray`` of a floating dtype.
    IntArray       -- ``np.ndarray`` of an integer dtype.
    BoolArray      -- ``np.ndarray`` of dtype ``bool``.
    ArrayOrTensor  -- a NumPy array or a ``torch.Tensor``; torch is imported only
                      under ``TYPE_CHECKING``, so importing this module never imports torch.
                      Resolving it with ``typing.get_type_hints`` needs ``torch``
                      in the namespace passed (e.g. ``localns={"torch": torch}``).
    BackendName    -- a backend name string; python/synthperf/backend.py defines no
                      such alias, so it is defined here.
    Predictor      -- structural type of a fitted sklearn-style model: ``predict(x) -> labels``.
    Estimator      -- an unfitted sklearn-style model: ``fit(x, y)`` plus ``predict``.
    LazyModule     -- a module imported on first attribute access, for annotations naming a
                      lazily imported library: ``pd = LazyModule("pandas")`` (under ``else:`` of
                      ``if TYPE_CHECKING: import pandas as pd``) lets ``typing.get_type_hints``
                      resolve ``"pd.DataFrame"`` to the real class while importing the module
                      never imports pandas.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Literal, Protocol, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    import torch

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]
BoolArray = NDArray[np.bool_]
ArrayOrTensor = Union[np.ndarray, "torch.Tensor"]
BackendName = Literal["auto", "cpu", "cuda", "triton", "reference"]


class Predictor(Protocol):
    """A fitted model with ``predict(x [N, D] float) -> labels [N]``."""

    def predict(self, x: FloatArray) -> ArrayLike: ...


class Estimator(Predictor, Protocol):
    """An unfitted sklearn-style model: ``fit(x [N, D], y [N])`` then ``predict``."""

    def fit(self, x: FloatArray, y: IntArray) -> object: ...


class LazyModule:
    """Stands for module ``name`` and imports it on the first attribute access (annotations only)."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):  # copy/pickle/introspection probes must not import the module
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._lazy_name), attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._lazy_name!r})"


__all__ = ["ArrayLike", "FloatArray", "IntArray", "BoolArray", "ArrayOrTensor", "BackendName", "Predictor", "Estimator",
           "LazyModule"]
