"""Ensemble / MC-dropout logit scores: ``MutualInformationScore``, ``PredictiveVarianceScore``
(seapig version B, spec §1.9 "Ensemble scores").

Logits carry a trailing member axis m = 1..M (M >= 2; ``per_member`` is always True):
(N, K, M) for ``task="multiclass"``, ``"multilabel"`` and binary two-logit, (N, M) or (N, 1, M)
for binary single-logit. z = logits / T. Lower score = the members agree = accept.

Two families, as seapig B:

- categorical (multiclass, binary two-logit): p_m = softmax_K(z_m) (N, K);
  MI = H(p̄) - (1/M) Σ_m H(p_m) with p̄ = (1/M) Σ_m p_m and H(p) = -Σ_K p log p;
  PV = Σ_K Var_m(p_m) (population variance, divisor M).
- Bernoulli (binary single-logit, multilabel): p_m = sigmoid(z_m) per unit (N, K);
  MI_K = H_b(p̄_K) - (1/M) Σ_m H_b(p_{m,K}), score = max_K MI_K; PV = max_K Var_m(p_{m,K}).

Probabilities are clamped to [1e-12, 1 - 1e-12] inside the entropies; everything is computed in
float64 and returned in the logits' dtype. ``convention`` defaults to ``"B"`` (these scores come
from seapig 0.3.0): T is fitted only with ``fit(..., temp_scale=True)``. +inf logits use the softmax limit of
:mod:`synthperf.selective.logits`. MI is the BALD / epistemic part of the predictive entropy
(Houlsby et al. 2011; Depeweg et al. 2018).
"""
from __future__ import annotations

import torch

from .logits import LogitScore, _softmax


def _shannon_entropy(p: torch.Tensor, dim: int) -> torch.Tensor:
    p = p.clamp(1e-12, 1 - 1e-12)
    return -(p * p.log()).sum(dim=dim)


def _bernoulli_entropy64(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * torch.log1p(-p))


class _EnsembleScore(LogitScore):
    """Shared member-axis handling; subclasses define ``_categorical(p)`` and ``_bernoulli(p)``
    on probabilities (N, K, M) (float64) returning (N,)."""

    def __init__(self, temperature: float | None = None, task: str = "multiclass", per_member: bool = True, *,
                 convention: str = "B") -> None:
        if per_member is not True:
            raise ValueError(f"{type(self).__name__} scores ensembles: per_member must be True, got {per_member!r}")
        super().__init__(temperature=temperature, task=task, per_member=True, convention=convention)

    def _probabilities(self, logits: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(p (N, K, M) float64, categorical?) from validated per-member logits."""
        z = logits.double() / self.T
        if z.ndim == 2:  # binary single logit per member (N, M)
            z = z[:, None, :]
        if z.shape[-1] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 members on the last axis, got logits of "
                             f"shape {tuple(logits.shape)}")
        categorical = self.task == "multiclass" or (self.task == "binary" and z.shape[1] == 2)
        if self.task == "binary" and z.shape[1] not in (1, 2):
            raise ValueError(f"binary logits must have 1 or 2 logits per member, got shape {tuple(logits.shape)}")
        if categorical:
            p = _softmax(z.permute(0, 2, 1).reshape(-1, z.shape[1]))  # (N·M, K), +inf-safe
            return p.reshape(z.shape[0], z.shape[2], z.shape[1]).permute(0, 2, 1), True
        return torch.sigmoid(z), False

    def _score_logits(self, logits: torch.Tensor) -> torch.Tensor:
        p, categorical = self._probabilities(logits)
        s = self._categorical(p) if categorical else self._bernoulli(p)
        return s.to(logits.dtype)

    def _categorical(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MutualInformationScore(_EnsembleScore):
    """Mutual information between the prediction and the member (BALD); see the module notes."""

    ident = "mutual_information"

    def _categorical(self, p: torch.Tensor) -> torch.Tensor:
        return _shannon_entropy(p.mean(dim=2), dim=1) - _shannon_entropy(p, dim=1).mean(dim=1)

    def _bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        mi = _bernoulli_entropy64(p.mean(dim=2)) - _bernoulli_entropy64(p).mean(dim=2)
        return mi.amax(dim=1)


class PredictiveVarianceScore(_EnsembleScore):
    """Variance of the members' probabilities; see the module notes."""

    ident = "predictive_variance"

    def _categorical(self, p: torch.Tensor) -> torch.Tensor:
        return p.var(dim=2, unbiased=False).sum(dim=1)

    def _bernoulli(self, p: torch.Tensor) -> torch.Tensor:
        return p.var(dim=2, unbiased=False).amax(dim=1)
