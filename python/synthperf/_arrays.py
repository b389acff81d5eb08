"""Array boundary: accept numpy arrays or torch tensors, return the caller's type.

Kernels coerce once here (contiguity, dtype, device) and hand plain buffers to the
backends; results go back as numpy arrays for numpy callers and as tensors on the
caller's device for torch callers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ArrayKind:
    """Where an input came from: ``"numpy"`` or ``"torch"`` (with its device)."""

    is_torch: bool
    device: Any = None  # torch.device for tensors


def _is_torch(x: object) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and type(x).__name__ in ("Tensor", "Parameter")


def array_kind(x: object) -> ArrayKind:
    if _is_torch(x):
        return ArrayKind(True, x.device)  # type: ignore[attr-defined]
    return ArrayKind(False, None)


def to_numpy(x: object, name: str) -> np.ndarray:
    """A numpy view (or copy, for device tensors) of ``x``; raises TypeError for non-arrays."""
    if _is_torch(x):
        return x.detach().cpu().numpy()  # type: ignore[attr-defined]
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) or np.isscalar(x):
        try:
            return np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name} is ragged or not array-like: {exc}") from None
    raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")


def to_torch(x: np.ndarray | Any, device: Any) -> Any:
    """``x`` as a contiguous torch tensor on ``device`` (no copy when already there)."""
    import torch

    t = x if _is_torch(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device).contiguous()


def like_input(result: Any, kind: ArrayKind) -> Any:
    """Return ``result`` (numpy array or tensor) in the caller's array type and device."""
    if kind.is_torch:
        import torch

        t = result if _is_torch(result) else torch.from_numpy(np.ascontiguousarray(result))
        return t.to(kind.device)
    if _is_torch(result):
        return result.detach().cpu().numpy()
    return result
