"""GaFi's file helpers are :mod:`synthperf._io` (the one atomic-write and checkpoint layer).

This module only re-exports those names for code and tests that import ``synthperf.gafi._io``;
GaFi's own modules import :mod:`synthperf._io` directly. Every file GaFi writes goes through
``atomic_write_bytes`` (temp file in the same directory, fsync, ``os.replace``); checkpoints
are ``<stem>.safetensors`` + ``<stem>.json`` with a SHA-256 in the JSON (nothing unpickled).
"""
from __future__ import annotations

from .._io import (CheckpointError, atomic_write_bytes, checkpoint_exists, load_checkpoint, load_state_into,
                   save_checkpoint, save_figure, write_parquet)

__all__ = ["CheckpointError", "atomic_write_bytes", "save_checkpoint", "load_checkpoint", "checkpoint_exists",
           "load_state_into", "write_parquet", "save_figure"]
