"""Logit scores: ``SoftmaxScore``, ``EntropyScore``, ``EnergyScore``, ``MarginScore`` (spec §1.9, version A).

z = logits / T. Lower score = more confident = accept.

| score   | multiclass (N, C) (also binary two-logit) | binary single logit (N,) / (N, 1) | multilabel (N, C)            |
|---------|-------------------------------------------|-----------------------------------|------------------------------|
| Softmax | -max_c softmax(z)_c                        | -sigmoid(|z|) = -max(p, 1-p)      | -min_c max(p_c, 1 - p_c)     |
| Entropy | -Σ p log p, p = softmax(z) clamped ≥1e-12  | Bernoulli entropy of sigmoid(z)   | max_c Bernoulli entropy      |
| Energy  | -T·logsumexp(z)                            | A: -T·softplus(|x|/T); B: -T·softplus(x/T) | -T·Σ_c softplus(z_c) |
| Margin  | -(top1(z) - top2(z))                       | A: -|x| (unscaled); B: -|z|       | A: -min_c |x_c|; B: -min_c |z_c| |

``convention`` is the one switch between seapig's two published conventions (spec §0, §1.9):
``"A"`` (default, seapig git main) as in the A entries above, with T fitted whenever ``fit`` gets
labels; ``"B"`` (PyPI seapig 0.3.0): the B entries, and T is fitted only when
``fit(..., temp_scale=True)`` is asked for. Everything else is shared.

Infinite logits are limits, not errors: a row with +inf logits puts its softmax mass uniformly on
them (one +inf: p = one-hot, Softmax -1, Entropy 0, Energy -inf, Margin -inf), so the most
confident sample is accepted rather than given a NaN score; a tie of two equal infinite top logits
has margin 0. NaN logits raise ValueError. Empty query logits (0 rows) give empty scores.

``per_member=True``: logits carry a trailing member axis ((N, C, M), or (N, M) for binary single
logits); each member is scored and the scores are averaged over members.

Temperature: ``fit(X=logits, Y=labels)`` fits T by minimising the NLL (cross-entropy, or BCE for
single-logit/multilabel) over log T with ``torch.optim.LBFGS`` (strong Wolfe, 200 iterations),
falling back to Adam (lr 0.1, 200 steps) on a RuntimeError; T is clamped to [1e-3, 1e3]. The fit
set's scores act as calibration scores. Version-B aliases: ``fit(ref=/cal=)`` with tensors or
dicts ``{"logit", "label"}``, ``temp_scale=``, ``score/select(query=)``.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ._common import LABEL_KEYS, LOGIT_KEYS, LabelIndexError, as_tensor, pick
from ._model_io import cache_path, load_cache, resolve_protocol, run_model, save_cache
from ._types import LabelsInput, Loader, SelectiveModel, TensorInput
from .base import UncertaintyScore

#: seapig 0.3.0's wording for the same input errors (both versions' messages are kept, spec §1.9)
_B_LOGITS = " (Specify either pre-computed logits or a model with a loader, but not both.)"
TASKS = ("multiclass", "binary", "multilabel")


def _softmax(z: torch.Tensor) -> torch.Tensor:
    """softmax over dim 1, with the limit for rows holding +inf: mass 1/#(+inf) on each +inf entry."""
    pos = torch.isposinf(z)
    if not bool(pos.any()):
        return torch.softmax(z, dim=1)
    rows = pos.any(dim=1, keepdim=True)
    limit = pos.to(z.dtype) / pos.sum(dim=1, keepdim=True).clamp_min(1).to(z.dtype)
    return torch.where(rows, limit, torch.softmax(torch.where(rows, torch.zeros_like(z), z), dim=1))


def _bernoulli_entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy of Bernoulli(p), p clamped to [1e-12, 1 - 1e-12] in float64 (in float32
    1 - 1e-12 rounds to 1 and log1p(-1) = -inf would give NaN for |logit| > ~17); input dtype out."""
    q = p.double().clamp(1e-12, 1 - 1e-12)
    return (-(q * q.log() + (1 - q) * torch.log1p(-q))).to(p.dtype)


class LogitScore(UncertaintyScore):
    """Base of the logit scores; subclasses define ``_formula(logits, T)`` on (N, C) or (N,) logits."""

    ident = "logit"

    CONVENTIONS = ("A", "B")

    def __init__(self, temperature: float | None = None, task: str = "multiclass", per_member: bool = False, *,
                 convention: str = "A") -> None:
        super().__init__()
        if not isinstance(convention, str) or convention not in self.CONVENTIONS:
            raise ValueError(f"convention must be 'A' (seapig git main) or 'B' (seapig 0.3.0 on PyPI), "
                             f"got {convention!r}")
        self.convention = convention
        self.task = task
        self._check_task()
        if temperature is not None and not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.per_member = bool(per_member)
        self.temperature = None if temperature is None else float(temperature)
        self.register_buffer("logits", None, persistent=False)
        self.register_buffer("labels", None, persistent=False)

    @property
    def T(self) -> float:
        return 1.0 if self.temperature is None else self.temperature

    # -- shapes ----------------------------------------------------------------------------------
    def _single_logit(self, x: torch.Tensor) -> bool:
        return self.task == "binary" and (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1))

    def _check_task(self) -> None:
        """``task`` is a public attribute: re-checked at each use (seapig reports it at score time)."""
        if self.task not in TASKS:
            raise ValueError(f"Unknown task: {self.task} (expected one of {TASKS})")

    def _check_logits(self, x: Any, name: str, *, allow_empty: bool = False) -> torch.Tensor:
        self._check_task()
        t = as_tensor(x, name, keys=LOGIT_KEYS)
        if not t.is_floating_point():
            raise TypeError(f"{name} must be floating-point logits, got dtype {t.dtype}")
        if t.ndim == 0:
            raise ValueError(f"{name} must have a sample axis, got a 0-D tensor")
        if t.shape[0] == 0 and not allow_empty:
            raise ValueError(f"{name} must contain at least one sample")
        if t.shape[0] > 0 and t.numel() == 0:
            raise ValueError(f"{name} has no logits per sample (shape {tuple(t.shape)})")
        if torch.isnan(t).any():
            raise ValueError(f"{name} contains NaN")
        want = {False: {"multiclass": (2,), "binary": (1, 2), "multilabel": (2,)},
                True: {"multiclass": (3,), "binary": (2, 3), "multilabel": (3,)}}[self.per_member][self.task]
        if t.ndim not in want:
            raise ValueError(f"{self.task} logits{' with per_member=True' if self.per_member else ''} must have "
                             f"{' or '.join(f'{d}-D' for d in want)} shape, got {tuple(t.shape)}")
        return t

    def _flatten_members(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(N, C, M) -> (N·M, C); binary (N, M) -> (N·M,). Returns (flat, M)."""
        if not self.per_member:
            return x, 1
        if x.ndim == 2:  # binary single logit per member
            return x.reshape(-1), x.shape[1]
        return x.permute(0, 2, 1).reshape(-1, x.shape[1]), x.shape[2]

    # -- scoring ---------------------------------------------------------------------------------
    def _formula(self, x: torch.Tensor, T: float) -> torch.Tensor:
        raise NotImplementedError

    def _score_logits(self, logits: torch.Tensor) -> torch.Tensor:
        flat, M = self._flatten_members(logits)
        if self._single_logit(flat) and flat.ndim == 2:
            flat = flat[:, 0]
        s = self._formula(flat, self.T)
        return s.reshape(-1, M).mean(dim=1) if self.per_member else s

    def score(self, X: TensorInput | None = None, *, query: TensorInput | None = None,
              model: SelectiveModel | None = None, loader: Loader | None = None) -> torch.Tensor:
        """Scores (N,) of query logits (shapes in the module table); N = 0 gives an empty (0,) tensor.

        Model mode (seapig 0.3.0): ``model=`` and ``loader=`` compute the logits with
        ``model.logits(x=)`` or ``model.extract(batch)["logit"]``; both are required together."""
        _, x = pick(("X", X), ("query", query))
        if x is not None and (model is not None or loader is not None):
            raise ValueError("Cannot specify both query logits and model+loader. Pass one or the other." + _B_LOGITS)
        if x is None and (model is not None or loader is not None):
            if model is None or loader is None:
                raise ValueError("model and loader are both required to compute query logits")
            x = self._logits_from_loader(model, loader)[0]
        if x is None:
            raise ValueError("score() needs query logits (positional, X= or query=) or model= and loader=")
        t = self._check_logits(x, "query logits", allow_empty=True)
        if t.shape[0] == 0:
            return torch.empty(0, dtype=t.dtype, device=t.device)
        return self._score_logits(t)

    def select(self, X: TensorInput | None = None, *, query: TensorInput | None = None,
               model: SelectiveModel | None = None, loader: Loader | None = None) -> dict[str, torch.Tensor]:
        """``{"score": (N,), "selected": score < threshold}``; arguments as :meth:`score`."""
        return self._selection(self.score(X, query=query, model=model, loader=loader))

    # -- temperature ------------------------------------------------------------------------------
    def _normalize_labels(self, logits: torch.Tensor, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
        y = as_tensor(labels, "labels", keys=LABEL_KEYS)
        if y.shape[0] != logits.shape[0]:
            raise ValueError(f"logits and labels must have same number of samples ({logits.shape[0]} vs {y.shape[0]})")
        if self.per_member:
            flat, M = self._flatten_members(logits)
            y = y.repeat_interleave(M, dim=0)
            logits = flat
        if self._single_logit(logits):
            return logits.reshape(-1), y.reshape(-1).to(logits.dtype)  # float64 fit: float64 labels
        if self.task == "multilabel":
            if y.shape != logits.shape:
                raise ValueError("multilabel labels must have same shape as logits (N, C)")
            return logits, y.to(logits.dtype)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError("multiclass labels must be 1-D class indices")
        if y.is_floating_point() and not bool(torch.isfinite(y).all() and torch.equal(y, y.round())):
            raise LabelIndexError(f"labels must be class indices in [0, {logits.shape[1] - 1}]; got NaN, infinite "
                                  "or non-integer values")
        y = y.long()
        if (y < 0).any() or (y >= logits.shape[1]).any():
            raise LabelIndexError(f"labels must be class indices in [0, {logits.shape[1] - 1}]")
        return logits, y

    def _temperature_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if z.ndim == 1 or self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(z, y)
        return F.cross_entropy(z, y)

    def _fit_temperature(self, logits: torch.Tensor, labels: Any) -> float:
        if logits.shape[0] == 0:
            raise ValueError("logits must contain at least one sample")
        z, y = self._normalize_labels(logits.detach().double(), labels)
        log_t = torch.tensor(float(torch.log(torch.tensor(self.T))), dtype=torch.float64, requires_grad=True)

        def loss_fn() -> torch.Tensor:
            return self._temperature_loss(z / log_t.exp().clamp(1e-3, 1e3), y)

        try:
            # float64 objective: stop on the gradient, not on a 1e-9 loss change (LBFGS default), which
            # on a flat BCE optimum leaves T ~1e-4 off the minimiser that seapig (float32) reaches
            opt = torch.optim.LBFGS([log_t], max_iter=200, line_search_fn="strong_wolfe",
                                    tolerance_grad=1e-10, tolerance_change=1e-15)

            def closure():
                opt.zero_grad()
                loss = loss_fn()
                loss.backward()
                return loss

            opt.step(closure)
            if not torch.isfinite(log_t):
                raise RuntimeError("LBFGS diverged")
        except RuntimeError:
            with torch.no_grad():
                log_t.fill_(0.0)
            adam = torch.optim.Adam([log_t], lr=0.1)
            for _ in range(200):
                adam.zero_grad()
                loss = loss_fn()
                loss.backward()
                adam.step()
        self.temperature = float(log_t.detach().exp().clamp(1e-3, 1e3))
        return self.temperature

    # -- fitting ---------------------------------------------------------------------------------
    def _logits_from_loader(self, model: Any, loader: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, labels or None) over ``loader``: ``model.logits(x=x)`` (version A) or
        ``model.extract(batch)["logit"]`` (version B, labels from its ``"label"`` or the batch)."""
        zs, ys = run_model(model, loader, "logit", desc="Logits")
        if not zs:
            raise ValueError("No batches found in loader")
        zs = [z.detach().cpu() for z in zs]
        have = all(y is not None for y in ys)
        labels = torch.cat([torch.as_tensor(y).cpu() for y in ys]).clone() if have else None
        return torch.cat(zs).clone(), labels

    def fit(self, X: TensorInput | None = None, Y: LabelsInput | None = None, model: SelectiveModel | None = None,
            loader: Loader | None = None, outdir: str | Path | None = None, prefix: str | None = None, *,
            ref: TensorInput | None = None, cal: LabelsInput | None = None,
            temp_scale: bool | None = None) -> "LogitScore":
        """Store logits ``X`` and optional labels ``Y``; fit T when ``temp_scale`` (default: labels are
        given under ``convention="A"``, never under ``"B"``).

        Version B: ``ref=``/``cal=`` tensors or dicts ``{"logit", "label"}`` (``cal`` wins when both).
        """
        if ref is not None and cal is not None:
            warnings.warn("Both `ref` and `cal` specified for a LogitScore. We are using `cal`.", UserWarning,
                          stacklevel=2)
            ref = None
        _, src = pick(("X", X), ("ref", ref), ("cal", cal))
        labels = Y
        if isinstance(src, dict) and labels is None:
            labels = next((src[k] for k in LABEL_KEYS if k in src), None)
        if src is not None and (model is not None or loader is not None):
            raise ValueError("Cannot specify both precomputed logits and model+loader. Pass one or the other."
                             + _B_LOGITS)
        if src is None:
            if model is None and loader is None:
                raise ValueError("Must specify either logits or model+loader for fitting." + _B_LOGITS)
            if model is None or loader is None:
                raise ValueError("model and loader are both required to compute logits: "
                                 "`model` and `loader` must be given together.")
            resolve_protocol(model, "logit")  # TypeError naming .logits()/.extract() before any work
            path = cache_path(outdir, prefix or "logits", "_train")
            if path is not None and path.is_file():  # seapig git main's `<prefix>_train.pt` {"logits", "labels"}
                warnings.warn(f"Loading pre-existing logits from {path}", UserWarning, stacklevel=2)
                data = load_cache(path)
                if not isinstance(data, dict) or not isinstance(data.get("logits"), torch.Tensor):
                    raise ValueError(f"Saved file {path} does not contain 'logits'")
                src, labels = data["logits"], data.get("labels")
            else:
                src, labels = self._logits_from_loader(model, loader)
                if path is not None:
                    payload = {"logits": src}
                    if labels is not None:
                        payload["labels"] = labels
                    save_cache(path, payload)
        logits = self._check_logits(src, "logits")
        self.logits = logits
        self.labels = None if labels is None else as_tensor(labels, "labels", keys=LABEL_KEYS)
        if temp_scale is None:
            temp_scale = self.labels is not None and self.convention == "A"
        if temp_scale:
            if self.labels is None:
                raise ValueError("labels must be provided to fit temperature")
            self._fit_temperature(logits, self.labels)
        self.scores = self._score_logits(logits)
        self.threshold = None
        self.set_trained()
        self.set_calibrated()
        return self


class SoftmaxScore(LogitScore):
    """Negative maximum softmax probability (see module table)."""

    ident = "softmax"

    def _formula(self, x: torch.Tensor, T: float) -> torch.Tensor:
        z = x / T
        if x.ndim == 1:
            return -torch.sigmoid(z.abs())
        if self.task == "multilabel":
            p = torch.sigmoid(z)
            return -torch.maximum(p, 1 - p).amin(dim=1)
        return -_softmax(z).amax(dim=1)


class EntropyScore(LogitScore):
    """Predictive entropy (see module table)."""

    ident = "entropy"

    def _formula(self, x: torch.Tensor, T: float) -> torch.Tensor:
        z = x / T
        if x.ndim == 1:
            return _bernoulli_entropy(torch.sigmoid(z))
        if self.task == "multilabel":
            return _bernoulli_entropy(torch.sigmoid(z)).amax(dim=1)
        p = _softmax(z).clamp_min(1e-12)
        return -(p * p.log()).sum(dim=1)


class EnergyScore(LogitScore):
    """Free energy -T·logsumexp(x/T) (see module table)."""

    ident = "energy"

    def _formula(self, x: torch.Tensor, T: float) -> torch.Tensor:
        if x.ndim == 1:
            return -T * F.softplus((x.abs() if self.convention == "A" else x) / T)
        if self.task == "multilabel":
            return -T * F.softplus(x / T).sum(dim=1)
        return -T * torch.logsumexp(x / T, dim=1)


class MarginScore(LogitScore):
    """Negative gap between the two largest logits (see module table)."""

    ident = "margin"

    def _formula(self, x: torch.Tensor, T: float) -> torch.Tensor:
        u = x if self.convention == "A" else x / T  # A: single-logit/multilabel margins unscaled
        if x.ndim == 1:
            return -u.abs()
        if self.task == "multilabel":
            return -u.abs().amin(dim=1)
        if x.shape[1] < 2:
            raise ValueError("MarginScore needs at least 2 classes")
        top2 = (x / T).topk(2, dim=1).values
        gap = torch.where(top2[:, 0] == top2[:, 1], torch.zeros_like(top2[:, 0]), top2[:, 0] - top2[:, 1])
        return -gap
