"""Feedback criteria C(logits, y, features) -> (B,) maximised by guidance (spec §3).

Every criterion is a callable ``fn(logits, y, features) -> C`` with

- ``logits``   : (B, K) float tensor, the classifier output on the decoded estimate;
- ``y``        : (B,) int64 target classes;
- ``features`` : (B, D) penultimate features, or None when the classifier exposes none;
- ``C``        : (B,) float tensor, one value per sample (samples never couple, spec §9).

Built-ins (p = softmax(logits), K classes):

=============  =====================================================================
``loss``       C = -log p_y (cross-entropy with the one-hot target, ``reduction='none'``)
``entropy``    C = H(p) = -sum_k p_k log p_k (per sample; upstream's ``.mean()`` at B=1)
``hardness``   C = 1/2 (phi - mu_y)^T Sigma^-1 (phi - mu_y): class-conditional Mahalanobis
               distance with one shared covariance fitted on REAL features
               (:class:`HardnessCriterion`, Sehwag et al. 2022 style, spec §3)
=============  =====================================================================

A custom criterion is any callable with the signature above; set ``needs_features = True``
on it (attribute) when it reads ``features``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .._typing import ArrayLike
from .._validation import float_array, int_array

Criterion = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]
CriterionSpec = Union[str, Criterion]


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _compiling() -> bool:
    """True while Dynamo traces: the data-dependent checks below are skipped there (the eager
    call validates; a compiled graph must not break or sync on them)."""
    return bool(torch.compiler.is_compiling())


def check_float_tensor(x: torch.Tensor | ArrayLike, name: str, *, ndim: int | None = None, min_ndim: int = 1,
                       finite: bool = True) -> torch.Tensor:
    """``x`` (torch tensor, numpy array or nested list) as a float tensor, gradients kept.

    numpy input of any layout (Fortran, transposed, negative strides) is copied C-contiguous
    first; float16/bfloat16/integers stay as given (the criteria upcast to >= float32).
    Raises TypeError (non-real dtype) or ValueError (wrong ndim, empty, NaN/inf unless
    ``finite=False``), naming ``name``.
    """
    if not isinstance(x, torch.Tensor):
        x = torch.from_numpy(np.ascontiguousarray(float_array(x, name, allow_empty=True)))
    if x.dtype == torch.bool or x.dtype.is_complex or not (x.dtype.is_floating_point or x.dtype in _INT_DTYPES):
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if (ndim is not None and x.ndim != ndim) or x.ndim < min_ndim:
        want = f"{ndim}-D" if ndim is not None else f"at least {min_ndim}-D"
        raise ValueError(f"{name} must be {want}, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not x.dtype.is_floating_point:
        x = x.to(torch.float32)
    if finite and not _compiling() and not bool(torch.isfinite(x.detach()).all()):
        kind = "NaN" if bool(torch.isnan(x.detach()).any()) else "inf"
        raise ValueError(f"{name} contains {kind}; every value must be finite")
    return x


def check_labels(y: torch.Tensor | ArrayLike, n: int, n_classes: int | None = None, *, name: str = "y",
                 rows_of: str = "logits") -> torch.Tensor:
    """``y`` as a (n,) int64 tensor of class indices in [0, n_classes) (TypeError for float or
    bool labels, ValueError for a wrong shape/length or a class out of range, naming ``name``)."""
    if not isinstance(y, torch.Tensor):
        y = torch.from_numpy(np.ascontiguousarray(int_array(y, name)))
    if y.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must hold integer class indices, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one class per sample), got shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but {rows_of} has {n} rows")
    y = y.long()
    if not _compiling() and n:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (n_classes is not None and hi >= n_classes):
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds class {bad}, outside [0, {n_classes if n_classes is not None else 'K'})"
                             + (f" for {rows_of} with {n_classes} classes" if n_classes is not None else ""))
    return y


_INT_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)


def loss_criterion(logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """C = -log p_y per sample, (B,) float32 (spec §3 ``loss``).

    logits (B, K) float (tensor or numpy), finite; y (B,) integer classes in [0, K).
    ValueError/TypeError naming ``logits`` or ``y`` otherwise.
    """
    lg = check_float_tensor(logits, "logits", ndim=2)
    return _loss(lg, check_labels(y, lg.shape[0], lg.shape[1]), features)


def entropy_criterion(logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """C = H(softmax(logits)) per sample, (B,) float32 (spec §3 ``entropy``); logits (B, K)
    float, finite (``y`` is not read)."""
    return _entropy(check_float_tensor(logits, "logits", ndim=2), y, features)


def _loss(logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    return F.cross_entropy(_f32(logits), y.long(), reduction="none")


def _entropy(logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    logp = torch.log_softmax(_f32(logits), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


# The pipeline path (evaluate_criteria) calls these kernels without the value checks: a NaN
# image (fp16 overflow) must give a NaN criterion for its row only, so that the sample is
# regenerated once and then reported corrupted (spec §2 post-loop, §9 samples never couple).
loss_criterion.unchecked = _loss
entropy_criterion.unchecked = _entropy


class HardnessCriterion(torch.nn.Module):
    """Hardness score: class-conditional Mahalanobis distance on classifier features (spec §3).

    HS(x, y) = 1/2 (phi(x) - mu_y)^T Sigma^-1 (phi(x) - mu_y), where ``mu_y`` is the mean of
    the real features of class y and Sigma is ONE covariance shared by all classes (the
    pooled within-class covariance), shrunk towards ``tr(S)/D * I`` so that tail classes
    with a handful of images and D > n still give a well-conditioned precision matrix.

    Parameters
    ----------
    shrinkage : float in [0, 1] or None
        Weight of the scaled identity. None (default) uses the Ledoit-Wolf estimate.

    Fitted attributes: ``means_`` (K, D) float32, ``precision_`` (D, D) float32,
    ``shrinkage_`` float, ``n_classes_`` int. The module is a valid criterion callable
    (``needs_features = True``) once fitted.
    """

    needs_features = True

    def __init__(self, *, shrinkage: float | None = None) -> None:
        super().__init__()
        if shrinkage is not None and not (0.0 <= float(shrinkage) <= 1.0):
            raise ValueError(f"shrinkage must lie in [0, 1] or be None, got {shrinkage}")
        self.shrinkage = shrinkage
        self.register_buffer("means_", torch.empty(0, 0), persistent=True)
        self.register_buffer("precision_", torch.empty(0, 0), persistent=True)
        self.shrinkage_: float | None = None

    @property
    def n_classes_(self) -> int:
        return int(self.means_.shape[0])

    def _check_fitted(self) -> None:
        if self.means_.numel() == 0:
            raise ValueError("HardnessCriterion is not fitted: call fit(features, labels) on real features first")

    def fit(self, features: torch.Tensor | ArrayLike, labels: torch.Tensor | ArrayLike, *,
            n_classes: int | None = None) -> "HardnessCriterion":
        """Fit class means and the shared shrunk covariance.

        features : (n, D) real features (numpy or torch); labels : (n,) ints in [0, K).
        Every class in [0, K) needs at least one sample (K = n_classes or max(label)+1).
        """
        X = float_array(features, "features", ndim=2).astype(np.float64)
        if not np.isfinite(X).all():
            raise ValueError("features contains inf; every feature must be finite")
        yl = int_array(labels, "labels", ndim=1)
        if X.shape[0] != yl.shape[0]:
            raise ValueError(f"features has {X.shape[0]} rows but labels has {yl.shape[0]}")
        if yl.min() < 0:
            raise ValueError(f"labels must be >= 0, got {int(yl.min())}")
        K = int(yl.max()) + 1 if n_classes is None else int(n_classes)
        if yl.max() >= K:
            raise ValueError(f"labels contain {int(yl.max())} but n_classes={K}")
        counts = np.bincount(yl, minlength=K)
        if (counts == 0).any():
            raise ValueError(f"classes {np.flatnonzero(counts == 0).tolist()[:10]} have no real features; "
                             "every class needs at least one sample to fit its mean")
        D = X.shape[1]
        means = np.zeros((K, D))
        np.add.at(means, yl, X)
        means /= counts[:, None]
        centred = X - means[yl]
        dof = max(X.shape[0] - K, 1)
        S = centred.T @ centred / dof
        if self.shrinkage is None:
            from sklearn.covariance import ledoit_wolf_shrinkage

            lam = float(ledoit_wolf_shrinkage(centred, assume_centered=True)) if X.shape[0] > 1 else 1.0
        else:
            lam = float(self.shrinkage)
        mu = np.trace(S) / D
        if mu <= 0:
            mu = 1.0
        Sigma = (1.0 - lam) * S + lam * mu * np.eye(D)
        precision = np.linalg.pinv(Sigma, hermitian=True)
        self.means_ = torch.as_tensor(means, dtype=torch.float32)
        self.precision_ = torch.as_tensor((precision + precision.T) / 2, dtype=torch.float32)
        self.shrinkage_ = lam
        return self

    def forward(self, logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) hardness scores; ``features`` (B, D) is required."""
        self._check_fitted()
        if features is None:
            raise ValueError("criterion 'hardness' needs classifier features: wrap the classifier in "
                             "FeatureClassifier(backbone, head) or give it forward_with_features()")
        f = check_float_tensor(features, "features", ndim=2)
        return self.unchecked(logits, check_labels(y, f.shape[0], self.n_classes_, rows_of="features"), f)

    def unchecked(self, logits: torch.Tensor, y: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """:meth:`forward` without the value checks (NaN features give NaN rows; see evaluate_criteria)."""
        self._check_fitted()
        if features is None:
            raise ValueError("criterion 'hardness' needs classifier features: wrap the classifier in "
                             "FeatureClassifier(backbone, head) or give it forward_with_features()")
        f = _f32(features)
        d = f - self.means_.to(device=f.device, dtype=f.dtype)[y.long()]
        P = self.precision_.to(device=f.device, dtype=f.dtype)
        return 0.5 * ((d @ P) * d).sum(dim=-1)

    def save(self, path: str | Path) -> None:
        """Write the fitted statistics as a checkpoint (:func:`synthperf._io.save_checkpoint`):
        ``<stem>.safetensors`` (means (K, D), precision (D, D), float32) + ``<stem>.json``
        (shrinkage, SHA-256), each atomically."""
        from .._io import save_checkpoint

        self._check_fitted()
        save_checkpoint(path, {"means": self.means_, "precision": self.precision_},
                        {"kind": "hardness", "shrinkage": self.shrinkage, "shrinkage_": self.shrinkage_})

    @classmethod
    def load(cls, path: str | Path) -> "HardnessCriterion":
        """Statistics written by :meth:`save`; ``ValueError`` (a :class:`~synthperf._io.CheckpointError`
        for a corrupt or incomplete pair) naming the file."""
        from .._io import CheckpointError, checkpoint_paths, load_checkpoint

        st_path = checkpoint_paths(path)[0]
        if not st_path.exists():
            raise ValueError(f"hardness statistics file {str(st_path)!r} does not exist")
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"could not read hardness statistics: {exc}") from None
        if set(tensors) != {"means", "precision"}:
            raise CheckpointError(f"{str(st_path)!r} must hold tensors 'means' and 'precision', got {sorted(tensors)}")
        obj = cls(shrinkage=meta.get("shrinkage"))
        obj.means_, obj.precision_ = tensors["means"], tensors["precision"]
        obj.shrinkage_ = meta.get("shrinkage_")
        return obj


BUILTIN_CRITERIA: dict[str, Criterion] = {"loss": loss_criterion, "entropy": entropy_criterion}
CRITERION_NAMES: tuple[str, ...] = ("loss", "entropy", "hardness")


def needs_features(fn: Criterion) -> bool:
    return bool(getattr(fn, "needs_features", False))


def resolve_criteria(specs: Sequence[CriterionSpec], *, hardness: HardnessCriterion | None = None,
                     custom: Mapping[str, Criterion] | None = None) -> tuple[list[Criterion], torch.Tensor]:
    """Map per-sample criterion specs to (unique callables, (B,) int64 index into them).

    ``specs`` holds names ("loss", "entropy", "hardness", or a key of ``custom``) or callables.
    Unknown names raise ValueError listing the known ones; "hardness" needs a fitted
    ``hardness`` object.
    """
    table: dict[str, Criterion] = dict(BUILTIN_CRITERIA)
    if custom:
        for k, v in custom.items():
            if not callable(v):
                raise TypeError(f"custom criterion {k!r} must be callable, got {type(v).__name__}")
            table[k] = v
    unique: list[Criterion] = []
    index: list[int] = []
    for i, s in enumerate(specs):
        if isinstance(s, str):
            if s == "hardness" and "hardness" not in table:
                if hardness is None:
                    raise ValueError("criterion 'hardness' needs fitted statistics: pass hardness="
                                     "HardnessCriterion().fit(real_features, real_labels)")
                hardness._check_fitted()
                fn = hardness
            elif s in table:
                fn = table[s]
            else:
                raise ValueError(f"unknown criterion {s!r} at position {i}: expected one of "
                                 f"{sorted(set(table) | {'hardness'})} or a callable")
        elif callable(s):
            fn = s
        else:
            raise TypeError(f"criterion at position {i} must be a name or a callable, got {type(s).__name__}")
        for j, u in enumerate(unique):
            if u is fn:
                index.append(j)
                break
        else:
            unique.append(fn)
            index.append(len(unique) - 1)
    return unique, torch.tensor(index, dtype=torch.long)


def evaluate_criteria(fns: Sequence[Criterion], crit_index: torch.Tensor, logits: torch.Tensor,
                      y: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    """Per-sample criterion value (B,) float32: sample b uses ``fns[crit_index[b]]``.

    Every distinct criterion runs on the whole batch and ``torch.where`` selects, so shapes
    stay static (friendly to torch.compile) and the gradient of unselected values is zero.
    Shapes and class labels are checked (eagerly; ValueError naming ``logits``/``y``), values
    are not: a NaN row (a NaN image) gives a NaN criterion for that row only (spec §2
    post-loop regeneration), through each built-in's ``unchecked`` kernel.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (B, K), got shape {tuple(logits.shape)}")
    if not _compiling():
        y = check_labels(y, logits.shape[0], logits.shape[1])
    out = None
    for j, fn in enumerate(fns):
        c = _f32(getattr(fn, "unchecked", fn)(logits, y, features))
        if c.shape != (logits.shape[0],):
            raise ValueError(f"criterion {getattr(fn, '__name__', fn)!r} must return shape ({logits.shape[0]},), "
                             f"got {tuple(c.shape)}")
        out = c if out is None else torch.where(crit_index == j, c, out)
    if out is None:
        raise ValueError("no criteria given")
    return out
