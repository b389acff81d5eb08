"""Classifiers for guidance: the embedded digits default, saving and loading from local files.

The embedded default is a :class:`~synthperf.guidance.adapters.SmallResNet` trained on
scikit-learn's digits (1,797 8x8 images shipped inside scikit-learn, nothing downloaded),
upsampled to ``size`` x ``size`` and replicated to 3 channels. The pipeline feeds it through
``classifier_size=size`` and the digits mean/std, so guidance works end to end without any
external checkpoint; :func:`digits_hardness` fits the hardness statistics (spec §3) on the
same real features.

File formats (all local; no pickles):

- ``NAME.safetensors`` + ``NAME.json``: a SmallResNet state dict and its metadata
  (``arch``, ``n_classes``, ``width``, ``mean``, ``std``, ``size``, ``class_names``), the
  checkpoint format of :func:`synthperf._io.save_checkpoint` (the JSON records the weights'
  SHA-256; a corrupt or mismatched pair raises :class:`~synthperf._io.CheckpointError`).
  A bare ``NAME.safetensors`` without the JSON (weights from elsewhere) also loads: n_classes
  and width are read from the weight shapes and ImageNet mean/std apply.
- ``NAME.keras`` / ``NAME.h5``: a Keras classifier (``tf`` extra) wrapped as
  :class:`~synthperf.guidance.adapters.KerasTorchClassifier`: forward criterion only.
- ``package.module:attribute``: a callable returning a torch ``nn.Module`` (or the module
  itself), for any other torch classifier.
"""
from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._io import CheckpointError, checkpoint_paths, load_checkpoint, save_checkpoint
from .._threads import ThreadGovernor
from .._typing import ArrayLike
from .adapters import KerasTorchClassifier, SmallResNet
from .criteria import HardnessCriterion
from .step import IMAGENET_MEAN, IMAGENET_STD

DIGIT_NAMES: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class ClassifierInfo:
    """How the pipeline must feed a classifier: normalisation, input size, class names."""

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    size: int | None = None                       # None: the classifier sees the decoded resolution
    class_names: list[str] = field(default_factory=list)
    arch: str = "custom"
    n_classes: int | None = None
    width: int | None = None
    val_accuracy: float | None = None


def digits_images(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn digits as (N, 3, size, size) float32 in [0, 1] (bilinear upsampling) and (N,) int64."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).repeat(1, 3, 1, 1), torch.as_tensor(d.target, dtype=torch.long)


def _upsample_digits(x01: ArrayLike, y: ArrayLike, *, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 64) [0,1] digits + (N,) labels -> (N, 3, size, size) as :func:`digits_images`, (N,) int64."""
    import numpy as np

    x = np.asarray(x01, dtype=np.float32)
    lab = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 64:
        raise ValueError(f"data[0] must have shape (N, 64) (8x8 digits), got {x.shape}")
    if lab.shape != (x.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"data[1] must be ({x.shape[0]},) integers, got shape {lab.shape} dtype {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() > 9):
        raise ValueError("data[1] labels must lie in 0..9")
    t = torch.as_tensor(x).view(-1, 1, 8, 8)
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return t.clamp(0, 1).repeat(1, 3, 1, 1), torch.as_tensor(lab, dtype=torch.long)


def train_digits_classifier(*, size: int = 16, width: int = 8, epochs: int = 15, batch_size: int = 64,
                            lr: float = 3e-3, val_fraction: float = 0.2, seed: int = 0,
                            max_train: int | None = None, data: tuple[ArrayLike, ArrayLike] | None = None
                            ) -> tuple[SmallResNet, ClassifierInfo]:
    """Train the embedded digits default (SmallResNet, Adam, cross-entropy) on CPU in seconds.

    The split is a seeded random permutation (not stratified); mean/std are the training
    pixels' (one value for all 3 channels). ``data``: optional ``(x01, y)`` with x01 (N, 64)
    float in [0, 1] (8x8 digits, row-major) and y (N,) ints in 0..9, used instead of all of
    scikit-learn's digits (e.g. a training split or a long-tailed subset). Returns the
    eval-mode model and its :class:`ClassifierInfo` (val_accuracy on the held-out part).
    """
    for name, v in (("size", size), ("width", width), ("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if size < 8:
        raise ValueError(f"size must be >= 8 (the ResNet downsamples twice), got {size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    x, y = digits_images(size) if data is None else _upsample_digits(*data, size=size)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    n_val = round(val_fraction * len(y))
    val, train = perm[:n_val], perm[n_val:]
    if max_train is not None:
        train = train[:max_train]
    mean = float(x[train].mean())
    std = float(x[train].std())
    norm = lambda t: (t - mean) / std  # noqa: E731
    torch.manual_seed(seed)
    model = SmallResNet(10, width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    governor = ThreadGovernor()
    for _ in range(epochs):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), batch_size):
            governor.tick()
            idx = order[i:i + batch_size]
            loss = nn.functional.cross_entropy(model(norm(x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    acc = None
    if n_val:
        with torch.no_grad():
            acc = float((model(norm(x[val])).argmax(1) == y[val]).float().mean())
    info = ClassifierInfo(mean=(mean,) * 3, std=(std,) * 3, size=size, class_names=list(DIGIT_NAMES),
                          arch="SmallResNet", n_classes=10, width=width, val_accuracy=acc)
    return model.requires_grad_(False), info


def digits_hardness(model: nn.Module, info: ClassifierInfo, *, shrinkage: float | None = None,
                    data: tuple[ArrayLike, ArrayLike] | None = None) -> HardnessCriterion:
    """Fit :class:`~synthperf.guidance.criteria.HardnessCriterion` on the digits' real features
    (all of scikit-learn's digits, or ``data=(x01 (N,64), y (N,))`` as in :func:`train_digits_classifier`)."""
    size = int(info.size or 16)
    x, y = digits_images(size) if data is None else _upsample_digits(*data, size=size)
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    with torch.no_grad():
        _, feats = model.forward_with_features((x - mean) / std)
    return HardnessCriterion(shrinkage=shrinkage).fit(feats.numpy(), y.numpy(), n_classes=10)


def save_classifier(model: SmallResNet, info: ClassifierInfo, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` metadata as one checkpoint
    (:func:`synthperf._io.save_checkpoint`: each file atomic, the JSON last with the weights' SHA-256)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"path must end in .safetensors, got {path.name!r}")
    save_checkpoint(path, model.state_dict(), asdict(info))
    return path


def _read_classifier_file(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state, meta) of a checkpoint pair, or of bare weights when there is no JSON sidecar."""
    if checkpoint_paths(path)[1].exists():
        return load_checkpoint(path)
    from safetensors.torch import load as st_load

    try:
        return st_load(path.read_bytes()), {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"classifier file {str(path)!r} is corrupt: {exc}") from None


def _small_resnet_from_state(state: dict[str, torch.Tensor], meta: dict) -> SmallResNet:
    try:
        n_classes = int(meta.get("n_classes") or state["head.weight"].shape[0])
        width = int(meta.get("width") or state["stem.0.weight"].shape[0])
        in_ch = int(state["stem.0.weight"].shape[1])
    except KeyError as exc:
        raise ValueError(f"not a SmallResNet state dict (missing {exc}); pass package.module:attribute "
                         "for other torch classifiers") from None
    model = SmallResNet(n_classes, width=width, in_channels=in_ch)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"SmallResNet weights do not match (n_classes={n_classes}, width={width}): {exc}") from None
    return model


def load_classifier(spec: str | Path) -> tuple[nn.Module, ClassifierInfo]:
    """Load a classifier from a local file or ``module:attribute`` (see the module docstring).

    Raises ValueError for a missing file or an unsupported suffix, TypeError when
    ``module:attribute`` does not give an nn.Module.
    """
    text = str(spec)
    path = Path(text)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ValueError(f"classifier file {text!r} does not exist")
        state, meta = _read_classifier_file(path)
        model = _small_resnet_from_state(state, meta)
        known = {k: v for k, v in meta.items() if k in ClassifierInfo.__dataclass_fields__}
        info = ClassifierInfo(**known)
        info.mean, info.std = tuple(info.mean), tuple(info.std)
        info.arch, info.n_classes = "SmallResNet", model.n_classes
        return model.eval().requires_grad_(False), info
    if path.suffix in (".keras", ".h5"):
        if not path.is_file():
            raise ValueError(f"Keras classifier file {text!r} does not exist")
        model = KerasTorchClassifier(str(path))
        return model, ClassifierInfo(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), arch="keras",
                                     n_classes=model.num_classes)
    if ":" in text and not path.exists():
        module_name, _, attr = text.partition(":")
        try:
            obj: object = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot import classifier {text!r}: {exc}") from None
        model = obj() if callable(obj) and not isinstance(obj, nn.Module) else obj
        if not isinstance(model, nn.Module):
            raise TypeError(f"classifier {text!r} must give a torch nn.Module, got {type(model).__name__}")
        return model.eval().requires_grad_(False), ClassifierInfo(n_classes=getattr(model, "num_classes", None))
    raise ValueError(f"classifier {text!r}: expected an existing .safetensors (SmallResNet), .keras/.h5 file, "
                     "or package.module:attribute")
