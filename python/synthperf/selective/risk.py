"""Risk-coverage curves, AURC and E-AURC (spec §4).

Given scores s (lower = accept) and per-sample residuals r (losses), sort ascending by s
(stable). Accepting the first i of n samples gives coverage c_i = i/n and

- generalized risk  R_i = (1/n) Σ_{j≤i} r_(j)          (``risk="generalized"``)
- selective risk    R_i / c_i = mean residual of the accepted  (``risk="selective"``)

The *reference* curve is the same with the oracle ordering (sorted by r itself); the excess
curve is empirical - reference. AUCs are trapezoids over coverage, starting at c_1 = 1/n (no
(0, 0) point): ``auc_empirical`` is the AURC, ``auc_excess`` = AURC - optimal AURC is the E-AURC
(Geifman et al., 2019).

Binning, as seapig (both versions): when n > ``n_bins`` the curves are reduced to exactly
``n_bins`` points *before* the areas are taken. Bin edges e_j = j/n_bins (j = 0..n_bins); point i
goes to bin b_i = clamp(searchsorted(e, c_i, right=False) - 1, 0, n_bins - 1), i.e. the bin
(e_b, e_{b+1}] (c_i on an edge falls in the lower bin); each bin keeps the maximum of coverage,
threshold, empirical and reference risk of its points (an empty bin would stay 0; with
n > n_bins none is empty). The AUCs are trapezoids over these binned points, so they depend on
``n_bins``; ``aurc``/``eaurc`` below use the full resolution (n_bins = n).

Precision: every sum, cumulative sum and area is taken in float64. The returned tensors have the
inputs' floating dtype (``torch.promote_types`` of the two, at least float32), as seapig returns
them, so a float32 pipeline gets float32 curves and AUCs (``torch.isclose`` against its own
float32 tensors works); float64 inputs give float64 results. ``aurc``/``eaurc`` return the
float64 areas as Python floats.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .._validation import positive_int

RISKS = ("generalized", "selective")


def _trapz(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if x.numel() < 2:
        return torch.zeros((), dtype=torch.float64)
    return torch.trapezoid(y.double(), x.double())


def _rc_curve(score: torch.Tensor, residuals: torch.Tensor, risk_type: str):
    """(coverage, threshold, risk) with samples accepted in ascending-score order."""
    order = torch.argsort(score, stable=True)
    n = score.shape[0]
    coverage = torch.arange(1, n + 1, dtype=torch.float64) / n
    risk = torch.cumsum(residuals[order].double(), 0) / n
    if risk_type == "selective":
        risk = risk / coverage
    return coverage, score[order].double(), risk


def _downsample(coverage, threshold, emp, ref, n_bins: int):
    bins = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    b = (torch.searchsorted(bins, coverage, right=False) - 1).clamp(0, n_bins - 1)
    out = []
    for v in (coverage, threshold, emp, ref):
        o = torch.zeros(n_bins, dtype=torch.float64)
        o.scatter_reduce_(0, b, v, reduce="amax", include_self=False)
        out.append(o)
    return out


@dataclass
class RiskCoverage:
    """A risk-coverage curve and its areas: 1-D curves of n_points, 0-D AUCs, in the inputs'
    floating dtype (at least float32; computed in float64, see the module notes)."""

    coverage: torch.Tensor
    threshold: torch.Tensor
    risk: torch.Tensor
    reference: torch.Tensor
    excess: torch.Tensor
    risk_type: str
    auc_empirical: torch.Tensor
    auc_reference: torch.Tensor
    auc_excess: torch.Tensor

    @property
    def aurc(self) -> float:
        """Area under the empirical risk-coverage curve."""
        return float(self.auc_empirical)

    @property
    def eaurc(self) -> float:
        """Excess AURC: AURC minus the AURC of the oracle ordering."""
        return float(self.auc_excess)

    def __repr__(self) -> str:
        return (f"RiskCoverage(risk_type={self.risk_type!r}, n_points={self.coverage.numel()}, "
                f"auc_empirical={float(self.auc_empirical):.4f}, auc_reference={float(self.auc_reference):.4f}, "
                f"auc_excess={float(self.auc_excess):.4f})")

    def plot(self, empirical: bool = True, reference: bool = True, excess: bool = True, digits: int = 4):
        """``matplotlib.figure.Figure`` of the selected curves, built with the object API: the
        user's pyplot backend and open figures are left unchanged; save with ``fig.savefig``."""
        if not (empirical or reference or excess):
            raise ValueError("At least one of empirical, reference, or excess must be True")
        try:
            from matplotlib.figure import Figure
        except ImportError as exc:
            raise ImportError("matplotlib is required for plotting: matplotlib is not installed; install it "
                              "(pip install matplotlib)") from exc

        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
        c = self.coverage.numpy()
        if empirical:
            ax.plot(c, self.risk.numpy(), label=f"empirical (AURC {float(self.auc_empirical):.{digits}f})")
        if reference:
            ax.plot(c, self.reference.numpy(), "--", label=f"oracle ({float(self.auc_reference):.{digits}f})")
        if excess:
            ax.plot(c, self.excess.numpy(), ":", label=f"excess (E-AURC {float(self.auc_excess):.{digits}f})")
        ax.set_xlabel("coverage")
        ax.set_ylabel(f"{self.risk_type} risk")
        ax.legend()
        return fig


def risk_coverage(score: torch.Tensor, residuals: torch.Tensor, risk: str = "generalized",
                  n_bins: int = 100) -> RiskCoverage:
    """Risk-coverage curve of ``score`` (N,) against ``residuals`` (N,); see the module notes.

    Computed in float64; the returned tensors have the inputs' floating dtype (at least float32)."""
    rc64 = _risk_coverage64(score, residuals, risk, n_bins)
    out = _result_dtype(score, residuals)
    if out == torch.float64:
        return rc64
    return RiskCoverage(**{f.name: (v.to(out) if isinstance(v, torch.Tensor) else v)
                           for f in fields(RiskCoverage) for v in [getattr(rc64, f.name)]})


def _result_dtype(score: torch.Tensor, residuals: torch.Tensor) -> torch.dtype:
    """The inputs' promoted floating dtype, at least float32 (integer/bool inputs give float32)."""
    dt = torch.promote_types(score.dtype, residuals.dtype)
    return torch.float64 if dt == torch.float64 else torch.float32


def _risk_coverage64(score: torch.Tensor, residuals: torch.Tensor, risk: str, n_bins: int) -> RiskCoverage:
    """:func:`risk_coverage` with every tensor in float64 (validation included)."""
    if not isinstance(score, torch.Tensor) or not isinstance(residuals, torch.Tensor):
        raise TypeError("score and residuals must be torch tensors")
    if risk not in RISKS:
        raise ValueError(f"risk must be 'generalized' or 'selective', got '{risk}'")
    n_bins = positive_int(n_bins, "n_bins")
    score, residuals = score.detach().reshape(-1).cpu(), residuals.detach().reshape(-1).cpu()
    if score.shape[0] != residuals.shape[0]:
        raise ValueError(f"score and residuals must have the same length, got {score.shape[0]} and {residuals.shape[0]}")
    if score.numel() == 0:
        raise ValueError("score and residuals are empty")
    if torch.isnan(score).any() or torch.isnan(residuals).any():
        raise ValueError("score and residuals must not contain NaN")
    cov, thr, emp = _rc_curve(score, residuals, risk)
    _, _, ref = _rc_curve(residuals, residuals, risk)
    if cov.numel() > n_bins:
        cov, thr, emp, ref = _downsample(cov, thr, emp, ref, n_bins)
    auc_emp, auc_ref = _trapz(emp, cov), _trapz(ref, cov)  # after binning, as seapig
    return RiskCoverage(coverage=cov, threshold=thr, risk=emp, reference=ref, excess=emp - ref, risk_type=risk,
                        auc_empirical=auc_emp, auc_reference=auc_ref, auc_excess=auc_emp - auc_ref)


def aurc(score: torch.Tensor, residuals: torch.Tensor, risk: str = "generalized") -> float:
    """Area under the risk-coverage curve (full resolution)."""
    return float(_risk_coverage64(score, residuals, risk, n_bins=max(1, _numel(score))).auc_empirical)


def eaurc(score: torch.Tensor, residuals: torch.Tensor, risk: str = "generalized") -> float:
    """Excess AURC: AURC(score) - AURC(oracle ordering by the residuals)."""
    return float(_risk_coverage64(score, residuals, risk, n_bins=max(1, _numel(score))).auc_excess)


def _numel(score: torch.Tensor) -> int:
    if not isinstance(score, torch.Tensor):
        raise TypeError("score and residuals must be torch tensors")
    return score.numel()
