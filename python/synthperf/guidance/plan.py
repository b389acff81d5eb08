"""Generation plans: one CSV row per image to generate (spec §5, the ``generate_csvs_offline`` scheme).

Columns (:data:`PLAN_COLUMNS`, in this order):

================  ==================================================================
``row_id``        global running integer (upstream ``img_id``), unique
``class_id``      target class y (int >= 0)
``class_name``    human-readable class name
``prompt``        text prompt (``prompt_template`` filled with ``name`` / ``id``)
``seed``          per-row seed, ``seed_base + row_id`` (upstream's are random and unlogged)
``criterion``     ``loss`` / ``entropy`` / ``hardness`` / a custom name
``scale``         fg_scale w (0 = unguided)
``guidance_freq`` guide every guidance_freq-th step
``cfg``           classifier-free guidance weight (SD) / distilled guidance (FLUX)
``steps``         num_inference_steps
``size``          generated height = width in pixels
``output_path``   ``<output_dir>/<class folder>/<row_id:07d>.png``, relative: resolved
                  against the plan file's folder at generation time; absolute paths and
                  ``..`` components are refused (issue 17), so a plan cannot write outside
                  its folder
================  ==================================================================

``prompt_template`` (:func:`build_plan`) may hold only the plain placeholders ``{name}`` and
``{id}``: attribute or index access (``{name.__class__}``, ``{name[0]}``), conversions and
format specs are refused, so a template cannot reach into Python objects.

Upstream's schema (spec §5, ``generate_csvs_offline.py``'s ``fakes.csv``) is read too
(:data:`UPSTREAM_COLUMNS`): ``img_id`` -> row_id, ``cls_index`` -> class_id, ``cls_name``
(else ``full_text``) -> class_name, ``prompt``, ``fg_criterion`` -> criterion, ``fg_scale`` ->
scale, ``cfg``; ``image_save_path`` = ``<output_dir>/<wnid>/<img_id>.png`` becomes
``<wnid>/<img_id>.png`` relative to the plan's folder (upstream's ``output_dir`` is the folder
holding ``fakes.csv``; only the last two components are kept, each checked to be one plain
name). Upstream logs no seed, step count, size or guidance frequency: rows get
``seed = seed_base + row_id`` and upstream's defaults ``guidance_freq=5``, ``steps=30``,
``size=512`` (keywords of :func:`read_plan`). ``class_folder_name``, ``count_per_cls``,
``cls_directory`` and a pandas index column are checked for consistency or ignored.

Rows per class (the long-tail top-up, spec §5): ``max(target - count_c, min_per_class)``
where ``count_c`` is the number of real images of class c from a class-count JSON (0 when
no counts are given, so every class gets ``target`` rows). Upstream used target 1300 with
``min_per_class=1`` (ImageNet-LT); the default here is 0, an exact top-up.

This module needs only the standard library (the CLI's ``plan`` runs without diffusers).
"""
from __future__ import annotations

import csv
import io
import json
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

PLAN_COLUMNS: tuple[str, ...] = ("row_id", "class_id", "class_name", "prompt", "seed", "criterion", "scale",
                                 "guidance_freq", "cfg", "steps", "size", "output_path")
MAX_SEED = 2 ** 63
#: upstream's ``fakes.csv`` columns (spec §5), as written by ``generate_csvs_offline.py``.
UPSTREAM_COLUMNS: tuple[str, ...] = ("prompt", "cls_name", "full_text", "class_folder_name", "img_id", "cfg",
                                     "fg_criterion", "fg_scale", "cls_index", "image_save_path", "count_per_cls",
                                     "cls_directory")
#: upstream column -> ours; these are required in an upstream plan.
UPSTREAM_TO_OURS: dict[str, str] = {"img_id": "row_id", "cls_index": "class_id", "prompt": "prompt",
                                    "fg_criterion": "criterion", "fg_scale": "scale", "cfg": "cfg",
                                    "image_save_path": "output_path"}
_PANDAS_INDEX = ("", "Unnamed: 0")
TEMPLATE_FIELDS = ("name", "id")


@dataclass(frozen=True)
class ClassEntry:
    """One class: id, name, real-image count, output folder name."""

    class_id: int
    name: str
    count: int = 0
    folder: str = ""


@dataclass(frozen=True)
class PlanRow:
    """One parsed plan row (types as in :data:`PLAN_COLUMNS`)."""

    row_id: int
    class_id: int
    class_name: str
    prompt: str
    seed: int
    criterion: str
    scale: float
    guidance_freq: int
    cfg: float
    steps: int
    size: int
    output_path: str

    def as_csv(self) -> dict[str, str]:
        return {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in self.__dict__.items()}


def _nonneg_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _positive_ints(**values: object) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def load_class_info(path: str | Path, class_names: Sequence[str] | None = None) -> list[ClassEntry]:
    """Read a class-count JSON: ``{"<id>": <count>}`` or ``{"<id>": {"count": n, "text"|"name": ...,
    "cls_folder"|"folder": ...}}`` (the upstream ``imagenet_info.json`` layout). ``class_names``
    (indexed by id) fills names the file lacks. Raises ValueError naming the bad key."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"class-count file {str(path)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"class-count file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"class-count file {str(path)!r} must hold a non-empty JSON object keyed by class id")
    out = []
    for key, value in data.items():
        try:
            cid = int(key)
        except ValueError:
            raise ValueError(f"class-count file key {key!r} is not an integer class id") from None
        if cid < 0:
            raise ValueError(f"class-count file key {key!r} is negative")
        name, folder = "", ""
        if isinstance(value, dict):
            count = value.get("count", 0)
            name = str(value.get("text") or value.get("name") or "")
            folder = str(value.get("cls_folder") or value.get("folder") or "")
        else:
            count = value
        _nonneg_int(count, f"count of class {key!r}")
        if not name and class_names is not None and cid < len(class_names):
            name = class_names[cid]
        out.append(ClassEntry(cid, name or str(cid), count, folder))
    return sorted(out, key=lambda c: c.class_id)


def classes_from_names(names: Sequence[str]) -> list[ClassEntry]:
    """Classes 0..K-1 named ``names`` with no real images (count 0)."""
    if not names:
        raise ValueError("class_names is empty: give at least one class")
    return [ClassEntry(i, str(n).strip(), 0, "") for i, n in enumerate(names)]


def _folder(c: ClassEntry) -> str:
    folder = c.folder or f"{c.class_id:04d}"
    if folder in (".", "..") or "/" in folder or "\\" in folder:
        raise ValueError(f"class {c.class_id}: folder {folder!r} must be a single path component")
    return folder


def build_plan(classes: Sequence[ClassEntry], *, target: int, output_dir: str, min_per_class: int = 0,
               criterion: str = "entropy", scale: float = 0.03, guidance_freq: int = 5, cfg: float = 5.0,
               steps: int = 30, size: int = 512, seed_base: int = 0, prompt_template: str = "{name}") -> list[PlanRow]:
    """Rows for every class: ``max(target - count, min_per_class)`` each, row ids 0, 1, ... in class order."""
    _nonneg_int(target, "target")
    _nonneg_int(min_per_class, "min_per_class")
    _nonneg_int(seed_base, "seed_base")
    _positive_ints(guidance_freq=guidance_freq, steps=steps, size=size)
    for name, v in (("scale", scale), ("cfg", cfg)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not isinstance(criterion, str) or not criterion:
        raise ValueError(f"criterion must be a non-empty name, got {criterion!r}")
    ids = [c.class_id for c in classes]
    if len(set(ids)) != len(ids):
        raise ValueError("class ids must be unique")
    check_prompt_template(prompt_template)
    if not isinstance(output_dir, str) or not output_dir:
        raise ValueError(f"output_dir must be a non-empty relative path, got {output_dir!r}")
    _relative_inside(output_dir.rstrip("/\\") or output_dir, "output_dir")
    rows: list[PlanRow] = []
    for c in classes:
        prompt = prompt_template.format(name=c.name, id=c.class_id)
        folder = _folder(c)
        for _ in range(max(target - c.count, min_per_class)):
            rid = len(rows)
            if seed_base + rid >= MAX_SEED:
                raise ValueError(f"seed_base + row_id exceeds 2**63 - 1 at row {rid}")
            rows.append(PlanRow(rid, c.class_id, c.name, prompt, seed_base + rid, criterion, float(scale),
                                guidance_freq, float(cfg), steps, size, f"{output_dir}/{folder}/{rid:07d}.png"))
    return rows


def check_prompt_template(template: object) -> str:
    """``template`` if it holds only plain ``{name}`` / ``{id}`` placeholders (``{{``/``}}``
    escapes allowed); ValueError naming ``prompt_template`` otherwise: attribute or index
    access (``{name.__class__}``, ``{name[0]}``), positional ``{}``, conversions (``!r``),
    format specs (``:>10``) and unknown fields (module docstring)."""
    if not isinstance(template, str):
        raise TypeError(f"prompt_template must be a string, got {type(template).__name__}")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"prompt_template {template!r} is not a valid template: {exc}") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or conversion or spec:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"prompt_template {template!r} may use only the plain placeholders {{name}} and {{id}}, "
                             f"got {shown!r} (no attribute/index access, conversion or format spec)")
    return template


def _relative_inside(value: str, what: str) -> str:
    """``value`` if it is a relative path with no ``..`` component; ValueError naming ``what``."""
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\", "~")) or (len(value) > 1 and value[0].isalpha() and value[1] == ":"):
        raise ValueError(f"{what} must be a relative path inside the plan's folder, got the absolute path {value!r}")
    if ".." in parts:
        raise ValueError(f"{what} must stay inside the plan's folder, got {value!r} (a '..' component escapes it)")
    return value


def write_plan(rows: Iterable[PlanRow], path: str | Path) -> Path:
    """Write the CSV atomically (:func:`synthperf._io.atomic_write`: a row that fails to
    serialise leaves ``path`` untouched and no temp file)."""
    from .._io import atomic_write

    def _write(fh) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        w = csv.DictWriter(text, fieldnames=PLAN_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow(r.as_csv())
        text.flush()
        text.detach()  # leave the binary file open for atomic_write's fsync

    return atomic_write(path, _write)


_PARSERS = {"row_id": int, "class_id": int, "class_name": str, "prompt": str, "seed": int, "criterion": str,
            "scale": float, "guidance_freq": int, "cfg": float, "steps": int, "size": int, "output_path": str}


def read_plan(path: str | Path, *, seed_base: int = 0, guidance_freq: int = 5, steps: int = 30,
              size: int = 512) -> list[PlanRow]:
    """Parse and validate a plan CSV, ours (:data:`PLAN_COLUMNS`) or upstream's ``fakes.csv``
    (:data:`UPSTREAM_COLUMNS`, mapped as in the module docstring; ``seed_base``,
    ``guidance_freq``, ``steps`` and ``size`` fill what upstream does not log and are unused
    for our schema). Raises ValueError for a missing file, unknown or missing columns, a bad
    value (naming the line, row and column), an ``output_path`` that is absolute or escapes the
    plan's folder, duplicate row ids or output paths."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"plan file {str(path)!r} does not exist")
    _nonneg_int(seed_base, "seed_base")
    _positive_ints(guidance_freq=guidance_freq, steps=steps, size=size)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            if len(set(header)) != len(header):
                raise ValueError(f"plan {str(path)!r} repeats a column: {header}")
            upstream = "img_id" in header or "image_save_path" in header
            columns = UPSTREAM_COLUMNS + _PANDAS_INDEX if upstream else PLAN_COLUMNS
            required = tuple(UPSTREAM_TO_OURS) if upstream else PLAN_COLUMNS
            unknown = [c for c in header if c not in columns]
            missing = [c for c in required if c not in header]
            schema = "upstream's fakes.csv columns" if upstream else "the plan columns"
            if unknown:
                raise ValueError(f"plan {str(path)!r} has unknown columns {unknown}; expected {schema} "
                                 f"{list(columns if upstream else PLAN_COLUMNS)}")
            if missing:
                raise ValueError(f"plan {str(path)!r} lacks columns {missing}; expected {schema} "
                                 f"{list(UPSTREAM_COLUMNS if upstream else PLAN_COLUMNS)}")
            fill = dict(seed_base=seed_base, guidance_freq=guidance_freq, steps=steps, size=size)
            rows = [(_from_upstream(raw, reader.line_num, path, fill) if upstream else
                     _parse_row(raw, reader.line_num, path)) for raw in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"plan {str(path)!r} is not a readable CSV: {exc}") from None
    seen_ids: set[int] = set()
    seen_out: set[str] = set()
    id_col, out_col = ("img_id", "image_save_path") if upstream else ("row_id", "output_path")
    for r in rows:
        if r.row_id in seen_ids:
            raise ValueError(f"plan {str(path)!r}: {id_col} {r.row_id} appears twice")
        if r.output_path in seen_out:
            raise ValueError(f"plan {str(path)!r}: {out_col} {r.output_path!r} appears twice")
        seen_ids.add(r.row_id)
        seen_out.add(r.output_path)
    return rows


def _from_upstream(raw: dict, line: int, path: str | Path, fill: dict[str, int]) -> PlanRow:
    """One upstream ``fakes.csv`` row as our columns (module docstring), then :func:`_parse_row`."""
    if None in raw or any(v is None for v in raw.values()):
        raise ValueError(f"plan {str(path)!r} line {line}: wrong number of fields")
    where = f"plan {str(path)!r} line {line} (img_id {raw['img_id']!r})"
    save = raw["image_save_path"].replace("\\", "/").rstrip("/")
    parts = save.split("/")
    if len(parts) < 2 or any(q in ("", ".", "..") for q in parts[-2:]):
        raise ValueError(f"{where}: column 'image_save_path' must end in <class folder>/<img_id>.png, got "
                         f"{raw['image_save_path']!r}")
    folder, name = parts[-2], parts[-1]
    if raw.get("class_folder_name") and raw["class_folder_name"] != folder:
        raise ValueError(f"{where}: column 'image_save_path' {raw['image_save_path']!r} is not inside "
                         f"class_folder_name {raw['class_folder_name']!r}")
    try:
        rid = int(raw["img_id"])
    except ValueError:
        raise ValueError(f"{where}: column 'img_id' must be int, got {raw['img_id']!r}") from None
    seed = fill["seed_base"] + rid if rid >= 0 else 0
    ours = {"row_id": raw["img_id"], "class_id": raw["cls_index"],
            "class_name": raw.get("cls_name") or raw.get("full_text") or raw["cls_index"], "prompt": raw["prompt"],
            "seed": str(seed), "criterion": raw["fg_criterion"], "scale": raw["fg_scale"], "cfg": raw["cfg"],
            "guidance_freq": str(fill["guidance_freq"]), "steps": str(fill["steps"]), "size": str(fill["size"]),
            "output_path": f"{folder}/{name}"}
    return _parse_row(ours, line, path, names={v: k for k, v in UPSTREAM_TO_OURS.items()})


def _parse_row(raw: dict, line: int, path: str | Path, names: dict[str, str] | None = None) -> PlanRow:
    """``raw`` in our columns; ``names`` maps our column to the file's (upstream) for messages."""
    if None in raw or any(v is None for v in raw.values()):
        raise ValueError(f"plan {str(path)!r} line {line}: wrong number of fields")
    vals: dict[str, Any] = {}
    for col, parse in _PARSERS.items():
        text = raw[col]
        try:
            v = parse(text)
        except ValueError:
            raise ValueError(f"plan {str(path)!r} line {line}: column {(names or {}).get(col, col)!r} must be "
                             f"{parse.__name__}, got {text!r}") from None
        vals[col] = v
    shown = {col: (names or {}).get(col, col) for col in _PARSERS}
    for col in ("row_id", "class_id", "seed"):
        if vals[col] < 0:
            raise ValueError(f"plan {str(path)!r} line {line}: column {shown[col]!r} must be >= 0, got {vals[col]}")
    if vals["seed"] >= MAX_SEED:
        raise ValueError(f"plan {str(path)!r} line {line}: seed must be < 2**63, got {vals['seed']}")
    for col in ("guidance_freq", "steps", "size"):
        if vals[col] < 1:
            raise ValueError(f"plan {str(path)!r} line {line}: column {shown[col]!r} must be >= 1, got {vals[col]}")
    for col in ("scale", "cfg"):
        if not math.isfinite(vals[col]):
            raise ValueError(f"plan {str(path)!r} line {line}: column {shown[col]!r} must be finite, got {raw[col]!r}")
    for col in ("criterion", "output_path"):
        if not vals[col]:
            raise ValueError(f"plan {str(path)!r} line {line}: column {shown[col]!r} is empty")
    out_col = shown["output_path"]
    if not vals["output_path"].endswith(".png"):
        raise ValueError(f"plan {str(path)!r} line {line}: {out_col} must end in .png, got {vals['output_path']!r}")
    _relative_inside(vals["output_path"], f"plan {str(path)!r} line {line} (row_id {vals['row_id']}): "
                                          f"column {out_col!r}")
    return PlanRow(**vals)


def shard(rows: Sequence[PlanRow], worker: int, workers: int) -> list[PlanRow]:
    """Rows at positions i with i % workers == worker (the ``--worker i --workers W`` split)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if isinstance(worker, bool) or not isinstance(worker, int) or not 0 <= worker < workers:
        raise ValueError(f"worker must be an integer in [0, {workers}), got {worker!r}")
    return [r for i, r in enumerate(rows) if i % workers == worker]
