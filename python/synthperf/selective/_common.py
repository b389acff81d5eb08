"""Shared helpers of :mod:`synthperf.selective`: logger, input coercion, quantile thresholds.

Conventions (spec ``seapig.md`` §1.2): scores are 1-D, lower = more in-distribution = accept;
``selected = score < threshold`` (strict); the threshold is the linearly interpolated empirical
``q``-quantile of the stored calibration (or leave-one-out reference) scores.
"""
from __future__ import annotations

import logging
import numbers
from typing import Any

import numpy as np
import torch

#: name of the selective system's package logger; :func:`synthperf.selective.utils.set_package_logger`
#: changes it (e.g. to ``"seapig"`` for code that configures seapig's logger).
_PACKAGE_LOGGER = ["synthperf.selective"]


class _PackageLogger:
    """The selective system's logger, looked up at each use so that a renamed package logger applies
    to records of modules that imported ``logger`` before the rename."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(logging.getLogger(_PACKAGE_LOGGER[0]), attr)

    def __repr__(self) -> str:
        return f"<selective package logger {_PACKAGE_LOGGER[0]!r}>"


logger = _PackageLogger()


class SelectiveInputError(ValueError, AssertionError):
    """Bad input that seapig rejects with ``assert``: a ValueError (synthperf's rule: validation
    raises a clear error naming the argument, never ``assert``) that is also an AssertionError, so
    code written for seapig that catches ``AssertionError`` keeps working (spec ``seapig.md`` §1.4)."""


class SelectiveTypeError(TypeError, AssertionError):
    """An object of the wrong type where seapig git main asserts (e.g. a wrapped task returning
    neither a tensor nor a dict): a TypeError that is also an AssertionError, as
    :class:`SelectiveInputError` is for values."""


class LabelIndexError(ValueError, IndexError):
    """Class-index labels outside ``[0, C)`` (or NaN): a ValueError naming ``labels`` that is also an
    IndexError, the error seapig's cross-entropy gives for the same labels (spec ``seapig.md`` §1.9)."""


#: keys accepted for embeddings / logits / labels when a dict is passed (seapig version B).
EMBEDDING_KEYS = ("embedding", "embeddings")
LOGIT_KEYS = ("logit", "logits")
LABEL_KEYS = ("label", "labels")


def pick(*pairs: tuple[str, Any]) -> tuple[str | None, Any]:
    """Resolve version-A / version-B keyword aliases: at most one of ``pairs`` may be non-None.

    Returns ``(name, value)`` of the given one, ``(None, None)`` when none is given; two given
    values raise ``ValueError`` naming both keywords.
    """
    given = [(n, v) for n, v in pairs if v is not None]
    if len(given) > 1:
        names = " and ".join(f"{n}=" for n, _ in given)
        raise ValueError(f"{names} are aliases of the same argument; pass only one of them")
    return given[0] if given else (None, None)


def as_tensor(x: Any, name: str, *, keys: tuple[str, ...] = EMBEDDING_KEYS) -> torch.Tensor:
    """``x`` (tensor, numpy array, or dict holding one of ``keys``) as a torch tensor.

    Raises ``KeyError`` for a dict without any of ``keys`` and ``TypeError`` for other types.
    """
    if isinstance(x, dict):
        for key in keys:
            if key in x:
                return as_tensor(x[key], f"{name}[{key!r}]", keys=keys)
        raise KeyError(f"{name} is a dict without any of the keys {keys}; got keys {sorted(map(str, x))}")
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ValueError(f"{name} is ragged or has mixed types (object array)")
        if x.dtype.kind not in "biufc":
            raise TypeError(f"{name} must hold numbers, got a numpy array of dtype {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name} must be a torch.Tensor, numpy array or dict of tensors, got {type(x).__name__}")


def check_embeddings(x: Any, name: str, *, dim: int | None = None, check_finite: bool = True) -> torch.Tensor:
    """Validate an embedding matrix: real dtype, shape (N, D) with N >= 1, no NaN/inf.

    ``dim`` (the fitted dimension) is checked when given; ``check_finite=False`` skips the NaN/inf
    scan (for data an earlier call already validated). Returns a floating tensor (float32
    unless the input is float64), on the input's device.
    """
    t = as_tensor(x, name)
    if t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    if t.ndim == 1:
        raise ValueError(f"{name} must be 2-D (N, D), got a 1-D tensor of shape {tuple(t.shape)}; "
                         "use x.reshape(1, -1) for a single sample")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    if check_finite and not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "inf"
        raise ValueError(f"{name} contains {bad} values; remove or impute them before scoring")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} has dimension {t.shape[1]} but the score was fitted on dimension {dim} "
                         "(query dimension does not match index dimension)")
    return t


def check_q(q: Any, name: str = "q", *, allow_one: bool = False) -> float:
    """A quantile level in (0, 1), or in (0, 1] with ``allow_one`` (thresholds: q = 1 is the
    maximum stored score; with the strict ``score < threshold`` that score itself is rejected)."""
    interval = "(0, 1]" if allow_one else "(0, 1)"
    if isinstance(q, bool) or not isinstance(q, numbers.Real):
        raise TypeError(f"{name} must be a real number in {interval}, got {type(q).__name__} {q!r}")
    qf = float(q)
    if not (0.0 < qf < 1.0 or (allow_one and qf == 1.0)):
        raise ValueError(f"{name} must lie in {interval}, got {qf}")
    return qf


def quantile_threshold(scores: torch.Tensor, q: float) -> torch.Tensor:
    """Linearly interpolated empirical ``q``-quantile of ``scores`` (NaN ignored), as a 0-D tensor.

    Same definition as ``torch.quantile(..., interpolation="linear")`` (numpy's default
    ``method="linear"``), computed in float64 by numpy so there is no 16M-element limit.
    Returned in ``scores``' floating dtype (float32 for integer input).
    Infinite scores (e.g. -inf from a +inf logit) are ordered as usual; where the interpolation
    would be inf - inf (NaN), the nearer order statistic of the two is returned instead.
    """
    values = scores.detach().reshape(-1).cpu().double().numpy()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("cannot set a threshold: the stored scores are empty or all NaN")
    dtype = scores.dtype if scores.is_floating_point() else torch.float32
    with np.errstate(invalid="ignore"):
        thr = float(np.quantile(values, q))
    if np.isnan(thr):  # an infinite order statistic at the interpolation point
        v = np.sort(values)
        h = (v.size - 1) * q
        lo, hi = int(np.floor(h)), int(np.ceil(h))
        thr = float(v[lo] if (h - lo) < 0.5 else v[hi])
    return torch.tensor(thr, dtype=dtype)
