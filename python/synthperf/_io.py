"""The one file-writing layer of synthperf: atomic writes, checkpoints, Parquet and figures.

Every file the package writes outside ``flows/`` goes through this module (imports no
subpackage; torch, safetensors, pandas and matplotlib are imported only by the functions
that need them).

- :func:`atomic_write` / :func:`atomic_write_bytes` / :func:`atomic_write_text`: a temp file
  ``.<name>.<random>.tmp`` in the target's directory, written, flushed and fsynced, then
  ``os.replace``-d onto the target (and the directory fsynced). A writer that raises, or a
  process killed at any moment, leaves either the old file or the whole new one, plus at most
  a stray temp file (removed on an exception; after SIGKILL see :func:`stale_temp_files`).
- :func:`atomic_directory`: the same for a folder built in place (e.g. ``save_pretrained``).
- :func:`save_checkpoint` / :func:`load_checkpoint`: the one checkpoint format,
  ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (metadata and the tensors' SHA-256 and
  byte size). The JSON is written last, so its presence marks a complete checkpoint; any
  missing, truncated, bit-flipped or foreign file raises :class:`CheckpointError` naming it.
  Nothing is ever unpickled.
- :func:`write_parquet`: a pandas DataFrame as Parquet, atomically.
- :func:`save_figure`: a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf``, atomically.
  Works with ``matplotlib.figure.Figure()`` (object API, no pyplot, no ``matplotlib.use``).

``synthperf.experiments.store`` and ``synthperf.gafi._io`` re-export some of these names.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

__all__ = [
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_directory",
    "is_temp_file", "stale_temp_files", "remove_stale_temps",
    "CheckpointError", "CHECKPOINT_KEY", "checkpoint_paths", "checkpoint_exists", "save_checkpoint",
    "load_checkpoint", "load_state_into",
    "write_parquet", "save_figure", "FIGURE_FORMATS",
]

#: formats :func:`save_figure` writes, in order
FIGURE_FORMATS = ("png", "pdf")
#: suffix of every temp file or folder this module creates (``.<name>.<random>.tmp``)
TEMP_SUFFIX = ".tmp"
#: reserved key of a checkpoint's JSON sidecar: format version, SHA-256 and size of the tensors file
CHECKPOINT_KEY = "_synthperf_checkpoint"
_CHECKPOINT_VERSION = 1
_CHUNK = 1 << 20


def _umask() -> int:
    """The process umask (read from /proc where possible; ``os.umask`` set-and-restore otherwise)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every OS/filesystem allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temp file/folder of this module (``.<name>.<random>.tmp``): readers skip these."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temp files left beside ``path`` by a killed :func:`atomic_write` of ``path`` (sorted).

    Only names ``.<path.name>.<random>.tmp`` with a dot-free random part match, so the temps of
    ``a.png`` never include those of ``a.png.json``.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(_temp_prefix(path)) + r"[^.]+" + re.escape(TEMP_SUFFIX))
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete :func:`stale_temp_files` of ``path``; returns how many.

    Only safe while no other process writes ``path`` (its temp file would be removed).
    """
    n = 0
    for stale in stale_temp_files(path):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        n += 1
    return n


def atomic_write(path: str | os.PathLike, writer: Callable[[BinaryIO], Any]) -> Path:
    """Create or replace ``path`` atomically with what ``writer(fh)`` writes to a binary file.

    ``writer`` gets an open binary file (the temp file ``.<name>.<random>.tmp`` in the target's
    folder). After it returns, the file is flushed, fsynced, given the umask's permissions and
    moved onto ``path`` with ``os.replace``. If ``writer`` (or anything else) raises, the temp
    file is removed, ``path`` is untouched and the exception propagates. Creates missing parent
    folders; returns ``path`` as a ``Path``.
    """
    if not callable(writer):
        raise TypeError(f"writer must be callable (it gets a binary file), got {type(writer).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` (bytes-like) to ``path`` atomically (see :func:`atomic_write`); returns the path.

    Raises ``TypeError`` when ``data`` is not bytes-like.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write the str ``text`` to ``path`` atomically (encoded with ``encoding``); returns the path."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder in a temp folder beside ``path``; publish it as ``path`` only if the block succeeds.

    ``with atomic_directory(model_dir) as tmp: pipe.save_pretrained(tmp)``. On a clean exit every
    file inside is fsynced and the folder is renamed onto ``path``. If ``path`` already exists
    (another process finished first) the new folder is discarded and the existing one kept. On
    an exception the temp folder is removed. Readers never see a half-built ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                with open(os.path.join(root, name), "rb") as fh:
                    os.fsync(fh.fileno())
        if not path.exists():
            try:
                os.replace(tmp, path)
            except OSError:
                if not path.is_dir():  # a folder that appeared meanwhile wins; anything else is an error
                    raise
            else:
                _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- checkpoints
class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt, foreign or does not match the model (names the file)."""


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)`` for ``path`` given as the stem or either file.

    Only a ``.safetensors`` or ``.json`` suffix is stripped, so ``stats.v1`` gives
    ``stats.v1.safetensors`` (never ``Path.with_suffix``).
    """
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether both files of the checkpoint ``path`` exist as regular files (not whether they are valid)."""
    st, js = checkpoint_paths(path)
    return st.is_file() and js.is_file()


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Save ``tensors`` (name -> ``torch.Tensor``) and ``meta`` (a JSON-serialisable mapping).

    Writes ``<stem>.safetensors`` then ``<stem>.json`` (``meta`` plus :data:`CHECKPOINT_KEY`:
    the SHA-256 and byte size of the tensors file), each atomically. Tensors are stored as
    contiguous CPU copies (shared storage broken up). Returns the stem. ``TypeError`` for a
    non-tensor value or non-serialisable ``meta``; ``ValueError`` if ``meta`` uses the reserved key.
    """
    import torch
    from safetensors.torch import save as st_save

    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a mapping name -> torch.Tensor, got {type(tensors).__name__}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a mapping, got {type(meta).__name__}")
    if CHECKPOINT_KEY in meta:
        raise ValueError(f"meta must not use the reserved key {CHECKPOINT_KEY!r}")
    flat = {}
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise TypeError(f"tensors keys must be str, got {type(k).__name__}")
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"tensors[{k!r}] must be a torch.Tensor, got {type(v).__name__}")
        flat[k] = v.detach().to("cpu").contiguous().clone()
    data = st_save(flat)
    doc = dict(meta)
    doc[CHECKPOINT_KEY] = {"version": _CHECKPOINT_VERSION, "sha256": hashlib.sha256(data).hexdigest(),
                           "bytes": len(data)}
    try:
        text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"meta must be JSON-serialisable: {exc}") from None
    st_path, js_path = checkpoint_paths(path)
    atomic_write_bytes(st_path, data)
    atomic_write_text(js_path, text)
    return st_path.with_suffix("")


def _read_file(p: Path, what: str) -> bytes:
    if not p.exists():
        raise CheckpointError(f"checkpoint file {str(p)!r} is missing (a checkpoint is <stem>.safetensors "
                              f"+ <stem>.json; {what})")
    if not p.is_file():
        raise CheckpointError(f"checkpoint file {str(p)!r} is not a regular file (a directory or device is "
                              f"in its place)")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint file {str(p)!r} cannot be read: {exc}") from None


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`: ``(tensors on the CPU, meta)``.

    ``path``: the stem or either file. Raises :class:`CheckpointError` (a ValueError) naming the
    file when a file is missing or is not a regular file, the JSON is corrupt, the sidecar has no
    checksum (not a synthperf checkpoint), the tensors file is truncated/extended or its SHA-256
    differs, or safetensors cannot parse it. ``meta`` comes back without :data:`CHECKPOINT_KEY`.
    """
    from safetensors.torch import load as st_load

    st_path, js_path = checkpoint_paths(path)
    raw_meta = _read_file(js_path, "the JSON is written last, so the save did not finish")
    data = _read_file(st_path, "written before the JSON")
    try:
        meta = json.loads(raw_meta.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {str(js_path)!r} is corrupt JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint file {str(js_path)!r} is corrupt: it must hold a JSON object")
    check = meta.pop(CHECKPOINT_KEY, None)
    if not (isinstance(check, dict) and isinstance(check.get("sha256"), str) and isinstance(check.get("bytes"), int)):
        raise CheckpointError(f"checkpoint file {str(js_path)!r} has no checksum entry {CHECKPOINT_KEY!r}: "
                              "not written by synthperf._io.save_checkpoint (or by an older version); re-create it")
    if check.get("version") != _CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint file {str(js_path)!r} has format version {check.get('version')!r}; "
                              f"this synthperf reads version {_CHECKPOINT_VERSION}")
    if len(data) != check["bytes"]:
        raise CheckpointError(f"checkpoint file {str(st_path)!r} is corrupt (truncated or extended): "
                              f"{len(data)} bytes on disk, {check['bytes']} recorded in {js_path.name}")
    if hashlib.sha256(data).hexdigest() != check["sha256"]:
        raise CheckpointError(f"checkpoint file {str(st_path)!r} is corrupt: its SHA-256 differs from the one "
                              f"recorded in {js_path.name} (bit flip, or the two files come from different saves)")
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"checkpoint file {str(st_path)!r} is corrupt: {exc}") from None
    return tensors, meta


def load_state_into(module: Any, state: Mapping[str, Any], what: str) -> None:
    """``module.load_state_dict(state, strict=True)``; a mismatch raises :class:`CheckpointError` naming ``what``."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{what} does not match the model architecture: {exc}") from None


# ----------------------------------------------------------------------------- tables and figures
def write_parquet(df: Any, path: str | os.PathLike) -> Path:
    """Write the pandas DataFrame ``df`` to ``path`` as Parquet (no index), atomically; returns the path."""
    if not hasattr(df, "to_parquet"):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_sidecar(path: Path, side: Path, what: str) -> tuple[str, Any]:
    """Shared first half of a sidecar-checked Parquet file's verification.

    ``path``: the data file; ``side``: its JSON sidecar; ``what``: the data file's kind in
    messages ("shard", "table"). Returns ``("", doc)`` with the parsed sidecar, or
    ``(reason, None)`` when either file is missing, not a regular file, or the sidecar is not JSON.
    """
    for p, kind in ((path, what), (side, "sidecar")):
        if not os.path.lexists(p):
            return ((f"its sidecar {side.name} is missing (the write did not finish, or the file was "
                     "put there by hand)" if kind == "sidecar" else f"the {what} file is missing"), None)
        if p.is_symlink() or not p.is_file():
            return f"the {kind} {p.name} is not a regular file (a directory or link is in its place)", None
    try:
        return "", json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"its sidecar {side.name} is unreadable or not JSON ({exc})", None


def verify_parquet_payload(path: Path, doc: Mapping[str, Any]) -> str:
    """Shared second half: ``path``'s bytes against the sidecar ``doc``'s ``bytes`` and
    ``sha256``, then the Parquet footer's row count against ``rows``. Returns ``""`` when all
    agree, else the reason (truncated/extended, SHA-256 differs, footer unreadable, row count)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"it cannot be read ({exc})"
    if len(data) != doc["bytes"]:
        return f"it is truncated or extended ({len(data)} bytes on disk, {doc['bytes']} recorded)"
    if hashlib.sha256(data).hexdigest() != doc["sha256"]:
        return "its SHA-256 differs from the sidecar's (bit flip, zeroed or replaced content)"
    try:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for damaged footers
        return f"its Parquet footer is unreadable ({type(exc).__name__}: {exc})"
    if rows != doc["rows"]:
        return f"its Parquet footer holds {rows} rows, the sidecar records {doc['rows']}"
    return ""


def save_figure(fig: Any, stem: str | os.PathLike, *, dpi: int = 120) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (each atomically); returns both paths.

    ``stem`` is used as given plus ``.png`` / ``.pdf`` (never ``Path.with_suffix``, so a stem
    such as ``class_coverage_alpha0.1`` keeps its ``.1``). ``fig``: a ``matplotlib.figure.Figure``;
    one made by pyplot is closed after saving so it is not leaked. The user's backend is untouched.
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise ValueError(f"dpi must be a positive integer, got {dpi!r}")
    out = []
    for ext in FIGURE_FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
        out.append(atomic_write_bytes(Path(f"{os.fspath(stem)}.{ext}"), buf.getvalue()))
    plt = sys.modules.get("matplotlib.pyplot")  # only if the caller already uses pyplot
    if plt is not None and getattr(fig, "number", None) is not None and plt.fignum_exists(fig.number):
        plt.close(fig)
    return out
