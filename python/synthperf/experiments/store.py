"""Result store: one Parquet shard per (grid point, trial chunk), verified on every resume.

Layout of a run directory ``OUT``::

    OUT/run.yaml                                   # source config, overrides, grid, points, chunk plan
    OUT/.synthperf.lock                            # the run lock (:mod:`.lock`; pid, host, start time)
    OUT/points/p0000/config.yaml                   # resolved config of grid point 0
    OUT/points/p0000/chunks/trials_000000_000025.parquet
    OUT/points/p0000/chunks/trials_000000_000025.parquet.json   # its sidecar (written last)
    OUT/report.md, OUT/plots/*.png|pdf, OUT/tables/*.md|tex

Every file is written through :mod:`synthperf._io` (a temp file in the same directory, flushed
and fsynced, then ``os.replace``). A shard is *finished* when its JSON sidecar exists: the
sidecar is written after the Parquet file and records the shard's point and trial range, its
row count, byte size and SHA-256, and the SHA-256 of the point's ``config.yaml``.

:func:`check_chunk` verifies a shard against its sidecar and the run's chunk plan (regular
file, size, SHA-256, Parquet footer readable, footer row count = recorded rows, range and
config match). The runner recomputes anything that fails (:func:`discard_chunk` removes it
first) and :func:`load_results` reads exactly the chunks of the run's plan (``run.yaml``), so
files that do not belong to the plan (copies, other chunkings) are never counted.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import yaml

from .._io import (atomic_write_bytes, atomic_write_text, read_sidecar, remove_stale_temps,  # noqa: F401
                   verify_parquet_payload, write_parquet)
from .._typing import LazyModule

if TYPE_CHECKING:
    import pandas as pd
else:  # annotations resolve to pandas' classes; importing this module does not import pandas
    pd = LazyModule("pandas")

__all__ = ["atomic_write_bytes", "write_chunk", "chunk_path", "point_dir", "write_point_config",
           "read_point_config", "load_results", "chunk_files", "sidecar_path", "check_chunk", "discard_chunk",
           "planned_chunks", "config_digest", "SHARD_FORMAT"]

log = logging.getLogger("synthperf.experiments")

#: ``format`` entry of a shard sidecar
SHARD_FORMAT = "synthperf-shard"
_SHARD_VERSION = 1
_SHARD_RE = re.compile(r"trials_(\d+)_(\d+)\.parquet")
_POINT_RE = re.compile(r"p(\d+)")


def point_dir(out: str | os.PathLike, point: int) -> Path:
    return Path(out) / "points" / f"p{point:04d}"


def chunk_path(out: str | os.PathLike, point: int, lo: int, hi: int) -> Path:
    return point_dir(out, point) / "chunks" / f"trials_{lo:06d}_{hi:06d}.parquet"


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of shard ``path`` (``<name>.parquet.json``)."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def config_digest(point_directory: str | os.PathLike) -> str | None:
    """SHA-256 (hex) of ``<point dir>/config.yaml``, or ``None`` when it is missing or unreadable."""
    try:
        return hashlib.sha256((Path(point_directory) / "config.yaml").read_bytes()).hexdigest()
    except OSError:
        return None


def _shard_key(path: Path) -> tuple[int, int, int] | None:
    """(point, lo, hi) encoded in a shard path ``.../p<point>/chunks/trials_<lo>_<hi>.parquet``."""
    m, pm = _SHARD_RE.fullmatch(path.name), _POINT_RE.fullmatch(path.parent.parent.name)
    if m is None or pm is None or path.parent.name != "chunks":
        return None
    return int(pm.group(1)), int(m.group(1)), int(m.group(2))


def write_chunk(df, path: str | os.PathLike) -> Path:
    """Write the DataFrame ``df`` as Parquet to ``path``, atomically; returns the path.

    A path named like a shard (``points/p<i>/chunks/trials_<lo>_<hi>.parquet``, see
    :func:`chunk_path`) also gets its JSON sidecar (written second, so its presence marks a
    finished shard): point, lo, hi, rows, bytes, sha256 and the point config's SHA-256.
    Any other path is a plain atomic Parquet write.
    """
    path = Path(path)
    key = _shard_key(path)
    if key is None:
        return write_parquet(df, path)
    if not hasattr(df, "to_parquet"):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    data = buf.getvalue()
    doc = {"format": SHARD_FORMAT, "version": _SHARD_VERSION, "point": key[0], "lo": key[1], "hi": key[2],
           "rows": int(len(df)), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
           "config_sha256": config_digest(path.parent.parent)}
    side = sidecar_path(path)
    if side.is_dir() and not side.is_symlink():  # a directory squatting on the sidecar's name
        shutil.rmtree(side)
    atomic_write_bytes(path, data)
    atomic_write_text(side, json.dumps(doc, indent=1, sort_keys=True))
    return path


def check_chunk(path: str | os.PathLike, *, config_sha256: str | None = None) -> tuple[str, str]:
    """Verify shard ``path``: ``("ok", "")``, ``("missing", "")`` or ``("damaged", reason)``.

    Missing = neither the shard nor its sidecar exists (not computed yet). Damaged = anything
    else that is not a finished, intact shard of this place in the plan: no sidecar (a write
    that did not finish, or a file copied in by hand), a directory or other non-file in place of
    either file, a sidecar that is not JSON or not a shard sidecar, a sidecar recording another
    point/range or (when ``config_sha256`` is given) another config, a size or SHA-256 that
    differs from the sidecar (truncated, extended, bit-flipped, zeroed, replaced), an
    unreadable Parquet footer, or a footer row count that differs from the recorded rows.
    """
    path = Path(path)
    side = sidecar_path(path)
    if not os.path.lexists(path) and not os.path.lexists(side):
        return "missing", ""
    reason, doc = read_sidecar(path, side, "shard")
    if reason:
        return "damaged", reason
    fields = ("point", "lo", "hi", "rows", "bytes")
    if (not isinstance(doc, dict) or doc.get("format") != SHARD_FORMAT or doc.get("version") != _SHARD_VERSION
            or not all(isinstance(doc.get(k), int) for k in fields) or not isinstance(doc.get("sha256"), str)):
        return "damaged", f"its sidecar {side.name} is not a synthperf shard sidecar (version {_SHARD_VERSION})"
    key = _shard_key(path)
    if key is not None and (doc["point"], doc["lo"], doc["hi"]) != key:
        return "damaged", (f"its sidecar records point {doc['point']} trials [{doc['lo']}, {doc['hi']}), not "
                           f"point {key[0]} trials [{key[1]}, {key[2]}) (a file copied from another shard)")
    if config_sha256 is not None and doc.get("config_sha256") not in (None, config_sha256):
        return "damaged", "it was written for another config (its sidecar's config_sha256 differs)"
    reason = verify_parquet_payload(path, doc)
    if reason:
        return "damaged", reason
    return "ok", ""


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif os.path.lexists(p):
        p.unlink()


def discard_chunk(path: str | os.PathLike) -> None:
    """Remove shard ``path``, its sidecar and their stale temp files (whatever they are)."""
    path = Path(path)
    for p in (sidecar_path(path), path):  # sidecar first: a crash in between leaves no 'finished' marker
        _remove(p)
        remove_stale_temps(p)


def write_point_config(out: str | os.PathLike, point: int, resolved: dict, grid: dict) -> None:
    """Save the resolved config beside the point's results; refuse to mix configs in one OUT.

    The config includes the chunking (``chunk_trials`` / ``chunk_size``), so a second run with
    another chunking on the same ``out`` is refused here (its shards would overlap this run's).
    """
    path = point_dir(out, point) / "config.yaml"
    doc = {"grid": grid, "config": resolved}
    if os.path.lexists(path):
        old = read_point_config(path)
        if old != doc:
            diff = sorted(k for k in set(old.get("config", {})) | set(resolved)
                          if old.get("config", {}).get(k) != resolved.get(k))
            raise ValueError(f"{out} already holds results of another config for grid point {point} "
                             f"(keys differing: {diff or ['grid']}); use a new -o directory")
        return
    atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False).encode("utf-8"))


def read_point_config(path: str | os.PathLike) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"corrupt point config {path}: {exc}") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt point config {path}: {exc}") from None
    if not isinstance(doc, dict) or "config" not in doc:
        raise ValueError(f"corrupt point config {path}: expected a mapping with a 'config' key")
    return doc


def chunk_files(out: str | os.PathLike) -> list[Path]:
    """Finished shard files of a run (those with a sidecar), in (point, trial) order; temporaries are ignored.

    This lists what is on disk, plan or not; :func:`load_results` reads only the run's plan.
    """
    return sorted(p for p in Path(out).glob("points/p*/chunks/trials_*.parquet")
                  if not p.name.startswith(".") and sidecar_path(p).is_file())


def planned_chunks(out: str | os.PathLike) -> list[tuple[int, int, int]] | None:
    """The chunk plan ``[(point, lo, hi), ...]`` recorded in ``OUT/run.yaml``; ``None`` if none is recorded."""
    path = Path(out) / "run.yaml"
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    plan = doc.get("chunks") if isinstance(doc, dict) else None
    if not isinstance(plan, list):
        return None
    try:
        return [(int(p), int(lo), int(hi)) for p, lo, hi in plan]
    except (TypeError, ValueError):
        raise ValueError(f"corrupt run file {path}: its 'chunks' entry must list [point, lo, hi] triples") from None


def strays(out: str | os.PathLike, plan: Iterable[tuple[int, int, int]]) -> list[Path]:
    """Shard-like files under ``out`` that are not in ``plan`` (copies, another chunking)."""
    wanted = {chunk_path(out, *k) for k in plan}
    return sorted(p for p in Path(out).glob("points/p*/chunks/trials_*.parquet")
                  if not p.name.startswith(".") and p not in wanted)


def load_results(out: str | os.PathLike, *, with_config: bool = False
                 ) -> pd.DataFrame | tuple[pd.DataFrame, dict[int, dict[str, object]]]:
    """All finished chunks of run directory ``out`` as one pandas DataFrame.

    With a chunk plan in ``run.yaml`` (every run since shards have sidecars) exactly the
    plan's chunks are read, each verified by :func:`check_chunk`: a damaged one raises
    ``ValueError`` naming it (re-run ``synthperf run`` to recompute it), a missing one is
    skipped (a partial run), files outside the plan are ignored with one warning. Without a
    plan (an older run or loose shards) every shard file is read, verified when it has a sidecar.

    Rows keep the runner's order within a chunk; chunks are ordered by (point, first trial).
    Columns include ``point``, ``trial`` and ``seed`` (plus one column per grid key). With
    ``with_config`` also returns ``{point: resolved config}``.
    """
    import pandas as pd

    root = Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"results directory {str(root)!r} does not exist")
    plan = planned_chunks(root)
    if plan is None:
        files = sorted(p for p in root.glob("points/p*/chunks/trials_*.parquet") if not p.name.startswith("."))
        files = [f for f in files if sidecar_path(f).exists() or f.is_file()]
    else:
        extra = strays(root, plan)
        if extra:
            log.warning("%s: ignoring %d file(s) that are not in this run's chunk plan, e.g. %s",
                        root, len(extra), extra[0])
        files = [chunk_path(root, *k) for k in sorted(plan)]
    frames = []
    for f in files:
        status, reason = check_chunk(f) if (plan is not None or os.path.lexists(sidecar_path(f))) else ("ok", "")
        if status == "missing":
            continue
        if status == "damaged":
            raise ValueError(f"corrupt result chunk {f}: {reason}; re-run `synthperf run` on {root} to recompute it")
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ValueError(f"corrupt result chunk {f}: {exc}") from None
    if not frames:
        raise FileNotFoundError(f"{root} holds no result chunks (points/p*/chunks/*.parquet)")
    df = pd.concat(frames, ignore_index=True)
    if not with_config:
        return df
    configs = {int(p.parent.name[1:]): read_point_config(p)["config"] for p in sorted(root.glob("points/p*/config.yaml"))}
    return df, configs
