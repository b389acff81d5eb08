"""Datasets for GaFi (spec section 1): digits (embedded default), CIFAR-10/100, Fashion-MNIST.

All readers work on local files only (no download). Images come out as float32 tensors of
shape (N, C, H, W) in [-1, 1] (``x/255`` then ``(x-0.5)/0.5``; digits use ``x/16``), labels
as int64 tensors of shape (N,).

Splits follow upstream: the official test split is the test set, and a stratified
``train_test_split(test_size=len(test), random_state=0)`` of the training files gives the
classifier/pipeline train split and the held-out validation split. ``merge_train_val=True``
(the GAN's setting) returns train+val as the training set.

The CIFAR "python" format is a pickle. It is read with :class:`RestrictedUnpickler`, which
resolves only numpy's array-reconstruction globals; anything else (``os.system``,
``builtins.eval``, arbitrary classes) raises :class:`UnsafePickleError` before any object
is built, so no attacker-chosen code runs.
"""
from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "ImageData",
    "DatasetSplits",
    "UnsafePickleError",
    "RestrictedUnpickler",
    "safe_unpickle",
    "read_cifar_python",
    "read_cifar_binary",
    "read_idx",
    "load_dataset",
    "normalize_uint8",
]

DATASETS = ("digits", "cifar10", "cifar100", "fashionmnist")


@dataclass
class ImageData:
    """Images ``x`` (N, C, H, W) float32 in [-1, 1] and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W), got shape {tuple(self.x.shape)}")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y must be (N,) with N={self.x.shape[0]}, got shape {tuple(self.y.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class DatasetSplits:
    """train / val / test splits of one dataset (spec section 1)."""

    name: str
    num_classes: int
    train: ImageData
    val: ImageData
    test: ImageData

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    def class_samples(self) -> int:
        """Upstream default per-class synthetic set size: ``len(train split) // K``."""
        return len(self.train) // self.num_classes


# ----------------------------------------------------------------------------- pickles
class UnsafePickleError(ValueError):
    """A pickle referenced a global outside the CIFAR allow-list."""


def _allowed_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray as _ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma  # type: ignore[no-redef]
    reconstruct = _ma._reconstruct
    allowed: dict[tuple[str, str], object] = {}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = reconstruct
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "ndarray")] = np.ndarray
        allowed[(mod, "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode  # protocol-2 pickles of py3 bytes
    return allowed


def _latin1_encode(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode`` limited to str -> bytes with latin-1 (how protocol 2 stores bytes)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("refusing _codecs.encode with arguments other than (str, 'latin1')")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy ``ndarray``/``dtype``/``_reconstruct``.

    Builtin containers (dict, list, bytes, str, int) need no globals and load as usual.
    Any other global raises :class:`UnsafePickleError`.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        key = (module, name)
        if key in self._ALLOWED:
            return self._ALLOWED[key]
        raise UnsafePickleError(
            f"refusing to unpickle global {module}.{name}: CIFAR python files may only contain "
            f"dicts, lists, bytes and numpy arrays (file is corrupt or malicious)")


def safe_unpickle(data: bytes, what: str) -> object:
    """Unpickle ``data`` with :class:`RestrictedUnpickler` (``encoding='bytes'``, as CIFAR needs)."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{what}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, ValueError) as exc:
        raise ValueError(f"{what} is not a valid CIFAR python-format pickle: {exc}") from None


def _key(d: dict, *names: str):
    for n in names:
        for k in (n.encode(), n):
            if k in d:
                return d[k]
    raise ValueError(f"CIFAR batch dict lacks key {names[0]!r}; keys: {list(d)[:8]}")


def read_cifar_python(path: str | Path, *, label_key: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR python-format batch (e.g. ``data_batch_1``, or CIFAR-100 ``train``).

    Returns ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``. ``label_key`` is
    ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch file {str(path)!r} does not exist")
    obj = safe_unpickle(path.read_bytes(), f"CIFAR file {str(path)!r}")
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR file {str(path)!r} must hold a dict, got {type(obj).__name__}")
    data = _key(obj, "data")
    labels = np.asarray(_key(obj, label_key))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"CIFAR file {str(path)!r}: 'data' must be a uint8 array (N, 3072), got "
                         f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or labels.dtype.kind not in "iu":
        raise ValueError(f"CIFAR file {str(path)!r}: {label_key} must be {data.shape[0]} integers")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_cifar_binary(path: str | Path, *, label_bytes: int = 1, label_index: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Read a CIFAR binary-format file: records of ``label_bytes`` label bytes + 3072 pixels.

    CIFAR-10: ``label_bytes=1``; CIFAR-100: ``label_bytes=2`` (coarse, fine) with
    ``label_index=1`` for fine labels. Returns ``(uint8 (N, 3, 32, 32), int64 (N,))``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR binary file {str(path)!r} does not exist")
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    rec = label_bytes + 3072
    if raw.size == 0 or raw.size % rec:
        raise ValueError(f"CIFAR binary file {str(path)!r} is corrupt: {raw.size} bytes is not a "
                         f"positive multiple of the {rec}-byte record size")
    recs = raw.reshape(-1, rec)
    return recs[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), recs[:, label_index].astype(np.int64)


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST/Fashion-MNIST format), gzip-compressed or not."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"IDX file {str(path)!r} is a corrupt gzip stream: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"IDX file {str(path)!r} has a bad magic number {raw[:4].hex()}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {str(path)!r} is truncated in its header")
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"IDX file {str(path)!r} is corrupt: shape {shape} needs {expected} data "
                         f"bytes, found {len(raw) - header}")
    return np.frombuffer(raw[header:], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def normalize_uint8(images: np.ndarray, max_value: float = 255.0) -> torch.Tensor:
    """uint8-like images -> float32 tensor in [-1, 1]: ``(x/max - 0.5)/0.5``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32) / float(max_value)
    return (x - 0.5) / 0.5


# ----------------------------------------------------------------------------- loaders
def _find(root: Path, *names: str) -> Path | None:
    for n in names:
        for cand in (root / n, *(root.glob(f"*/{n}"))):
            if cand.is_file():
                return cand
    return None


def _load_cifar(root: Path, k: int):
    if k == 10:
        py_train = [_find(root, f"data_batch_{i}") for i in range(1, 6)]
        if all(p is not None for p in py_train):
            parts = [read_cifar_python(p) for p in py_train]  # type: ignore[arg-type]
            test = read_cifar_python(_find(root, "test_batch") or root / "test_batch")
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), *test
        bin_train = [_find(root, f"data_batch_{i}.bin") for i in range(1, 6)]
        if all(p is not None for p in bin_train):
            parts = [read_cifar_binary(p) for p in bin_train]  # type: ignore[arg-type]
            test = read_cifar_binary(_find(root, "test_batch.bin") or root / "test_batch.bin")
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), *test
        raise FileNotFoundError(f"no CIFAR-10 files under {str(root)!r}: expected data_batch_1..5 + "
                                f"test_batch (python) or the .bin files (binary); nothing is downloaded")
    train, test = _find(root, "train"), _find(root, "test")
    if train is not None and test is not None:
        return (*read_cifar_python(train, label_key="fine_labels"),
                *read_cifar_python(test, label_key="fine_labels"))
    train, test = _find(root, "train.bin"), _find(root, "test.bin")
    if train is not None and test is not None:
        return (*read_cifar_binary(train, label_bytes=2, label_index=1),
                *read_cifar_binary(test, label_bytes=2, label_index=1))
    raise FileNotFoundError(f"no CIFAR-100 files under {str(root)!r}: expected train + test (python) "
                            f"or train.bin + test.bin (binary); nothing is downloaded")


def _load_fashion(root: Path):
    def get(stem: str) -> np.ndarray:
        p = _find(root, stem, stem + ".gz")
        if p is None:
            raise FileNotFoundError(f"Fashion-MNIST file {stem}[.gz] not found under {str(root)!r}")
        return read_idx(p)

    xtr, ytr = get("train-images-idx3-ubyte"), get("train-labels-idx1-ubyte")
    xte, yte = get("t10k-images-idx3-ubyte"), get("t10k-labels-idx1-ubyte")
    # spec section 1: zero-pad 2 px per side BEFORE normalization (pad value -1 afterwards)
    pad = ((0, 0), (2, 2), (2, 2))
    return (np.pad(xtr, pad)[:, None], ytr.astype(np.int64), np.pad(xte, pad)[:, None], yte.astype(np.int64))


def _split(x: torch.Tensor, y: np.ndarray, n_val: int, seed: int):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, va = train_test_split(idx, test_size=n_val, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(va)


def load_dataset(name: str = "digits", root: str | Path | None = None, *, merge_train_val: bool = False,
                 split_seed: int = 0) -> DatasetSplits:
    """Load ``name`` (``digits``, ``cifar10``, ``cifar100``, ``fashionmnist``) from ``root``.

    ``digits`` is scikit-learn's bundled 8x8 set (1797 images, 1 channel): a stratified 20%
    test split (``random_state=split_seed``) stands in for the missing official test split.
    The val split has the test split's size (upstream rule). With ``merge_train_val`` the
    val samples are also included in ``train`` (the GAN's training set).
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    name = name.lower()
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        imgs = d.images.astype(np.float32)[:, None]  # (1797, 1, 8, 8), values 0..16
        idx_tr, idx_te = train_test_split(np.arange(len(d.target)), test_size=0.2,
                                          random_state=split_seed, stratify=d.target)
        xtr, ytr = imgs[np.sort(idx_tr)], d.target[np.sort(idx_tr)].astype(np.int64)
        xte, yte = imgs[np.sort(idx_te)], d.target[np.sort(idx_te)].astype(np.int64)
        scale, k = 16.0, 10
    else:
        if root is None:
            raise ValueError(f"dataset {name!r} needs root= (a local directory); nothing is downloaded")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset root {str(root)!r} is not a directory")
        if name in ("cifar10", "cifar100"):
            k = 10 if name == "cifar10" else 100
            xtr, ytr, xte, yte = _load_cifar(root, k)
        else:
            k = 10
            xtr, ytr, xte, yte = _load_fashion(root)
        scale = 255.0
    for lab, what in ((ytr, "train"), (yte, "test")):
        if lab.size and (lab.min() < 0 or lab.max() >= k):
            raise ValueError(f"{name} {what} labels must lie in [0, {k}), got range [{lab.min()}, {lab.max()}]")
    x_all = normalize_uint8(xtr, scale)
    tr, va = _split(x_all, ytr, len(yte), split_seed)
    y_all = torch.from_numpy(ytr)
    val = ImageData(x_all[va], y_all[va])
    train = ImageData(x_all, y_all) if merge_train_val else ImageData(x_all[tr], y_all[tr])
    test = ImageData(normalize_uint8(xte, scale), torch.from_numpy(yte))
    return DatasetSplits(name=name, num_classes=k, train=train, val=val, test=test)
