"""``TensorPCA`` (linear or random-Fourier-feature kernel PCA, with partial_fit) and ``PCAScore``
(spec §1.6-1.7; PCA reconstruction-error score, arXiv 2402.02949).

TensorPCA notation:
- RFF map (mode ``"rff"``, needs ``gamma`` and ``M``): φ(x) = sqrt(2/M)·cos(x Wᵀ + u),
  W ~ sqrt(2γ)·N(0, 1)^{M×D}, u ~ 2π·U(0, 1)^M (approximates the RBF kernel exp(-γ||x-y||²)),
  drawn (W first) in the dtype of the first fitted input, from ``generator`` or the global RNG,
  so a float32 fit after ``torch.manual_seed(s)`` draws seapig's features.
- Accumulators over all partial_fit batches (float64): Σx, Σxxᵀ, n. ``finalize``: μ = Σx/n,
  scatter K = Σxxᵀ - n μμᵀ, U S Vᵀ = svd(K), explained fraction s_acc = cumsum(S)/ΣS;
  q = int n_components (clipped to [1, len S]) or the first index with s_acc >= n_components, + 1.
- transform(x) = (φ(x) - μ) U_q; inverse_transform(z) = z U_qᵀ (centred space);
  reconstruction error = ||(φ(x) - μ) - (φ(x) - μ) U_q U_qᵀ||₂ per row (float64).
"""
from __future__ import annotations

import math
import numbers

import torch

from ._common import check_embeddings, logger, quantile_threshold
from ._types import ArrayOrTensor
from .base import EmbeddingScore

_BUFFERS = ("mu", "u", "s", "s_acc", "u_q", "u_q_dot", "_rff_w", "_rff_u", "_sum_X", "_sum_outer")


class TensorPCA(torch.nn.Module):
    """PCA on torch tensors, linear or kernel (RFF), fitted in one go or incrementally.

    n_components : int > 0 (number of components) or float in (0, 1] (explained fraction).
    gamma, M : RBF bandwidth and number of random features (mode "rff" when either is given;
        the map is applied only when both are). mode : None, "linear" or "rff".
    mean_center : subtract the mean before projecting (default True).
    generator : optional torch.Generator for the random features (else the global RNG).
    Fitted: buffers ``mu`` (F,), ``u`` (F, F), ``s`` (F,), ``s_acc``, ``u_q`` (F, q), attribute ``q``.
    """

    def __init__(self, n_components: int | float = 0.90, gamma: float | None = None, M: int | None = None,
                 mode: str | None = None, *, mean_center: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if isinstance(n_components, bool) or not isinstance(n_components, numbers.Real):
            raise TypeError("n_components must be an int>0 or a float in (0,1]")
        if isinstance(n_components, numbers.Integral):
            if n_components <= 0:
                raise ValueError("n_components must be a positive integer if provided")
            n_components = int(n_components)
        else:
            if not (0.0 < float(n_components) <= 1.0):
                raise ValueError("n_components as float must be in the interval (0, 1]")
            n_components = float(n_components)
        if mode not in (None, "linear", "rff"):
            raise ValueError("mode must be either 'linear' or 'rff'")
        if not isinstance(mean_center, bool):
            raise TypeError("mean_center must be a boolean.")
        if gamma is not None and not (isinstance(gamma, numbers.Real) and gamma > 0):
            raise ValueError(f"gamma must be a positive number, got {gamma!r}")
        if M is not None and (isinstance(M, bool) or not isinstance(M, numbers.Integral) or M <= 0):
            raise ValueError(f"M must be a positive integer, got {M!r}")
        self.n_components = n_components
        self.gamma = None if gamma is None else float(gamma)
        self.M = None if M is None else int(M)
        self.mode = mode if mode is not None else ("rff" if (gamma is not None or M is not None) else "linear")
        self.mean_center = mean_center
        self.generator = generator
        for name in _BUFFERS:
            self.register_buffer(name, None)
        self._n_samples = 0
        self.q: int | None = None

    # -- random features -------------------------------------------------------------------------
    def _use_rff(self) -> bool:
        return self.mode == "rff" and self.gamma is not None and self.M is not None

    def _init_rff(self, D: int, dtype: torch.dtype, device: torch.device) -> None:
        if self.M <= D:
            raise ValueError(f"RFF dimension M must be greater than input dim D (M={self.M}, D={D})")
        gen = self.generator
        gdev = gen.device if gen is not None else device
        # drawn in the input dtype (float32 embeddings: float32 features, as seapig), W then u
        w = torch.randn(self.M, D, generator=gen, dtype=dtype, device=gdev) * math.sqrt(2.0 * self.gamma)
        u = torch.rand(self.M, generator=gen, dtype=dtype, device=gdev) * (2.0 * math.pi)
        self._rff_w, self._rff_u = w.to(device), u.to(device)

    def _features(self, X: torch.Tensor) -> torch.Tensor:
        """φ(X) (float64 (N, F)); the RFF map runs in the random features' dtype (the dtype of the
        first ``partial_fit`` input), its output is accumulated in float64."""
        if not self._use_rff():
            return X.double()
        if self._rff_w is None:
            self._init_rff(X.shape[1], X.dtype, X.device)
        w, u = self._rff_w.to(X.device), self._rff_u.to(X.device)
        if X.shape[1] != w.shape[1]:
            raise ValueError(f"X has dimension {X.shape[1]} but the random features were drawn for {w.shape[1]}")
        X = X.to(w.dtype)
        return (math.sqrt(2.0 / self.M) * torch.cos(X @ w.T + u)).double()

    # -- fitting ---------------------------------------------------------------------------------
    def reset_partial(self) -> None:
        """Clear the accumulators (random features are kept)."""
        self._sum_X = self._sum_outer = None
        self._n_samples = 0

    def partial_fit(self, X: ArrayOrTensor) -> "TensorPCA":
        """Accumulate a batch X (N, D); call ``finalize()`` after the last batch."""
        X = check_embeddings(X, "X")
        phi = self._features(X)
        if self._sum_X is not None and phi.shape[1] != self._sum_X.shape[0]:
            raise ValueError(f"X has dimension {X.shape[1]} but earlier partial_fit batches had another dimension")
        sx, so = phi.sum(0), phi.T @ phi
        if self._sum_X is None:
            self._sum_X, self._sum_outer = sx, so
        else:
            self._sum_X, self._sum_outer = self._sum_X + sx.to(self._sum_X.device), self._sum_outer + so.to(self._sum_X.device)
        self._n_samples += int(X.shape[0])
        return self

    def finalize(self) -> "TensorPCA":
        """Eigen-decompose the accumulated scatter and choose the number of components."""
        if self._n_samples == 0 or self._sum_X is None:
            raise RuntimeError("No data provided to partial_fit/finalize")
        n = self._n_samples
        mu = self._sum_X / n
        K = self._sum_outer - n * torch.outer(mu, mu) if self.mean_center else self._sum_outer
        U, S, _ = torch.linalg.svd(K)
        self.mu = mu if self.mean_center else torch.zeros_like(mu)
        self.u, self.s = U, S
        self.s_acc = torch.cumsum(S, 0) / (S.sum() + 1e-20)
        if isinstance(self.n_components, int):
            q = min(max(self.n_components, 1), S.shape[0])
        else:
            hits = torch.nonzero(self.s_acc >= self.n_components - 1e-12)
            q = int(hits[0]) + 1 if hits.numel() else S.shape[0]
        self.q = q
        self.u_q = U[:, :q].contiguous()
        self.u_q_dot = self.u_q @ self.u_q.T
        logger.info("TensorPCA kept %d of %d components (%.4f of the variance)", q, S.shape[0], float(self.s_acc[q - 1]))
        return self

    def fit(self, X: ArrayOrTensor) -> "TensorPCA":
        """``reset_partial(); partial_fit(X); finalize()``."""
        self.reset_partial()
        return self.partial_fit(X).finalize()

    def fit_transform(self, X: ArrayOrTensor) -> torch.Tensor:
        return self.fit(X).transform(X)

    # -- projecting ------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.u_q is None:
            raise RuntimeError("TensorPCA is not fitted: call fit(X) or partial_fit(...)+finalize() first")

    def _preprocess(self, X: ArrayOrTensor) -> torch.Tensor:
        self._check_fitted()
        X = check_embeddings(X, "X")
        phi = self._features(X)
        if phi.shape[1] != self.mu.shape[0]:
            raise ValueError(f"X has {phi.shape[1]} features but the PCA was fitted on {self.mu.shape[0]}")
        return phi - self.mu.to(phi.device)

    def transform(self, X: ArrayOrTensor) -> torch.Tensor:
        """Projections (N, q), float64."""
        xp = self._preprocess(X)
        return xp @ self.u_q.to(xp.device)

    def inverse_transform(self, Z: torch.Tensor) -> torch.Tensor:
        """Back-projection (N, F) in the centred feature space."""
        self._check_fitted()
        return Z.double() @ self.u_q.to(Z.device).T

    def reconstruct(self, X: ArrayOrTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (N, F), error ||x_p - x_rec||₂ (N,)) in the centred feature space."""
        xp = self._preprocess(X)
        rec = (xp @ self.u_q.to(xp.device)) @ self.u_q.to(xp.device).T
        return rec, torch.linalg.vector_norm(xp - rec, dim=1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        for name in _BUFFERS:
            key = prefix + name
            if key in state_dict:
                setattr(self, name, state_dict[key].clone())
        if (prefix + "u_q") in state_dict:
            self.q = int(state_dict[prefix + "u_q"].shape[1])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)


class PCAScore(EmbeddingScore):
    """Reconstruction-error score: distance of φ(x) - μ to its projection on the top-q components.

    ``pca`` is required positionally; ``PCAScore(None)`` uses RFF-PCA
    ``TensorPCA(n_components=0.50, gamma=3.0, M=4096)`` as seapig. Scores are float64.
    """

    ident = "pca"
    train_required = True

    def __init__(self, pca: TensorPCA | None) -> None:
        super().__init__(pca=pca if pca is not None else TensorPCA(n_components=0.50, gamma=3.0, M=4096))

    def _fit_impl(self, q: float | None) -> None:
        ref = self.ref_embeddings
        if q is not None:
            self.pca.fit(ref)
            err = self.pca.reconstruct(ref)[1]
            keep = err < quantile_threshold(err, q).to(err.device, err.dtype)
            ref = ref[keep.to(ref.device)]
            self.ref_embeddings = ref
        self.pca.fit(ref)
        self.set_trained()
        if self.cal_embeddings is not None:
            self.scores = self.pca.reconstruct(self.cal_embeddings)[1]
            self.set_calibrated()
        else:
            self.scores = self.pca.reconstruct(ref)[1]

    def _score_embeddings(self, X: torch.Tensor) -> torch.Tensor:
        return self.pca.reconstruct(X)[1].to(X.device)
