"""The byte-level damage the fault tests do to a finished file (issue 17), shared by the fault
matrix, the store fault tests and the GaFi table tests."""
from __future__ import annotations

from pathlib import Path

#: the kinds of damage :func:`corrupt_file` does
BYTE_DAMAGE = ("truncate", "bitflip", "zero", "directory")


def corrupt_file(path: Path, how: str, *, flip_at: float = 0.5, mask: int = 0x04,
                 keep_in_directory: str | None = None) -> None:
    """Damage the regular file ``path`` in place.

    ``how``: ``"truncate"`` (keep the first half), ``"bitflip"`` (XOR ``mask`` into the byte at
    fraction ``flip_at`` of the file), ``"zero"`` (same size, all zero bytes) or ``"directory"``
    (a directory in its place; with ``keep_in_directory`` the old bytes are kept inside it under
    that name, as a partitioned-Parquet writer would leave them).
    """
    if how not in BYTE_DAMAGE:
        raise ValueError(f"how must be one of {BYTE_DAMAGE}, got {how!r}")
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "bitflip":
        b = bytearray(data)
        b[int(len(b) * flip_at)] ^= mask
        path.write_bytes(bytes(b))
    elif how == "zero":
        path.write_bytes(b"\0" * len(data))
    else:
        path.unlink()
        path.mkdir()
        if keep_in_directory:
            (path / keep_in_directory).write_bytes(data)
