"""Inflationary-flow noise schedules: g, gamma(t), gamma_dot(t), s(t), s_dot(t), the PCA basis.

specs/inflationary_flows.md §1.2 ("What the code actually integrates") is the default:

- ``g``: PRP (k = d) g = 0; PRR ``g_type="orig"`` g_i = 1 (i < k), -k/(d-k) (i >= k);
  PRR ``g_type="constant_inflation_gap"`` g_i = 1 (i < k), -inflation_gap (i >= k);
  everything times ``g_rescaling``.
- noise (per eigen-dimension): gamma_i(t) = gamma0 exp(rho (1 + g_i) t),
  gamma_dot_i = rho (1 + g_i) gamma_i (isotropic for PRP);
- scale (one global scalar): s(t) = A0 / sqrt(xi* + gamma*(t)), gamma* = gamma at g* = max g,
  s_dot = -1/2 A0 rho (1 + g*) gamma* (xi* + gamma*)^(-3/2).

``form="paper"`` (PRP only) gives the theory's per-axis schedule of §1.1 instead:
C_jj(t) = xi_j (e^{rho t} - 1) and s_j(t) = A0 / sqrt(xi_j e^{rho t}) (gamma(0) = 0, so the
flow is singular exactly at t = 0; start at t > 0). PRR has no paper form with non-negative
noise (its compressed dimensions would need negative noise), so it raises.

All time-dependent methods take a scalar or a 1-D array of times ``t`` [n] and return
arrays [n, d] (float64); ``s`` and ``s_dot`` are broadcast to [n, d] so code-form and
paper-form schedules share one interface.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
from numpy.typing import ArrayLike

from .._validation import float_array, positive_int, real_scalar
from ._sizes import check_alloc

G_TYPES = ("orig", "constant_inflation_gap")
FORMS = ("code", "paper")


def pca_eigenbasis(x: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA of data ``x`` [n, d] (§1.3): eigenvectors ``W`` [d, d] as columns, eigenvalues
    ``xi`` [d] (covariance with ddof=1, descending) and the mean [d], all float64.

    Signs are fixed so each column's largest-magnitude entry is positive (deterministic).
    """
    # C order first: np.cov/mean on a Fortran or transposed view sum in another order and
    # change the last bits, so every layout gives exactly the contiguous answer (issue 17)
    arr = np.ascontiguousarray(float_array(x, "x", ndim=2), dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("x contains inf; every sample must be finite for a covariance")
    if arr.shape[0] < 2:
        raise ValueError(f"x needs at least 2 samples for a covariance, got {arr.shape[0]}")
    mean = arr.mean(axis=0)
    cov = np.cov(arr, rowvar=False, ddof=1).reshape(arr.shape[1], arr.shape[1])
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    idx = np.argmax(np.abs(vecs), axis=0)
    signs = np.sign(vecs[idx, np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return vecs * signs, vals, mean


def g_vector(data_dim: int, dims_to_keep: int, *, g_type: str = "orig", inflation_gap: float = 1.0,
             g_rescaling: float = 1.0) -> np.ndarray:
    """The per-eigendimension rate vector g [d] (§1.2 "g vector"), float64."""
    d = check_alloc(positive_int(data_dim, "data_dim"), "data_dim")
    k = positive_int(dims_to_keep, "dims_to_keep")
    if k > d:
        raise ValueError(f"dims_to_keep = {k} exceeds data_dim = {d}; keep at most data_dim dimensions")
    if g_type not in G_TYPES:
        raise ValueError(f"unknown g_type {g_type!r}: expected one of {G_TYPES}")
    gap = real_scalar(inflation_gap, "inflation_gap", allow_inf=False)
    if gap <= 0:
        raise ValueError(f"inflation_gap must be > 0, got {gap}")
    resc = real_scalar(g_rescaling, "g_rescaling", allow_inf=False)
    g = np.zeros(d)
    if k < d:
        g[:k] = 1.0
        g[k:] = -k / (d - k) if g_type == "orig" else -gap
    return g * resc


@dataclass(frozen=True)
class InflationSchedule:
    """PR-preserving (``dims_to_keep == data_dim``) or PR-reducing inflation schedule.

    Parameters (keyword-only, JSON-serialisable via :meth:`to_dict`)
    ----------
    data_dim, dims_to_keep : d and k (1 <= k <= d).
    xi : PCA eigenvalues [d], descending (from :func:`pca_eigenbasis`).
    rho (>0), gamma0 (>0), end_vars (A0 > 0, enters as a std), g_type, inflation_gap,
    g_rescaling : §1.2. form : "code" (default) or "paper" (§1.1, PRP only).
    """

    data_dim: int
    dims_to_keep: int
    xi: tuple[float, ...]
    rho: float = 1.0
    gamma0: float = 5e-4
    end_vars: float = 1.0
    g_type: str = "orig"
    inflation_gap: float = 1.0
    g_rescaling: float = 1.0
    form: str = "code"
    g: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        g = g_vector(self.data_dim, self.dims_to_keep, g_type=self.g_type,
                     inflation_gap=self.inflation_gap, g_rescaling=self.g_rescaling)
        xi = float_array(np.asarray(self.xi, dtype=np.float64), "xi", ndim=1)
        if xi.shape[0] != self.data_dim:
            raise ValueError(f"xi has {xi.shape[0]} eigenvalues but data_dim = {self.data_dim}")
        if (xi < 0).any() or not np.isfinite(xi).all():
            raise ValueError("xi (PCA eigenvalues) must be finite and >= 0")
        for name in ("rho", "gamma0", "end_vars"):
            v = real_scalar(getattr(self, name), name, allow_inf=False)
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if self.form not in FORMS:
            raise ValueError(f"unknown form {self.form!r}: expected one of {FORMS}")
        if self.form == "paper" and self.dims_to_keep != self.data_dim:
            raise ValueError("form='paper' exists only for PR-preserving schedules (dims_to_keep == data_dim): "
                             "the paper's PRR rates would need negative noise in the compressed dimensions")
        object.__setattr__(self, "xi", tuple(float(v) for v in xi))
        object.__setattr__(self, "g", g)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_data(cls, x: ArrayLike, dims_to_keep: int | None = None,
                  **kwargs: float | str) -> tuple["InflationSchedule", np.ndarray]:
        """Fit the PCA basis on ``x`` [n, d]; returns (schedule, W [d, d]). ``kwargs``: the other
        fields (rho, gamma0, end_vars, g_type, inflation_gap, g_rescaling, form)."""
        W, xi, _ = pca_eigenbasis(x)
        d = W.shape[0]
        return cls(data_dim=d, dims_to_keep=d if dims_to_keep is None else dims_to_keep, xi=tuple(xi), **kwargs), W

    def to_dict(self) -> dict[str, object]:
        """The fields as JSON values (``xi`` a list; without the derived ``g``)."""
        out = asdict(self)
        out.pop("g", None)
        out["xi"] = list(self.xi)
        return out

    @classmethod
    def from_dict(cls, params: Mapping[str, object]) -> "InflationSchedule":
        """The schedule of :meth:`to_dict`'s output (ValueError naming unknown keys)."""
        known = {f for f in cls.__dataclass_fields__ if f != "g"}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"unknown schedule keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**{**params, "xi": tuple(params["xi"])})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    # ----------------------------------------------------------------- properties
    @property
    def is_prp(self) -> bool:
        return self.dims_to_keep == self.data_dim

    @property
    def name(self) -> str:
        """``PRP`` or ``PRRto{k}D`` (the upstream file-name tag)."""
        return "PRP" if self.is_prp else f"PRRto{self.dims_to_keep}D"

    @property
    def xi_star(self) -> float:
        return float(max(self.xi))

    @property
    def g_star(self) -> float:
        return float(self.g.max())

    @property
    def inflation_gap_value(self) -> float:
        """IG = g* - min g (0 for PRP)."""
        return float(self.g.max() - self.g.min())

    # ----------------------------------------------------------------- time functions
    @staticmethod
    def _times(t: ArrayLike) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if arr.ndim != 1:
            raise ValueError(f"t must be a scalar or 1-D, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("t must be finite")
        return arr

    def gamma(self, t: ArrayLike) -> np.ndarray:
        """Noise variances gamma(t) [n, d] in eigen-space."""
        t = self._times(t)[:, None]
        if self.form == "paper":
            return np.asarray(self.xi)[None, :] * np.expm1(self.rho * t)
        return self.gamma0 * np.exp(self.rho * (1.0 + self.g)[None, :] * t)

    def gamma_dot(self, t: ArrayLike) -> np.ndarray:
        """d gamma / dt [n, d]."""
        t = self._times(t)[:, None]
        if self.form == "paper":
            return np.asarray(self.xi)[None, :] * self.rho * np.exp(self.rho * t)
        return self.rho * (1.0 + self.g)[None, :] * self.gamma(t[:, 0])

    def half_rate(self, t: ArrayLike) -> np.ndarray:
        """a(t) = gamma_dot / (2 gamma) [n, d] (constant 1/2 rho (1+g) in code form)."""
        t = self._times(t)
        if self.form == "paper":
            e = np.exp(self.rho * t)[:, None]
            return np.broadcast_to(0.5 * self.rho * e / np.expm1(self.rho * t)[:, None], (t.size, self.data_dim)).copy()
        return np.broadcast_to(0.5 * self.rho * (1.0 + self.g), (t.size, self.data_dim)).copy()

    def s(self, t: ArrayLike) -> np.ndarray:
        """Scale s(t) [n, d] (one global scalar per time in code form)."""
        t = self._times(t)
        if self.form == "paper":
            return self.end_vars / np.sqrt(np.asarray(self.xi)[None, :] * np.exp(self.rho * t)[:, None])
        gs = self.gamma0 * np.exp(self.rho * (1.0 + self.g_star) * t)
        return np.repeat((self.end_vars / np.sqrt(self.xi_star + gs))[:, None], self.data_dim, axis=1)

    def s_dot(self, t: ArrayLike) -> np.ndarray:
        """d s / dt [n, d]."""
        t = self._times(t)
        if self.form == "paper":
            return -0.5 * self.rho * self.s(t)
        gs = self.gamma0 * np.exp(self.rho * (1.0 + self.g_star) * t)
        sd = -0.5 * self.end_vars * self.rho * (1.0 + self.g_star) * gs * (self.xi_star + gs) ** -1.5
        return np.repeat(sd[:, None], self.data_dim, axis=1)

    def tables(self, times: ArrayLike) -> dict[str, np.ndarray]:
        """Per-time tables [n, d] for the fused integrators: s, r = s_dot/s, a, gamma."""
        s = self.s(times)
        return {"s": s, "r": self.s_dot(times) / s, "a": self.half_rate(times), "gamma": self.gamma(times)}

    def latent_std(self, eps: float = 1.0) -> np.ndarray:
        """Std of the generation latent z(T) [d]: 1 for kept dims, sqrt(eps) for compressed (§5.1)."""
        e = real_scalar(eps, "eps", allow_inf=False)
        if e <= 0:
            raise ValueError(f"eps must be > 0, got {e}")
        std = np.ones(self.data_dim)
        std[self.dims_to_keep:] = math.sqrt(e)
        return std * self.end_vars

    def melt_latent_var(self, t_end: float) -> np.ndarray:
        """Per-dimension variance [d] of the melt's latent z(T) = s(T) u(T) for data whose ES
        coordinates have variances xi: s(T)^2 (xi_i + gamma_i(T)) (spec §9 "validation targets").

        Kept dimensions give ~A0^2; PRR compressed dimensions give a tiny value (e.g. ~2e-9 on
        the digits with k = 13), which is the latent variance generation must start from.
        """
        T = real_scalar(t_end, "t_end", allow_inf=False)
        return (self.s(T)[0] ** 2) * (np.asarray(self.xi) + self.gamma(T)[0])

    def generation_latent_std(self, eps: float | None, t_end: float) -> np.ndarray:
        """Std [d] of the generation latent z(T) (§5.1 gen), validated against the melt.

        ``eps=None`` (the default everywhere since issue 13): kept dims A0, PRR compressed dims the
        melt-matched std sqrt(s(T)^2 (xi_i + gamma_i(T))) (:meth:`melt_latent_var`). A float
        ``eps`` gives upstream's diag([A0^2]*k + [A0^2 eps]*(d-k)); for PRR a RuntimeWarning is
        raised when A0^2 eps exceeds 100x the largest melt-matched compressed variance, because
        generation then explodes: upstream's default eps = 1 starts the compressed dims ~1e4 std
        away from where the flow puts data (measured std 838 on a toy), and nothing shrinks them
        back. PRP always uses A0 I.
        """
        if self.is_prp:
            return self.latent_std(1.0)
        if eps is None:
            std = np.full(self.data_dim, float(self.end_vars))
            std[self.dims_to_keep:] = np.sqrt(self.melt_latent_var(t_end)[self.dims_to_keep:])
            return std
        std = self.latent_std(eps)
        matched = float(self.melt_latent_var(t_end)[self.dims_to_keep:].max())
        if std[-1] ** 2 > 100.0 * matched:
            warnings.warn(
                f"PRR generation with eps = {eps:g}: the compressed latent dims get variance {std[-1] ** 2:.3g} but the melt "
                f"puts data at <= {matched:.3g} there (s(T)^2 (xi + gamma(T)), T = {float(t_end):g}); the generated samples "
                f"will blow up by ~{math.sqrt(std[-1] ** 2 / matched):.3g}x in those directions. Pass eps=None for the "
                "melt-matched latent (or eps close to that value).", RuntimeWarning, stacklevel=3)
        return std

    def check_reaches_gaussian(self, t_max: float, *, ratio: float = 100.0) -> bool:
        """Warn (RuntimeWarning) unless gamma*(T) >= ratio * xi* (§2.3 caveat); returns the test result.

        With rho = 1, T = 7.01 and PRP, gamma(T) = 5e-4 e^7.01 ~ 0.55: unit-variance data is then
        NOT Gaussianised; raise rho or T so that gamma0 exp(rho (1+g*) T) >> xi*.
        """
        g_end = float(self.gamma(t_max).max())
        ok = g_end >= ratio * self.xi_star
        if not ok:
            warnings.warn(
                f"gamma*(T={t_max:g}) = {g_end:.3g} is not >> xi* = {self.xi_star:.3g} (ratio {g_end / max(self.xi_star, 1e-300):.3g} "
                f"< {ratio:g}): the latent will not be Gaussian. With rho = 1 and T = 7.01 a PRP schedule only reaches "
                "gamma ~ 0.55 (spec §2.3 caveat); increase rho or the end time (steps * h).",
                RuntimeWarning, stacklevel=2)
        return ok
