"""KNN distance scores: ``EuclideanScore``, ``CosineScore``, ``MahalanobisScore`` (spec §1.5).

score(x) = stat over the distances d_1..d_k from x to its k nearest reference embeddings, with
stat one of

- ``max`` / ``min`` / ``median`` (lower median for even k, as torch) of the d_j;
- ``mean``: the arithmetic mean (1/k) Σ_j d_j, as both seapig versions compute it;
- ``rms``: the root mean square sqrt((1/k) Σ_j d_j²) (beyond seapig). This is what produced the
  numbers printed in seapig's README (3.9220 for the first example, whose arithmetic mean is
  3.9044); rms >= mean always, with equality iff the k distances are equal.

| score        | space the index is built on         | distance d                                |
|--------------|-------------------------------------|-------------------------------------------|
| Euclidean    | raw embeddings                      | ``||x - r||_2``                           |
| Cosine       | L2-normalised embeddings (eps 1e-12)| ``1 - cos(x, r) = 0.5 ||x/|x| - r/|r| ||²``, in [0, 2] |
| Mahalanobis  | whitened ``x Wᵀ`` (see MahalanobisScore) | ``||W (x - r)||_2``                  |

Σ is the unbiased (N-1) covariance of the reference (one global covariance, as seapig).
Reference self-scores (no calibration set) use exact leave-one-out neighbours
(:mod:`synthperf.selective.knn`). KNN scores are float32 as in seapig (spec §10), reduced from
neighbour distances that float64 embeddings keep in float64 end to end (issue 17: the
neighbours at scale 1e-30 or offset 1e8 are exact; only the final score is rounded). ``save_index`` files carry a data fingerprint (``<file>.json``);
a file built from other data is rebuilt with a warning instead of reused.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from ..backend import backend_option
from .._validation import positive_int, real_scalar
from ._common import SelectiveInputError, logger, quantile_threshold
from ._types import DeviceLike, Projection
from .base import EmbeddingScore
from .knn import KNNIndex
from .knn_exact import data_fingerprint

STATS = ("max", "mean", "median", "min", "rms")


def reduce_stat(d: torch.Tensor, stat: str) -> torch.Tensor:
    """Reduce neighbour distances (N, k) to (N,): max / arithmetic mean / median (lower) / min /
    root mean square sqrt(mean(d²)). Same dtype as ``d``."""
    if stat == "max":
        return d.amax(dim=1)
    if stat == "mean":
        return d.mean(dim=1)
    if stat == "rms":
        return d.square().mean(dim=1).sqrt()
    if stat == "median":
        return d.median(dim=1).values
    if stat == "min":
        return d.amin(dim=1)
    raise ValueError(f"stat must be one of {STATS}, got {stat!r}")


class KNNScore(EmbeddingScore):
    """Base of the KNN distance scores.

    Parameters
    ----------
    k : neighbours (>= 1). stat : one of ``max``/``mean``/``median``/``min``/``rms`` (module notes).
    pca : optional ``TensorPCA`` (or any object with fit/transform) applied before indexing.
    save_index : False, True (writes ``{ident}_index.bin`` in the working directory) or a
        ``.bin`` path; an existing file is loaded instead of rebuilding (with a warning).
    index_factory : faiss factory string for an approximate index (default exact flat).
    chunk_size, device, backend, engine : passed to :class:`~synthperf.selective.knn.KNNIndex`
        (``engine="auto"``: faiss's flat screen for CPU data when faiss is installed, else the
        torch engine; ``"torch"``/``"faiss"`` force one; always exact, re-ranked in float64).
    """

    ident = "knn"

    def __init__(self, k: int = 1, stat: str = "max", pca: Projection | None = None, save_index: bool | str | Path = False, *,
                 index_factory: str | None = None, chunk_size: int = 16384, device: DeviceLike = None,
                 backend: str | None = None, engine: str = "auto") -> None:
        super().__init__(pca=pca)
        self.k = positive_int(k, "k")
        if not isinstance(stat, str) or stat not in STATS:
            raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
        self.stat = stat
        self.index_factory = index_factory
        self.chunk_size = positive_int(chunk_size, "chunk_size")
        self.engine = engine
        self.device = device
        self.backend = backend_option(backend)  # None: the process setting (synthperf.backend) at fit time
        self.ident = f"{type(self).ident}-k{self.k}-{'full' if pca is None else 'pca'}"
        if save_index is True:
            self.index_path: Path | None = Path(f"{self.ident}_index.bin")
        elif save_index is False or save_index is None:
            self.index_path = None
        elif isinstance(save_index, (str, Path)):
            self.index_path = Path(save_index)
            if self.index_path.suffix != ".bin":
                raise SelectiveInputError(f"save_index path must end with '.bin', got {str(self.index_path)!r}")
        else:
            raise TypeError(f"save_index must be a bool or a path ending in .bin, got {type(save_index).__name__}")
        self.index: KNNIndex | None = None

    # -- per-metric hooks ----------------------------------------------------------------------
    _index_metric = "l2"

    def _fit_space(self, ref: torch.Tensor) -> None:
        """Learn any transform of the embedding space from the reference (Mahalanobis)."""

    def _to_space(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.dtype == torch.float64 else x.float()  # float64 is never cast down (issue 17)

    def _to_distance(self, sq: torch.Tensor) -> torch.Tensor:
        return sq.sqrt()

    # -- internals -----------------------------------------------------------------------------
    def _new_index(self) -> KNNIndex:
        return KNNIndex(metric=self._index_metric, index_factory=self.index_factory, chunk_size=self.chunk_size,
                        device=self.device, backend=self.backend, engine=self.engine)

    def _squared(self, X: torch.Tensor, *, exclude_self: bool = False, index: KNNIndex | None = None):
        """(squared distances (N, k), indices (N, k)) of (PCA-projected) X in the index space."""
        index = self.index if index is None else index
        return index.search(self._to_space(X), self.k, exclude_self=exclude_self, check_finite=self._rescan(X))

    def _rescan(self, X: torch.Tensor) -> bool:
        """Whether the transformed input needs a NaN/inf scan: fit()/score() validated X already,
        so only a transform that may overflow (float64 -> float32 cast, whitening) needs one."""
        return X.dtype != torch.float32 or type(self)._to_space is not KNNScore._to_space

    def _distance(self, X: torch.Tensor, *, exclude_self: bool = False):
        """(distances (N, k), indices (N, k)) of (PCA-projected) X."""
        sq, idx = self._squared(X, exclude_self=exclude_self)
        return self._to_distance(sq), idx

    def _reduce(self, sq: torch.Tensor) -> torch.Tensor:
        """Score from squared neighbour distances (N, k): stat(g(sq)) (module notes)."""
        if self.stat == "rms" and type(self)._to_distance is KNNScore._to_distance:
            out = sq.mean(dim=1).sqrt()  # d = sqrt(sq): rms = sqrt(mean(sq)) without the round trip
        else:
            out = reduce_stat(self._to_distance(sq), self.stat)
        return out.float()  # seapig's score dtype (spec §10); computed from exact float64 distances

    def knn_search(self, query: torch.Tensor, offset: int = 0):
        """seapig's ``knn_search``: neighbours of ``query`` (input space). ``offset=1`` means the
        query *is* the reference and each row's own entry is excluded (leave-one-out)."""
        if self.index is None:
            raise RuntimeError("call fit(...) before knn_search()")
        x = self._check_query(query)
        if self.pca is not None:
            x = self.pca.transform(x)
        return self._distance(x, exclude_self=bool(offset))

    def _stat(self, d: torch.Tensor) -> torch.Tensor:
        return reduce_stat(d, self.stat)

    def _fit_impl(self, q: float | None) -> None:
        if self.pca is not None:
            self._fit_pca()
        ref = self.ref_embeddings
        self._fit_space(ref)
        if q is not None:  # trim the reference to its leave-one-out inliers
            tmp = self._new_index().build(self._to_space(ref), check_finite=self._rescan(ref))
            s = self._reduce(self._squared(ref, exclude_self=True, index=tmp)[0])
            keep = s < quantile_threshold(s, q)
            if int(keep.sum()) < 2:
                raise ValueError(f"q={q} trims the reference to {int(keep.sum())} point(s); use a larger q")
            logger.info("q-trim kept %d of %d reference rows", int(keep.sum()), ref.shape[0])
            ref = ref[keep.to(ref.device)]
            self.ref_embeddings = ref
            self._fit_space(ref)
        self.index = self._new_index()
        space = self._to_space(ref)
        if self.index_path is not None and self.index_path.is_file() and self._reuse_index(space):
            pass
        else:
            self.index.build(space, check_finite=self._rescan(ref))
            if self.index_path is not None:
                self.index.save(self.index_path)
        self.set_trained()
        if self.cal_embeddings is not None:
            self.scores = self._reduce(self._squared(self.cal_embeddings)[0])
            self.set_calibrated()
        else:
            self.scores = self._reduce(self._squared(ref, exclude_self=True)[0])

    def _reuse_index(self, space: torch.Tensor) -> bool:
        """Load ``index_path`` when its metadata fingerprint equals the data's (issue 17): True
        when loaded; False (with a warning) when it is stale, corrupt or of unknown data."""
        fp = data_fingerprint(space)
        try:
            loaded = self._new_index().load(self.index_path)
        except ValueError as exc:
            warnings.warn(f"Index file {self.index_path} cannot be used ({exc}); rebuilding it.", UserWarning,
                          stacklevel=4)
            return False
        if loaded.fingerprint_ != fp:
            why = "has no fingerprint metadata" if loaded.fingerprint_ is None else "was built from other data"
            warnings.warn(f"Index file {self.index_path} {why} (fingerprint mismatch); rebuilding it from the "
                          "current reference embeddings.", UserWarning, stacklevel=4)
            return False
        warnings.warn(f"Index file {self.index_path} already exists. Loading existing index from disk.",
                      UserWarning, stacklevel=4)
        if space.dtype == torch.float64 or self.index_factory is None:
            # the file stores float32; the exact engines rebuild from the identical data (cheap)
            # so float64 data keep their precision
            self.index.build(space, check_finite=False)
            self.index.fingerprint_ = fp
        else:
            self.index = loaded
        return True

    def _score_embeddings(self, X: torch.Tensor) -> torch.Tensor:
        if self.pca is not None:
            X = self.pca.transform(X)
        return self._reduce(self._squared(X)[0]).to(X.device)


class EuclideanScore(KNNScore):
    """k-NN Euclidean distance score (see module table)."""

    ident = "euclidean"


class CosineScore(KNNScore):
    """k-NN cosine distance ``1 - cos`` in [0, 2] (see module table)."""

    ident = "cosine"

    def _to_space(self, x: torch.Tensor) -> torch.Tensor:
        out = F.normalize(x.double(), p=2.0, dim=1, eps=1e-12)
        return out if x.dtype == torch.float64 else out.float()

    def _to_distance(self, sq: torch.Tensor) -> torch.Tensor:
        return 0.5 * sq


class MahalanobisScore(KNNScore):
    """k-NN Mahalanobis distance with a global covariance (seapig version B's regularisation).

    Σ_r = Σ + ridge·mean(diag Σ)·I (``ridge`` default 1e-8, as seapig B). When Σ_r has full
    rank - every eigenvalue above ``tol = D·eps_float32·λ_max`` - the index space is x Wᵀ with
    W = L⁻¹, L Lᵀ = Σ_r, so d = sqrt((x-r)ᵀ Σ_r⁻¹ (x-r)). Otherwise (fewer rows than dimensions,
    collinear features) a UserWarning is issued and ``singular`` decides:

    - ``"pinv"`` (default, seapig B's fallback): W = Σ_r⁺, the pseudo-inverse with eigenvalues
      below ``tol`` cut, so d = ||Σ_r⁺ (x - r)||₂ = sqrt((x-r)ᵀ Σ_r⁺² (x-r)). Same numbers as
      seapig (which falls back when its float32 Cholesky fails); note this squares the inverse,
      so it is not scale-invariant.
    - ``"pinv_sqrt"``: W = Λ⁺^{1/2} Vᵀ on the eigenvalues above ``tol``, the Mahalanobis
      distance sqrt((x-r)ᵀ Σ_r⁺ (x-r)) restricted to the support of Σ.
    - ``"raise"``: ValueError.

    A plain 1e-6 ridge instead (earlier releases) gave distances in the thousands along the
    null directions. Fewer than two reference rows or zero total variance raise ValueError.
    Fitted buffer ``whiten`` = W (D, D) (float64) and attribute ``rank_deficient_`` (bool).
    """

    ident = "mahalanobis"
    SINGULAR = ("pinv", "pinv_sqrt", "raise")

    def __init__(self, k: int = 1, stat: str = "max", pca: Projection | None = None, save_index: bool | str | Path = False, *,
                 ridge: float = 1e-8, singular: str = "pinv", **kwargs: object) -> None:
        super().__init__(k, stat, pca, save_index, **kwargs)
        self.ridge = real_scalar(ridge, "ridge", allow_inf=False)
        if self.ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {self.ridge}")
        if not isinstance(singular, str) or singular not in self.SINGULAR:
            raise ValueError(f"singular must be one of {self.SINGULAR}, got {singular!r}")
        self.singular = singular
        self.rank_deficient_: bool | None = None
        self.register_buffer("whiten", None)

    def _fit_space(self, ref: torch.Tensor) -> None:
        x = ref.detach().double()
        n, d = x.shape
        if n < 2:
            raise ValueError(f"MahalanobisScore needs at least 2 reference rows to estimate a covariance, got {n}")
        cov = torch.cov(x.T).reshape(d, d)
        scale = float(torch.diagonal(cov).mean())
        if not scale > 0.0:
            raise ValueError("MahalanobisScore: the reference embeddings have zero variance (all rows identical); "
                             "the covariance is degenerate")
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        cov = cov + self.ridge * scale * eye
        evals, evecs = torch.linalg.eigh(cov)
        tol = float(evals[-1]) * d * torch.finfo(torch.float32).eps
        keep = evals > tol
        self.rank_deficient_ = not bool(keep.all())
        if not self.rank_deficient_:
            L, info = torch.linalg.cholesky_ex(cov)
            if int(info) == 0:
                self.whiten = torch.linalg.solve_triangular(L, eye, upper=False)  # W = L⁻¹
                return
            self.rank_deficient_ = True
        rank = int(keep.sum())
        if self.singular == "raise":
            raise ValueError(f"MahalanobisScore: the covariance (ridge={self.ridge}) has rank {rank} < {d} (fewer "
                             "rows than dimensions or collinear features); use singular='pinv', a larger ridge or PCA")
        warnings.warn(f"MahalanobisScore: the covariance has rank {rank} < {d}. Cholesky decomposition failed. "
                      f"Falling back to the pseudo-inverse (singular={self.singular!r}).", UserWarning, stacklevel=4)
        V, lam = evecs[:, keep], evals[keep]
        if self.singular == "pinv":
            self.whiten = (V / lam) @ V.T  # Σ⁺ (symmetric), seapig B's W
        else:
            self.whiten = (V / lam.sqrt()).T  # (rank, D): Λ^{-1/2} Vᵀ

    def _to_space(self, x: torch.Tensor) -> torch.Tensor:
        W = self.whiten.to(x.device)
        out = x.double() @ W.T
        return out if x.dtype == torch.float64 else out.float()
