"""``synthperf.selective.scores.utils`` (seapig's ``seapig.scores.utils``): ``TensorPCA`` and
version B's ``_tensor(x, key)`` accessor (spec §1.4 [B], §1.7)."""
from __future__ import annotations

from typing import Any

import torch

from ..pca import TensorPCA

__all__ = ["TensorPCA"]


def _tensor(x: Any, key: str) -> torch.Tensor | None:
    """None -> None; a tensor -> itself; a dict -> ``x[key]`` (KeyError naming ``key``); else TypeError."""
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, dict):
        if key not in x:
            raise KeyError(f"Expected tensor or dict of tensors with key `{key}`; got keys {sorted(map(str, x))}")
        return x[key]
    raise TypeError(f"Expected a tensor or dict of tensors (a torch.Tensor, or a dict with key `{key}`), "
                    f"got {type(x).__name__}")
