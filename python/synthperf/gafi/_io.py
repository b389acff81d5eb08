"""Checkpoints (safetensors + JSON), atomic writes, Parquet results and plots for GaFi.

Every file GaFi writes goes through :func:`atomic_write_bytes` (temp file in the same
directory, then ``os.replace``), so a crash never leaves a half-written checkpoint or table.
Checkpoints are a pair ``<stem>.safetensors`` (tensors) + ``<stem>.json`` (metadata); nothing
is ever unpickled.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

__all__ = [
    "CheckpointError",
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_exists",
    "write_parquet",
    "save_figure",
    "rng_state_tensor",
    "set_rng_state",
]


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, corrupt or does not match the model."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + rename in the same directory)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether both files of the checkpoint ``path`` (stem, with or without suffix) exist."""
    stem = _stem(path)
    return stem.with_suffix(".safetensors").is_file() and stem.with_suffix(".json").is_file()


def save_checkpoint(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
                    meta: Mapping[str, Any]) -> Path:
    """Save ``tensors`` to ``<stem>.safetensors`` and ``meta`` (JSON-serialisable) to ``<stem>.json``.

    Tensors are made contiguous CPU copies; shared storage is broken up. The JSON file is
    written last, so its presence marks a complete checkpoint. Returns the stem.
    """
    from safetensors.torch import save as st_save

    stem = _stem(path)
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(stem.with_suffix(".safetensors"), st_save(flat))
    atomic_write_bytes(stem.with_suffix(".json"),
                       json.dumps(dict(meta), indent=2, sort_keys=True).encode("utf-8"))
    return stem


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises :class:`CheckpointError` (a ValueError) naming the file when either file is
    missing, the safetensors header/data is corrupt, or the JSON does not parse.
    """
    from safetensors.torch import load as st_load

    stem = _stem(path)
    st_path, js_path = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    for p in (st_path, js_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {str(p)!r} is missing (a checkpoint is "
                                  f"<stem>.safetensors + <stem>.json)")
    try:
        tensors = st_load(st_path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"checkpoint file {str(st_path)!r} is corrupt: {exc}") from None
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {str(js_path)!r} is corrupt JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint file {str(js_path)!r} must hold a JSON object")
    return tensors, meta


def load_state_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a CheckpointError on mismatch."""
    try:
        module.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{what} does not match the model architecture: {exc}") from None


def rng_state_tensor(generator: torch.Generator) -> torch.Tensor:
    """The state of a CPU ``torch.Generator`` as a uint8 tensor (storable in safetensors)."""
    return generator.get_state().clone()


def set_rng_state(generator: torch.Generator, state: torch.Tensor) -> None:
    generator.set_state(state.to(torch.uint8).cpu())


def write_parquet(df, path: str | os.PathLike) -> Path:
    """Write a pandas DataFrame to Parquet atomically; returns the path."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """Save a matplotlib figure as ``<stem>.png`` and ``<stem>.pdf`` (atomically); closes it."""
    import io

    import matplotlib.pyplot as plt

    out = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        target = Path(f"{stem}.{ext}")
        atomic_write_bytes(target, buf.getvalue())
        out.append(target)
    plt.close(fig)
    return out
