"""Input validation shared by every public entry point.

Validation raises ``ValueError``/``TypeError`` naming the argument, the rule and the value
received; it never uses ``assert``.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._arrays import to_numpy


def float_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                allow_nan: bool = False, allow_empty: bool = False) -> np.ndarray:
    """``x`` as a float32/float64 numpy array (other real dtypes become float64).

    Raises TypeError for non-numeric dtypes and ValueError for a wrong ndim, an empty
    array (unless ``allow_empty``) or NaN (unless ``allow_nan``).
    """
    arr = to_numpy(x, name)
    if arr.dtype == object:
        raise ValueError(f"{name} is ragged or has mixed types (object array); pass a rectangular numeric array")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in allowed)}, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if not allow_nan and arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN; remove or impute NaN values first")
    return arr


def int_array(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """``x`` as an int64 numpy array; floats and bools raise TypeError."""
    arr = to_numpy(x, name)
    if arr.dtype == object:
        raise ValueError(f"{name} is ragged or has mixed types (object array)")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in allowed)}, got shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def open_unit_interval(value: Any, name: str) -> np.ndarray:
    """Scalar or 1-D levels strictly inside (0, 1), as float64 (e.g. alpha, beta)."""
    arr = np.asarray(to_numpy(value, name) if not np.isscalar(value) else value)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or a 1-D array of them, got {value!r}")
    arr = arr.astype(np.float64)
    if arr.ndim > 1:
        raise ValueError(f"{name} must be a scalar or 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~((arr > 0.0) & (arr < 1.0))
    if bad.any():
        raise ValueError(f"{name} must lie strictly inside (0, 1), got {arr[bad].tolist()}")
    return arr


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def real_scalar(value: Any, name: str, *, allow_inf: bool = True) -> float:
    """A real (non-NaN) float; ``allow_inf`` controls whether +/-inf is accepted."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if math.isnan(v) or (not allow_inf and math.isinf(v)):
        raise ValueError(f"{name} must be {'finite' if not allow_inf else 'a number'}, got {v}")
    return v


def float_tensor(x: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                 allow_empty: bool = False) -> Any:
    """A torch tensor ``x`` (any device) as a contiguous float32/float64 tensor on its device.

    The device twin of :func:`float_array`: dtype and shape are checked from metadata, so a
    CUDA tensor is never copied to the host (other real dtypes become float64 on the
    device). NaN is checked separately (:func:`first_nan_row`), once per call.
    """
    import torch

    if x.dtype == torch.bool or x.dtype.is_complex:
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            raise ValueError(f"{name} must be {' or '.join(f'{d}-D' for d in allowed)}, got shape {tuple(x.shape)}")
    if not allow_empty and x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float64)
    return x.detach().contiguous()


def first_nan_row(x: Any, lengths: np.ndarray | None = None) -> int:
    """First row of a 2-D torch tensor holding NaN within its valid length, or -1.

    Runs on the tensor's device (one reduction and one host sync for CUDA tensors);
    ``lengths`` [B] (host int64) limits each row to its first ``lengths[b]`` entries.
    """
    import torch

    nan = torch.isnan(x)
    if lengths is not None and int(lengths.min(initial=x.shape[1])) < x.shape[1]:
        ln = torch.from_numpy(np.ascontiguousarray(lengths)).to(x.device)
        nan &= torch.arange(x.shape[1], device=x.device)[None, :] < ln[:, None]
    rows = nan.any(dim=1)
    if not bool(rows.any()):
        return -1
    return int(torch.nonzero(rows)[0, 0])
