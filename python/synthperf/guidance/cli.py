"""``synthperf guidance`` commands: plan | generate | train-digits.

- ``plan OUT.csv --output-dir DIR --target N [--class-counts counts.json | --class-names a,b,...]``
  writes one row per image (see :mod:`synthperf.guidance.plan`): with a class-count JSON it tops
  every class up to N real+synthetic images (the ImageNet-LT setting, spec §5).
- ``generate --plan plan.csv --model-dir LOCAL_DIR [--worker i] --workers W`` generates the rows
  at positions i mod W, skipping finished ones, and writes PNG + JSON sidecar atomically (a
  killed run resumes; :mod:`synthperf.guidance.generate`). Without ``--worker`` every shard
  runs through ``--executor local|slurm|ray``.
- ``train-digits --out DIR`` trains the embedded digits default classifier (scikit-learn
  digits, SmallResNet) and fits its hardness statistics.

Models load only from local folders (``from_pretrained(local_dir, local_files_only=True)``).
This module imports only typer and the standard library: ``plan`` runs without diffusers, and
``generate`` reports the missing ``diffusion`` extra when it runs. Bad input exits with status
2 and a message naming the option; a missing extra exits with status 1.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(help="Feedback-guided synthesis: generation plans, sharded resumable generation.",
                  no_args_is_help=True, add_completion=False)

# ClickException (exit status 1, "Error: ..."): a base of typer.BadParameter in every typer version.
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _clean_errors(fn):
    """ValueError/TypeError -> usage error (status 2); ImportError (missing extra) -> status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            raise typer.BadParameter(str(exc)) from None
        except ImportError as exc:
            raise _ClickException(str(exc)) from None

    return wrapper


def _parse_kv(items: List[str], option: str) -> dict:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} takes KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("plan")
@_clean_errors
def plan_cmd(
    out: Path = typer.Argument(..., help="Plan CSV to write."),
    output_dir: str = typer.Option(..., "--output-dir", help="Image folder written into output_path "
                                   "(relative paths resolve against the plan's folder)."),
    target: int = typer.Option(..., "--target", help="Images per class: real + synthetic with --class-counts, "
                               "else synthetic rows per class."),
    class_counts: Optional[Path] = typer.Option(None, "--class-counts", help="JSON {id: count} or "
                                                "{id: {count, text, cls_folder}} (imagenet_info.json layout)."),
    class_names: Optional[str] = typer.Option(None, "--class-names", help="Comma-separated names for ids 0..K-1."),
    min_per_class: int = typer.Option(0, "--min-per-class", help="Rows per class at least (upstream: 1)."),
    criterion: str = typer.Option("entropy", "--criterion", help="loss | entropy | hardness | a custom name."),
    scale: float = typer.Option(0.03, "--scale", help="fg_scale w (0 = unguided)."),
    guidance_freq: int = typer.Option(5, "--guidance-freq"),
    cfg: float = typer.Option(5.0, "--cfg", help="CFG weight (SD) / distilled guidance (FLUX)."),
    steps: int = typer.Option(30, "--steps"),
    size: int = typer.Option(512, "--size", help="Generated height = width."),
    seed: int = typer.Option(0, "--seed", help="Row r gets seed + r."),
    prompt_template: str = typer.Option("{name}", "--prompt-template", help="Uses {name} and {id}."),
) -> None:
    """Write a generation plan CSV from per-class target counts."""
    from .plan import build_plan, classes_from_names, load_class_info, write_plan

    names = [n for n in class_names.split(",")] if class_names else None
    if class_counts is not None:
        classes = load_class_info(class_counts, names)
    elif names:
        classes = classes_from_names(names)
    else:
        raise ValueError("give --class-counts (a class-count JSON) or --class-names")
    rows = build_plan(classes, target=target, output_dir=output_dir, min_per_class=min_per_class,
                      criterion=criterion, scale=scale, guidance_freq=guidance_freq, cfg=cfg, steps=steps,
                      size=size, seed_base=seed, prompt_template=prompt_template)
    write_plan(rows, out)
    per = {}
    for r in rows:
        per[r.class_id] = per.get(r.class_id, 0) + 1
    lo = min((per.get(c.class_id, 0) for c in classes), default=0)
    hi = max((per.get(c.class_id, 0) for c in classes), default=0)
    typer.echo(f"wrote {out}: {len(rows)} rows over {len(classes)} classes ({lo}..{hi} per class)")


@app.command("generate")
@_clean_errors
def generate_cmd(
    plan: Path = typer.Option(..., "--plan", help="Plan CSV (synthperf guidance plan)."),
    model_dir: Path = typer.Option(..., "--model-dir", help="LOCAL diffusers folder (SD or FLUX)."),
    worker: Optional[int] = typer.Option(None, "--worker", help="Run only shard i (rows i mod W) here."),
    workers: int = typer.Option(1, "--workers", help="Number of shards W."),
    classifier: Optional[str] = typer.Option(None, "--classifier", help="SmallResNet .safetensors (+.json), "
                                             ".keras/.h5 (scoring only) or package.module:attribute."),
    hardness: Optional[Path] = typer.Option(None, "--hardness", help="Hardness statistics .safetensors."),
    custom_criteria: Optional[str] = typer.Option(None, "--custom-criteria", help="package.module:attribute "
                                                  "mapping criterion names to callables."),
    device: str = typer.Option("cpu", "--device"),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float16 | bfloat16."),
    batch_size: int = typer.Option(1, "--batch-size"),
    compile_backend: str = typer.Option("", "--compile", help="torch.compile backend for the guidance step "
                                        "(e.g. inductor); empty = eager."),
    max_sequence_length: int = typer.Option(512, "--max-sequence-length", help="T5 length (FLUX)."),
    executor: str = typer.Option("local", "--executor", help="local | slurm | ray (without --worker)."),
    processes: int = typer.Option(1, "--processes", help="local executor: parallel processes."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="slurm: submitit log folder."),
    slurm: List[str] = typer.Option([], "--slurm", help="slurm: KEY=VALUE submitit parameter (repeatable; "
                                    "cluster=local runs the array locally)."),
) -> None:
    """Generate (a shard of) a plan: PNG + JSON sidecar per row, atomically; resumes."""
    from .generate import GenerateJob, run_generation, run_job
    from .plan import read_plan, shard

    if not model_dir.is_dir():
        raise ValueError(f"--model-dir {str(model_dir)!r} does not exist (nothing is downloaded; "
                         "pass a local diffusers pipeline folder)")
    read_plan(plan)  # a corrupt plan fails before any model is loaded
    job = GenerateJob(plan=str(plan), worker=worker or 0, workers=workers, model_dir=str(model_dir),
                      classifier=classifier, hardness=str(hardness) if hardness else None,
                      custom_criteria=custom_criteria, device=device, dtype=dtype, batch_size=batch_size,
                      compile=compile_backend, max_sequence_length=max_sequence_length)
    if worker is not None:
        shard([], worker, workers)
        if executor != "local":
            raise ValueError("--worker runs one shard in this process; drop it to use --executor slurm|ray")
        summaries = [json.loads(run_job(job))]
    else:
        summaries = run_generation(job, executor=executor, workers=workers, processes=processes, address=address,
                                   log_dir=log_dir, slurm=_parse_kv(slurm, "--slurm"))
    for s in summaries:
        typer.echo(f"worker {s['worker']}/{s['workers']}: {s['rows']} rows, {s['done']} generated, "
                   f"{s['skipped']} already finished, {s['corrupted']} corrupted")


@app.command("train-digits")
@_clean_errors
def train_digits_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for classifier.safetensors/.json and hardness.safetensors."),
    size: int = typer.Option(16, "--size", help="Classifier input size (digits are upsampled from 8x8)."),
    width: int = typer.Option(8, "--width"),
    epochs: int = typer.Option(15, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the embedded digits default classifier (scikit-learn digits, no download)."""
    from .classifiers import digits_hardness, save_classifier, train_digits_classifier

    model, info = train_digits_classifier(size=size, width=width, epochs=epochs, seed=seed)
    path = save_classifier(model, info, out / "classifier.safetensors")
    digits_hardness(model, info).save(out / "hardness.safetensors")
    typer.echo(f"wrote {path} and {out / 'hardness.safetensors'} (validation accuracy {info.val_accuracy:.3f})")
