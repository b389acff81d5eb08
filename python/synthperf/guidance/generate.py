"""Resumable, sharded generation of a plan (``synthperf guidance generate``).

Worker i of W takes the plan rows at positions i mod W (:func:`~.plan.shard`), skips rows
already finished, and for each remaining row writes

- ``<output>.png``: the image (uint8 RGB, ``round(255 x)`` of the [0,1] output), then
- ``<output>.json``: its sidecar (row id, class, prompt, plan seed and the seed of the kept
  image, criterion name and final value, scale, guidance_freq, cfg, steps, size, corrupted,
  regenerated, the PNG's byte size),

each atomically through :func:`synthperf._io.atomic_write_bytes` (a ``.<name>.<random>.tmp``
temp file in the same folder, fsync, then ``os.replace``).
A row is finished when its sidecar parses, names the same row id and seed, and the PNG's size
matches the sidecar. A run killed at any point therefore leaves only finished rows, rows
with a PNG but no sidecar (redone: seeds are deterministic, so the same image is rewritten)
and stray temp files, which the next run of the shard deletes before generating. Nothing
is lost, duplicated or half-written.

Rows are batched (``batch_size``) among consecutive pending rows sharing (steps, size, cfg,
guidance_freq); criterion, scale, class and seed vary per row inside a batch. Each row's
noise comes from its own seed, so batching never changes an image (see the pipeline).

Executors (:func:`run_generation`): ``local`` (in-process, or ``processes`` > 1 spawned
workers), ``slurm`` (a submitit job array, one task per shard) and ``ray`` (one remote task
per shard), through :func:`synthperf._parallel.execute`.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import _io
from .._io import atomic_write_bytes
from .._lock import RunLock
from .._parallel import EXECUTORS, execute
from .plan import PlanRow, read_plan, shard

SIDECAR_VERSION = 2  # 2: the sidecar records the PNG's SHA-256


def resolve_output(row: PlanRow, base_dir: Path) -> Path:
    """``base_dir / row.output_path``; a path that is absolute or climbs out of ``base_dir`` (``..``)
    raises ValueError (the plan reader refuses them first; this is the second check)."""
    p = Path(row.output_path)
    if p.is_absolute() or p.drive or ".." in p.parts:
        raise ValueError(f"row {row.row_id}: output_path must be a relative path inside the output folder, "
                         f"got {row.output_path!r}")
    return Path(base_dir) / p


def sidecar_path(png: Path) -> Path:
    return png.with_suffix(".json")


def is_finished(row: PlanRow, png: Path) -> bool:
    """Sidecar valid for this row (same row id and plan seed) and the PNG has the recorded size and
    SHA-256 (a bit-flipped, zeroed or swapped image is regenerated, never reused; a sidecar from
    before version 2, without the hash, does not vouch for its image)."""
    side = sidecar_path(png)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if not (meta.get("row_id") == row.row_id and meta.get("seed") == row.seed
                and png.stat().st_size == meta.get("png_bytes") and isinstance(meta.get("png_sha256"), str)):
            return False
        return hashlib.sha256(png.read_bytes()).hexdigest() == meta["png_sha256"]
    except (OSError, ValueError, AttributeError):
        return False


def remove_stale_temps(png: Path) -> int:
    """Delete leftover temp files of this row's PNG and sidecar (from a killed run); returns how many."""
    return _io.remove_stale_temps(png) + _io.remove_stale_temps(sidecar_path(png))


def png_bytes(image01) -> bytes:
    """(3, H, W) float tensor in [0, 1] -> PNG bytes (uint8, round(255 x), as diffusers' numpy_to_pil)."""
    import numpy as np
    from PIL import Image

    arr = image01.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray((arr * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class GenerateJob:
    """One shard of a plan: picklable, so any executor can run it (:func:`run_job`)."""

    plan: str
    worker: int
    workers: int
    model_dir: str
    classifier: str | None = None
    hardness: str | None = None
    custom_criteria: str | None = None     # "package.module:attribute" -> {name: callable}
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 1
    compile: str = ""                      # "" = eager, else a torch.compile backend
    max_sequence_length: int = 512         # FLUX only
    image_size: int | None = None          # saved PNG side (upstream saved 256); None = the model's size


_DTYPES = ("float32", "float16", "bfloat16")


def load_pipeline(job: GenerateJob):
    """The pipeline for ``job`` from LOCAL paths only (ValueError for a missing model folder)."""
    try:
        import torch

        from .pipeline import FeedbackGuidedPipeline
    except ImportError as exc:
        raise ImportError(f"guidance generation needs the 'diffusion' extra (diffusers, transformers): "
                          f"pip install 'synthperf[diffusion]' ({exc})") from None
    if job.dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {job.dtype!r}")
    from .classifiers import ClassifierInfo, load_classifier

    clf, info = (None, ClassifierInfo()) if not job.classifier else load_classifier(job.classifier)
    dtype = getattr(torch, job.dtype)
    # torch_dtype at load time (diffusers keeps its fp32-only modules in fp32); float32 is the default
    kwargs = {} if dtype == torch.float32 else {"torch_dtype": dtype}
    if clf is not None and dtype != torch.float32:
        clf = clf.to(dtype)
    pipe = FeedbackGuidedPipeline.from_local(job.model_dir, classifier=clf, **kwargs).to(job.device)
    return pipe, info


def _custom_criteria(spec: str | None) -> dict | None:
    if not spec:
        return None
    import importlib

    module_name, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr or "CRITERIA")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import custom criteria {spec!r}: {exc}") from None
    if not isinstance(obj, Mapping):
        raise TypeError(f"custom criteria {spec!r} must be a mapping name -> callable, got {type(obj).__name__}")
    return dict(obj)


def _batches(rows: Sequence[PlanRow], batch_size: int) -> list[list[PlanRow]]:
    out: list[list[PlanRow]] = []
    for r in rows:
        key = (r.steps, r.size, r.cfg, r.guidance_freq)
        last = out[-1] if out else None
        if last and len(last) < batch_size and (last[0].steps, last[0].size, last[0].cfg, last[0].guidance_freq) == key:
            last.append(r)
        else:
            out.append([r])
    return out


def generate_rows(pipe, rows: Sequence[PlanRow], base_dir: Path, *, info: Any = None, hardness=None,
                  custom_criteria: Mapping | None = None, batch_size: int = 1, compile: str = "",
                  max_sequence_length: int = 512, image_size: int | None = None) -> dict[str, int]:
    """Generate the unfinished ``rows`` with ``pipe``; returns counts (done, skipped, corrupted, stale_temps).

    ``image_size``: resize each image to image_size x image_size (bicubic, after the criterion is
    computed, as upstream saved its 256 x 256 PNGs); None keeps the generated size."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    from ..progress import track
    from .criteria import resolve_criteria

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # fail before any work on an unknown criterion or missing hardness statistics
    resolve_criteria(sorted({r.criterion for r in rows}), hardness=hardness, custom=custom_criteria)
    counts = {"done": 0, "skipped": 0, "corrupted": 0, "stale_temps": 0}
    pending = []
    for r in rows:
        png = resolve_output(r, base_dir)
        counts["stale_temps"] += remove_stale_temps(png)
        if is_finished(r, png):
            counts["skipped"] += 1
        else:
            pending.append(r)
    kw: dict[str, Any] = {}
    if info is not None:
        kw.update(classifier_mean=tuple(info.mean), classifier_std=tuple(info.std), classifier_size=info.size)
    if getattr(pipe, "transformer", None) is not None:  # FLUX family
        kw["max_sequence_length"] = max_sequence_length
    for batch in track(_batches(pending, batch_size), "guidance generate"):
        b0 = batch[0]
        out = pipe([r.prompt for r in batch], [r.class_id for r in batch], seeds=[r.seed for r in batch],
                   criterion=[r.criterion for r in batch], fg_scale=[r.scale for r in batch],
                   guidance_freq=b0.guidance_freq, guidance_scale=b0.cfg, num_inference_steps=b0.steps,
                   height=b0.size, width=b0.size, hardness=hardness, custom_criteria=custom_criteria,
                   compile=compile or False, **({"image_size": image_size} if image_size else {}), **kw)
        for j, r in enumerate(batch):
            png = resolve_output(r, base_dir)
            png.parent.mkdir(parents=True, exist_ok=True)
            data = png_bytes(out.images[j])
            atomic_write_bytes(png, data)
            value = float(out.criterion[j])
            meta = {"version": SIDECAR_VERSION, **asdict(r), "image": png.name, "png_bytes": len(data),
                    "png_sha256": hashlib.sha256(data).hexdigest(),
                    "kept_seed": int(out.seeds[j]), "criterion_value": value if math.isfinite(value) else None,
                    "corrupted": bool(out.corrupted[j]), "regenerated": bool(out.regenerated[j])}
            atomic_write_bytes(sidecar_path(png), json.dumps(meta, indent=1).encode("utf-8"))
            counts["done"] += 1
            counts["corrupted"] += int(meta["corrupted"])
    return counts


def run_job(job: GenerateJob) -> str:
    """Run one shard end to end; returns a JSON summary (worker, rows, done, skipped, corrupted)."""
    plan_path = Path(job.plan)
    rows = shard(read_plan(plan_path), job.worker, job.workers)
    hardness = None
    if job.hardness:
        from .criteria import HardnessCriterion

        hardness = HardnessCriterion.load(job.hardness)
    custom = _custom_criteria(job.custom_criteria)
    base = plan_path.resolve().parent
    # one writer per shard: a second process on the same shard is refused (OutputLockedError naming
    # the folder and the holder); the shards of one plan still run side by side
    with RunLock(base / ".synthperf-locks" / f"shard{job.worker}of{job.workers}"):
        pipe, info = load_pipeline(job)
        counts = generate_rows(pipe, rows, base, info=info if job.classifier else None,
                               hardness=hardness, custom_criteria=custom, batch_size=job.batch_size,
                               compile=job.compile, max_sequence_length=job.max_sequence_length,
                               image_size=job.image_size)
    return json.dumps({"worker": job.worker, "workers": job.workers, "rows": len(rows), **counts})


def run_generation(job: GenerateJob, *, executor: str = "local", workers: int = 1, shards: Sequence[int] | None = None,
                   processes: int = 1, address: str | None = None, log_dir: str | Path | None = None,
                   slurm: Mapping[str, object] | None = None) -> list[dict[str, object]]:
    """Run shards ``shards`` (default all of 0..workers-1) of ``job``'s plan with an executor.

    ``local`` runs them in this process (``processes == 1``) or in spawned processes; ``slurm``
    submits one array task per shard (submitit; ``slurm={"cluster": "local"}`` runs locally);
    ``ray`` one remote call per shard (``address`` of a cluster, else a local Ray).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    shard_ids = list(range(workers)) if shards is None else list(shards)
    jobs = [GenerateJob(**{**asdict(job), "worker": i, "workers": workers}) for i in shard_ids]
    for j in jobs:  # validate the split before submitting anything
        shard([], j.worker, j.workers)
    concurrency = processes if executor == "local" else max(1, len(jobs))
    out = execute(jobs, run_job, executor=executor, workers=concurrency, address=address, log_dir=log_dir,
                  slurm=slurm, desc="guidance shards")
    return [json.loads(s) for s in out]
