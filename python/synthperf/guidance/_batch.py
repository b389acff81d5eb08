"""Per-row argument handling shared by the SD and FLUX pipelines (spec §2, §9 batching)."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .._validation import real_scalar
from .criteria import CriterionSpec

#: Pipelines whose ``step`` is the DDPM-family update consistent with reading alphas_cumprod[t] (spec §1).
DDPM_TYPE_SCHEDULERS: tuple[str, ...] = (
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler",
    "DPMSolverSinglestepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler",
)


def check_sd_scheduler(scheduler: object) -> None:
    """Raise ValueError for schedulers inconsistent with the SD guidance formula (Euler, LMS, ...)."""
    name = type(scheduler).__name__
    if name not in DDPM_TYPE_SCHEDULERS or not hasattr(scheduler, "alphas_cumprod"):
        raise ValueError(f"scheduler {name} is not a DDPM-type scheduler: the SD guidance formula reads "
                         f"alphas_cumprod[t] and assumes unscaled latents, which holds only for "
                         f"{DDPM_TYPE_SCHEDULERS}. Swap it, e.g. DDIMScheduler.from_config(pipe.scheduler.config)")
    if getattr(scheduler.config, "use_karras_sigmas", False):
        raise ValueError(f"scheduler {name} uses Karras sigmas; its timesteps are not the training grid the "
                         "guidance formula indexes. Set use_karras_sigmas=False.")


def broadcast_rows(name: str, value: object, n: int | None) -> list:
    """A scalar becomes [value]*n; a list/tuple/array is checked for length n."""
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        seq = list(value.tolist() if hasattr(value, "tolist") else value)
        if n is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries but the batch has {n} rows")
        if not seq:
            raise ValueError(f"{name} is empty")
        return seq
    if n is None:
        raise ValueError(f"{name} is a scalar; pass at least one per-row list to fix the batch size")
    return [value] * n


def batch_size_of(**values: object) -> int:
    sizes = {k: len(v) for k, v in values.items() if isinstance(v, (list, tuple, np.ndarray, torch.Tensor))}
    if not sizes:
        return 1
    distinct = set(sizes.values())
    if len(distinct) > 1:
        raise ValueError(f"per-row arguments have different lengths: {sizes}")
    n = distinct.pop()
    if n == 0:
        raise ValueError(f"per-row arguments are empty: {sizes}")
    return n


def retry_seed(seed: int) -> int:
    """Deterministic fresh seed for the one regeneration of a corrupted row (an LCG step)."""
    return (seed * 6364136223846793005 + 1442695040888963407) % (2 ** 63)


@dataclass
class Rows:
    """Validated per-row settings: prompts, class ids, criteria, scales, seeds."""

    prompts: list[str]
    class_ids: torch.Tensor      # (B,) int64
    criteria: list[CriterionSpec]  # names or callables
    fg_scales: torch.Tensor      # (B,) float32
    seeds: list[int]
    extra: dict = field(default_factory=dict)

    def subset(self, idx: Sequence[int]) -> "Rows":
        return Rows([self.prompts[i] for i in idx], self.class_ids[list(idx)], [self.criteria[i] for i in idx],
                    self.fg_scales[list(idx)], [self.seeds[i] for i in idx])


def make_rows(prompt: object, class_ids: object, criterion: object, fg_scale: object, seeds: object,
              n_classes: int | None) -> Rows:
    """Broadcast and validate the per-row arguments (see pipeline ``__call__``)."""
    n = batch_size_of(prompt=prompt if not isinstance(prompt, str) else "x", class_ids=class_ids,
                      criterion=criterion if not isinstance(criterion, str) else "x", fg_scale=fg_scale, seeds=seeds) \
        if any(isinstance(v, (list, tuple, np.ndarray, torch.Tensor)) for v in
               (prompt, class_ids, criterion, fg_scale, seeds)) else 1
    prompts = broadcast_rows("prompt", prompt, n)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt[{i}] must be a string, got {type(p).__name__}")
    cls = broadcast_rows("class_ids", class_ids, n)
    for i, c in enumerate(cls):
        if isinstance(c, bool) or not isinstance(c, numbers.Integral):
            raise TypeError(f"class_ids[{i}] must be an integer, got {type(c).__name__} {c!r}")
        if c < 0 or (n_classes is not None and c >= n_classes):
            raise ValueError(f"class_ids[{i}]={c} is outside the classifier's range [0, {n_classes})")
    crit = broadcast_rows("criterion", criterion, n)
    scales = [real_scalar(s, f"fg_scale[{i}]", allow_inf=False) for i, s in enumerate(broadcast_rows("fg_scale", fg_scale, n))]
    sd = broadcast_rows("seeds", seeds, n)
    for i, s in enumerate(sd):
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0:
            raise TypeError(f"seeds[{i}] must be a non-negative integer, got {s!r}")
    return Rows(prompts, torch.tensor([int(c) for c in cls], dtype=torch.long), crit,
                torch.tensor(scales, dtype=torch.float32), [int(s) for s in sd])


def is_corrupted(images01: torch.Tensor, criterion: torch.Tensor | None) -> torch.Tensor:
    """(B,) bool: NaN/inf pixels, an all-black image, or a NaN final criterion (spec §2 post-loop)."""
    flat = images01.flatten(1)
    bad = ~torch.isfinite(flat).all(dim=1) | (torch.nan_to_num(flat, nan=0.0).amax(dim=1) <= 0)
    if criterion is not None:
        bad |= ~torch.isfinite(criterion)
    return bad
