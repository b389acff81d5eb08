"""Image datasets as uncompressed ZIPs of PNGs (EDM / StyleGAN format; specs §7).

:func:`make_dataset_zip` writes ``{idx//1000:05d}/img{idx:08d}.png`` (PNG compress level 0)
plus ``dataset.json`` = ``{"labels": [[name, label], ...]}`` (or ``{"labels": null}``) into
a ZIP_STORED archive, from a folder of images (labels from top-level sub-folder names) or
from scikit-learn's bundled 8x8 digits (``source="digits"``, labels 0-9).

:class:`ImageZipDataset` reads such archives safely: member names with absolute paths,
``..`` components or backslashes and symlink members are rejected, undecodable PNGs and inconsistent shapes
raise ValueError naming the member, and labels must reference existing members.
"""
from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from .._io import atomic_write

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _digits() -> tuple[list[np.ndarray], list[int]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [np.clip(im / 16.0 * 255.0 + 0.5, 0, 255).astype(np.uint8) for im in d.images]
    return imgs, [int(v) for v in d.target]


def _folder(src: Path) -> tuple[list[np.ndarray], list[int] | None]:
    from PIL import Image

    files = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not files:
        raise ValueError(f"source folder {src} contains no images ({', '.join(IMAGE_EXTS)})")
    tops = [p.relative_to(src).parts[0] if len(p.relative_to(src).parts) > 1 else None for p in files]
    classes = sorted({t for t in tops if t is not None})
    labels = [classes.index(t) for t in tops] if classes and all(t is not None for t in tops) else None
    imgs = []
    for p in files:
        with Image.open(p) as im:
            imgs.append(np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im))
    return imgs, labels


def make_dataset_zip(source: str | Path, dest: str | Path, *, resolution: int | None = None,
                     max_images: int | None = None) -> int:
    """Write the archive; returns the number of images. ``resolution`` resizes to RxR (Lanczos);
    ``max_images`` (>= 1) keeps the first ones. The ZIP is written atomically."""
    from PIL import Image

    from .._validation import positive_int

    if max_images is not None:
        max_images = positive_int(max_images, "max_images")  # -1 used to drop one image silently (issue 17)
    if resolution is not None:
        resolution = positive_int(resolution, "resolution")
        if resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two, got {resolution}")

    imgs, labels = _digits() if str(source) == "digits" else _folder(Path(source))
    if max_images is not None:
        imgs, labels = imgs[:max_images], (labels[:max_images] if labels is not None else None)
    entries: list[str] = []

    def write(fh) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
            for idx, arr in enumerate(imgs):
                im = Image.fromarray(arr)
                if resolution is not None:
                    im = im.resize((resolution, resolution), Image.LANCZOS)
                w, h = im.size
                if w != h or (w & (w - 1)):
                    raise ValueError(f"image {idx} is {w}x{h}: images must be square with a power-of-two side; "
                                     "pass resolution=...")
                name = f"{idx // 1000:05d}/img{idx:08d}.png"
                buf = io.BytesIO()
                im.save(buf, format="png", compress_level=0)
                zf.writestr(name, buf.getvalue())
                entries.append(name)
            meta = {"labels": [[n, l] for n, l in zip(entries, labels)] if labels is not None else None}
            zf.writestr("dataset.json", json.dumps(meta))

    atomic_write(dest, write)  # a failed or killed write never leaves a half archive at dest
    return len(entries)


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return not (name.startswith("/") or "\\" in name or ".." in p.parts or ":" in name)


class ImageZipDataset:
    """Images of an archive as uint8 CHW arrays ``(image [C, R, R], label or -1)``.

    ``to_float(i)`` maps pixels to [-1, 1] (x/127.5 - 1, spec §1.3).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{self.path} is not a readable ZIP archive: {exc}") from None
        names = self._zip.namelist()
        bad = [n for n in names if not _safe_name(n)]
        if bad:
            raise ValueError(f"{self.path} has unsafe member names (path traversal): {bad[:3]}")
        links = [i.filename for i in self._zip.infolist() if stat.S_ISLNK(i.external_attr >> 16)]
        if links:
            raise ValueError(f"{self.path} has symlink members (refused): {links[:3]}")
        self.names = sorted(n for n in names if n.lower().endswith(".png"))
        if not self.names:
            raise ValueError(f"{self.path} contains no PNG images")
        self.labels = np.full(len(self.names), -1, dtype=np.int64)
        if "dataset.json" in names:
            try:
                meta = json.loads(self._zip.read("dataset.json"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"dataset.json in {self.path} is corrupt: {exc}") from None
            if not isinstance(meta, dict) or "labels" not in meta:
                raise ValueError("dataset.json must be an object with a 'labels' key")
            if meta["labels"] is not None:
                index = {n: i for i, n in enumerate(self.names)}
                for entry in meta["labels"]:
                    if not (isinstance(entry, list) and len(entry) == 2 and entry[0] in index
                            and isinstance(entry[1], int)):
                        raise ValueError(f"dataset.json label entry {entry!r} is invalid or names a missing image")
                    self.labels[index[entry[0]]] = entry[1]
        self._shape = self._load(0).shape

    def __len__(self) -> int:
        return len(self.names)

    def _load(self, i: int) -> np.ndarray:
        from PIL import Image

        name = self.names[i]
        try:
            with Image.open(io.BytesIO(self._zip.read(name))) as im:
                arr = np.asarray(im)
        except Exception as exc:  # PIL raises many types for corrupt data
            raise ValueError(f"member {name} of {self.path} is not a valid PNG: {exc}") from None
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        return arr.transpose(2, 0, 1).copy()

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        img = self._load(i)
        if img.shape != self._shape:
            raise ValueError(f"member {self.names[i]} has shape {img.shape}, expected {self._shape}")
        return img, int(self.labels[i])

    def to_float(self, i: int) -> np.ndarray:
        return self[i][0].astype(np.float32) / 127.5 - 1.0

    def array(self, max_images: int | None = None) -> np.ndarray:
        """All images [n, C, R, R] in [-1, 1] (float32); ``max_images`` (>= 1) keeps the first ones."""
        if max_images is not None:
            from .._validation import positive_int

            max_images = positive_int(max_images, "max_images")
        n = len(self) if max_images is None else min(max_images, len(self))
        return np.stack([self.to_float(i) for i in range(n)])

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "ImageZipDataset":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
