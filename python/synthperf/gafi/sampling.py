"""Expansion Trick, Dynamic Sample Filtering, Dynamic Dataset Recycle, MultiGAN sampling (spec sections 4, 6).

Notation: K classes, ``class_samples`` = n per class, tau = DSF threshold, sigma = ET std.

- **ET**: z ~ N(0, sigma^2 I); ``sigma=(lo, hi)`` draws a per-sample sigma ~ U(lo, hi).
- **DSF** (:func:`generate_filtered`): keep x iff argmax p(x) = c and p_c(x) > tau (strict).
  All classes still missing samples are handled in one attempt: their z and labels are
  concatenated, the generator and the classifier run in ``batch_size`` chunks, and
  acceptance / per-class truncation are tensor ops (no per-sample Python loop). Attempt
  sizes follow upstream: ``missing`` while nothing is kept for the class, else
  ``2 * missing``. With ``max_attempts > 0``, a class still short after its last attempt is
  completed with the first ``missing`` samples of that attempt's batch *unfiltered*
  (upstream appends the whole batch unfiltered, then truncates; same result).
  ``max_attempts=-1`` is unlimited, as upstream, but bounded against hangs (issue 17): a
  class that accepts nothing in ``stall_attempts`` consecutive attempts raises
  :class:`DSFStallError`, so the loop always terminates (every other attempt lowers the
  class's missing count by >= 1), and non-finite classifier logits raise ValueError at once.
- **DDR** (:class:`SyntheticSource`): a classifier data source that regenerates the set
  every ``regen_every`` epochs (never after the last), replacing a fraction ``r``.
- **MultiGAN**: a :class:`SyntheticSource` with N samplers; each contributes
  ``class_samples // N`` samples of every class.

The generator is any callable ``(z (N, latent_dim), y (N,) int64) -> images`` with
attributes ``latent_dim`` and ``num_classes``; the classifier any callable ``images -> logits
(N, K)`` (log-probabilities are valid logits).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from .._validation import positive_int
from .data import ImageData

__all__ = ["check_tau", "check_sigma", "sample_latent", "DSFStats", "DSFStallError", "generate_filtered",
           "SamplerSpec", "SyntheticSource"]


class DSFStallError(RuntimeError):
    """DSF with unlimited attempts made no progress on some class for ``stall_attempts`` attempts."""


def check_tau(tau: Any) -> float:
    """tau must be a real in [0, 1)."""
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a real number in [0, 1), got {type(tau).__name__} {tau!r}")
    t = float(tau)
    if not (0.0 <= t < 1.0):
        raise ValueError(f"tau (DSF threshold) must lie in [0, 1), got {t}")
    return t


def check_sigma(sigma: Any) -> float | tuple[float, float]:
    """sigma must be a real > 0, or a pair (lo, hi) with 0 < lo <= hi."""
    if isinstance(sigma, (tuple, list)):
        if len(sigma) != 2:
            raise ValueError(f"sigma as a range must be (lo, hi), got {sigma!r}")
        lo, hi = (float(check_sigma(s)) for s in sigma)  # type: ignore[arg-type]
        if lo > hi:
            raise ValueError(f"sigma range must have lo <= hi, got {sigma!r}")
        return (lo, hi)
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a real number > 0, got {type(sigma).__name__} {sigma!r}")
    s = float(sigma)
    if not (s > 0.0 and math.isfinite(s)):
        raise ValueError(f"sigma (Expansion Trick std) must be a finite number > 0, got {s}")
    return s


#: Largest n * latent_dim that :func:`sample_latent` draws at once (16 GiB of float32).
MAX_LATENT_ELEMENTS = 2 ** 32


def _check_counts(class_counts: Any, k: int) -> torch.Tensor:
    """class_counts (an int, or k ints, each in [0, MAX_LATENT_ELEMENTS]) -> int64 (k,)."""
    items = [class_counts] if isinstance(class_counts, numbers.Integral) else class_counts
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple, np.ndarray, torch.Tensor)):
        raise TypeError(f"class_counts must be an int or a sequence of {k} ints, got "
                        f"{type(class_counts).__name__} {class_counts!r}")
    vals = list(items.tolist() if isinstance(items, (np.ndarray, torch.Tensor)) else items)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in vals):
        raise TypeError(f"class_counts must hold ints, got {class_counts!r}")
    scalar = isinstance(class_counts, numbers.Integral)
    if (not scalar and len(vals) != k) or any(not 0 <= int(v) <= MAX_LATENT_ELEMENTS for v in vals):
        raise ValueError(f"class_counts must be an int >= 0 or {k} ints >= 0 (each at most "
                         f"{MAX_LATENT_ELEMENTS}), got {class_counts!r}")
    return torch.tensor([int(vals[0])] * k if scalar else [int(v) for v in vals], dtype=torch.int64)


def sample_latent(n: int, latent_dim: int, sigma: float | tuple[float, float],
                  gen: torch.Generator | None = None) -> torch.Tensor:
    """z (n, latent_dim) float32 ~ N(0, sigma^2 I) (Expansion Trick), on CPU.

    n : int >= 0, latent_dim : int >= 1 with n * latent_dim <= :data:`MAX_LATENT_ELEMENTS`
    (ValueError/TypeError naming the argument, never a failed allocation).
    """
    sigma = check_sigma(sigma)
    n = positive_int(n, "n", minimum=0)
    latent_dim = positive_int(latent_dim, "latent_dim", minimum=1)
    if n * latent_dim > MAX_LATENT_ELEMENTS:
        raise ValueError(f"n * latent_dim = {n} * {latent_dim} exceeds {MAX_LATENT_ELEMENTS} latent values "
                         f"({4 * MAX_LATENT_ELEMENTS / 2 ** 30:.0f} GiB of float32); draw in smaller batches")
    z = torch.randn(n, latent_dim, generator=gen)
    if isinstance(sigma, tuple):
        s = torch.rand(n, 1, generator=gen) * (sigma[1] - sigma[0]) + sigma[0]
        return z * s
    return z * sigma


@dataclass
class DSFStats:
    """Per-class counters (int64 tensors of shape (K,)) and per-attempt logs."""

    attempts: torch.Tensor
    generated: torch.Tensor
    accepted: torch.Tensor  # passed the filter (unfiltered cap fills excluded)
    capped: torch.Tensor  # bool (K,): classes completed with unfiltered samples
    attempt_sizes: list[torch.Tensor] = field(default_factory=list)
    attempt_accepted: list[torch.Tensor] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        g = int(self.generated.sum())
        return float(self.accepted.sum()) / g if g else float("nan")


def _num_classes_of(obj: Any, what: str) -> int | None:
    k = getattr(obj, "num_classes", None)
    return int(k) if k is not None else None


@torch.no_grad()
def _run_batched(fn: Callable, *args: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    n = args[0].shape[0]
    outs = [fn(*(a[i:i + batch_size].to(device) for a in args)) for i in range(0, n, batch_size)]
    return torch.cat(outs).cpu() if outs else torch.zeros(0)


def generate_filtered(generator: Callable, classifier: Callable | None, class_counts: int | Sequence[int], *,
                      tau: float = 0.0, sigma: float | tuple[float, float] = 1.0, filter: bool = True,
                      max_attempts: int = -1, batch_size: int = 512, gen: torch.Generator | None = None,
                      seed: int | None = None, device: str | torch.device = "cpu", stall_attempts: int = 50
                      ) -> tuple[torch.Tensor, torch.Tensor, DSFStats]:
    """Generate ``class_counts`` samples per class, with DSF when ``filter`` (spec section 4).

    Returns ``x`` (sum(counts), C, H, W) float32 on CPU sorted by class (attempt order kept
    within a class), ``y`` (sum(counts),) int64 and :class:`DSFStats`. Pass either ``gen``
    (a CPU ``torch.Generator``) or ``seed``. Raises ValueError for tau outside [0, 1),
    sigma <= 0, max_attempts == 0 or < -1, stall_attempts < 1, a generator/classifier
    class-count mismatch, or non-finite classifier logits (NaN/inf). With ``max_attempts=-1``
    a class that accepts no sample in ``stall_attempts`` consecutive attempts raises
    :class:`DSFStallError` (use ``max_attempts > 0`` for upstream's unfiltered fallback).
    """
    tau, sigma = check_tau(tau), check_sigma(sigma)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts == 0 or max_attempts < -1:
        raise ValueError(f"max_attempts must be -1 (unlimited) or a positive int, got {max_attempts!r}")
    if isinstance(stall_attempts, bool) or not isinstance(stall_attempts, int) or stall_attempts < 1:
        raise ValueError(f"stall_attempts must be a positive int, got {stall_attempts!r}")
    k = _num_classes_of(generator, "generator")
    latent_dim = getattr(generator, "latent_dim", None)
    if k is None or latent_dim is None:
        raise TypeError("generator must expose num_classes and latent_dim attributes")
    kc = _num_classes_of(classifier, "classifier") if classifier is not None else None
    if kc is not None and kc != k:
        raise ValueError(f"class-count mismatch: generator has {k} classes, classifier has {kc}")
    if filter and classifier is None:
        raise ValueError("filter=True needs a classifier")
    batch_size = positive_int(batch_size, "batch_size")
    counts = _check_counts(class_counts, k)
    if gen is None:
        gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if isinstance(generator, torch.nn.Module):
        generator.eval()
    if isinstance(classifier, torch.nn.Module):
        classifier.eval()
    device = torch.device(device)
    have = torch.zeros(k, dtype=torch.int64)
    attempts = torch.zeros(k, dtype=torch.int64)
    generated = torch.zeros(k, dtype=torch.int64)
    capped = torch.zeros(k, dtype=torch.bool)
    stalled = torch.zeros(k, dtype=torch.int64)  # consecutive attempts without an accepted sample
    stats = DSFStats(attempts, generated, torch.zeros(k, dtype=torch.int64), capped)
    xs, ys = [], []
    classes = torch.arange(k)
    while bool((have < counts).any()):
        missing = counts - have
        active = missing > 0
        sizes = torch.where(active, missing * torch.where(have > 0, 2, 1), 0) if filter else missing
        y = torch.repeat_interleave(classes, sizes)
        z = sample_latent(int(y.numel()), int(latent_dim), sigma, gen)
        x = _run_batched(generator, z, y, batch_size=batch_size, device=device).float()
        attempts += active.long()
        generated += sizes
        stats.attempt_sizes.append(sizes.clone())
        if not filter:
            xs.append(x), ys.append(y)
            have += sizes
            stats.accepted += sizes
            stats.attempt_accepted.append(sizes.clone())
            break
        logits = _run_batched(classifier, x, batch_size=batch_size, device=device).float()
        if logits.ndim != 2 or logits.shape[1] != k:
            raise ValueError(f"class-count mismatch: classifier returned logits of shape {tuple(logits.shape)} "
                             f"for a {k}-class generator")
        if not bool(torch.isfinite(logits).all()):
            raise ValueError(f"classifier returned non-finite logits (NaN/inf) for {int((~torch.isfinite(logits)).any(1).sum())}"
                             f" of {logits.shape[0]} samples; DSF cannot filter them")
        probs = torch.softmax(logits.double(), dim=1)
        top = probs.argmax(1)
        p_target = probs.gather(1, y[:, None]).squeeze(1)
        ok = (top == y) & (p_target > tau)
        ya = y[ok]
        # rank of each accepted sample within its class (y is sorted by class)
        cnt = torch.bincount(ya, minlength=k)
        rank = torch.arange(ya.numel()) - (torch.cumsum(cnt, 0) - cnt)[ya]
        keep = rank < missing[ya]
        xs.append(x[ok][keep]), ys.append(ya[keep])
        took = torch.bincount(ya[keep], minlength=k)
        have += took
        stats.accepted += took
        stats.attempt_accepted.append(took)
        stalled = torch.where(active & (took == 0), stalled + 1, torch.zeros_like(stalled))
        if max_attempts < 0 and bool((stalled >= stall_attempts).any()):
            bad = torch.nonzero(stalled >= stall_attempts).flatten().tolist()
            raise DSFStallError(
                f"DSF stalled: classes {bad} accepted no sample in {stall_attempts} consecutive attempts "
                f"(tau={tau}, have {have[bad].tolist()} of {counts[bad].tolist()}); the classifier never agrees "
                f"with the generator's labels. Pass max_attempts > 0 to fill with unfiltered samples.")
        if max_attempts > 0:
            cap = active & (have < counts) & (attempts >= max_attempts)
            if bool(cap.any()):
                # fill with the first `missing` samples of this attempt's batch, unfiltered
                sel = cap[y]
                yc = y[sel]
                cc = torch.bincount(yc, minlength=k)
                rank_c = torch.arange(yc.numel()) - (torch.cumsum(cc, 0) - cc)[yc]
                fill = rank_c < (counts - have)[yc]
                xs.append(x[sel][fill]), ys.append(yc[fill])
                have += torch.bincount(yc[fill], minlength=k)
                capped |= cap
    x_all = torch.cat(xs) if xs else torch.zeros(0)
    y_all = torch.cat(ys) if ys else torch.zeros(0, dtype=torch.int64)
    order = torch.sort(y_all, stable=True).indices
    return x_all[order], y_all[order], stats


@dataclass
class SamplerSpec:
    """One generator with its post-processing knobs (a GaFi run or a MultiGAN member)."""

    generator: Callable
    sigma: float | tuple[float, float] = 1.0
    tau: float = 0.0
    filter: bool = True

    def __post_init__(self) -> None:
        self.sigma = check_sigma(self.sigma)
        self.tau = check_tau(self.tau)


class SyntheticSource:
    """Synthetic classifier data with Dynamic Dataset Recycle (spec sections 4, 6).

    ``samplers``: N :class:`SamplerSpec`; each contributes ``class_samples // N`` per class.
    The initial set uses ``seed``; before epoch e > 1 with ``(e - 1) % regen_every == 0`` a
    fraction ``replace_fraction`` of every class is regenerated (new seed drawn from a
    seeded generator), the rest is a random subset of the old set. Regeneration therefore
    never happens after the final epoch. ``regen_every=None`` disables DDR.
    """

    def __init__(self, samplers: Sequence[SamplerSpec], classifier: Callable | None, class_samples: int, *,
                 regen_every: int | None = 10, replace_fraction: float = 1.0, max_attempts: int = -1,
                 seed: int = 42, batch_size: int = 512, device: str | torch.device = "cpu") -> None:
        if not samplers:
            raise ValueError("samplers must hold at least one SamplerSpec")
        if class_samples < len(samplers):
            raise ValueError(f"class_samples={class_samples} must be >= the number of generators {len(samplers)}")
        if regen_every is not None and regen_every < 1:
            raise ValueError(f"regen_every must be >= 1 or None, got {regen_every}")
        if not (0.0 < replace_fraction <= 1.0):
            raise ValueError(f"replace_fraction must lie in (0, 1], got {replace_fraction}")
        ks = {int(s.generator.num_classes) for s in samplers}
        if len(ks) != 1:
            raise ValueError(f"all generators must have the same number of classes, got {sorted(ks)}")
        self.num_classes = ks.pop()
        kc = getattr(classifier, "num_classes", None)
        if kc is not None and int(kc) != self.num_classes:
            raise ValueError(f"class-count mismatch: generators have {self.num_classes} classes, classifier has {kc}")
        self.samplers, self.classifier = list(samplers), classifier
        self.per_gen = class_samples // len(self.samplers)
        self.regen_every, self.replace_fraction, self.max_attempts = regen_every, replace_fraction, max_attempts
        self.seed, self.batch_size, self.device = seed, batch_size, device
        self.seed_gen = torch.Generator().manual_seed(seed)
        self.data: ImageData | None = None
        self.data_epoch = 0
        self.last_stats: list[DSFStats] = []

    def _generate(self, per_gen: int, seed: int) -> ImageData:
        xs, ys, self.last_stats = [], [], []
        for i, s in enumerate(self.samplers):
            x, y, st = generate_filtered(s.generator, self.classifier if s.filter else None, per_gen, tau=s.tau,
                                         sigma=s.sigma, filter=s.filter, max_attempts=self.max_attempts,
                                         batch_size=self.batch_size, seed=seed * 1000 + i, device=self.device)
            xs.append(x), ys.append(y), self.last_stats.append(st)
        return ImageData(torch.cat(xs), torch.cat(ys))

    def dataset(self, epoch: int) -> ImageData:
        if self.data is None:
            self.data, self.data_epoch = self._generate(self.per_gen, self.seed), 1
        elif (self.regen_every is not None and epoch > 1 and (epoch - 1) % self.regen_every == 0
              and self.data_epoch < epoch):
            new_seed = int(torch.randint(1, 10001, (1,), generator=self.seed_gen))
            n_new = int(round(self.replace_fraction * self.per_gen))
            fresh = self._generate(n_new, new_seed)
            total = self.per_gen * len(self.samplers)
            n_keep = total - n_new * len(self.samplers)
            if n_keep > 0:  # keep a random subset of the old set, per class
                old = self.data
                keys = torch.rand(len(old), generator=self.seed_gen) + old.y.double() * 2
                order = torch.argsort(keys)
                cnt = torch.bincount(old.y, minlength=self.num_classes)
                rank = torch.arange(len(old)) - (torch.cumsum(cnt, 0) - cnt)[old.y[order]]
                kept = order[rank < n_keep]
                fresh = ImageData(torch.cat([old.x[kept], fresh.x]), torch.cat([old.y[kept], fresh.y]))
            self.data, self.data_epoch = fresh, epoch
        return self.data

    def state_dict(self) -> dict[str, torch.Tensor]:
        if self.data is None:
            return {}
        return {"x": self.data.x, "y": self.data.y, "seed_gen": self.seed_gen.get_state(),
                "data_epoch": torch.tensor([self.data_epoch])}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if not state:
            return
        self.data = ImageData(state["x"], state["y"])
        self.seed_gen.set_state(state["seed_gen"])
        self.data_epoch = int(state["data_epoch"][0])
