"""``synthperf guidance`` commands: plan | generate | train-digits | digits-diffusion | longtail.

- ``plan OUT.csv --output-dir DIR --target N [--class-counts counts.json | --class-names a,b,...]``
  writes one row per image (see :mod:`synthperf.guidance.plan`): with a class-count JSON it tops
  every class up to N real+synthetic images (the ImageNet-LT setting, spec §5).
- ``generate --plan plan.csv --model-dir LOCAL_DIR [--worker i] --workers W`` generates the rows
  at positions i mod W, skipping finished ones, and writes PNG + JSON sidecar atomically (a
  killed run resumes; :mod:`synthperf.guidance.generate`). Without ``--worker`` every shard
  runs through ``--executor local|slurm|ray``.
- ``train-digits --out DIR`` trains the embedded digits default classifier (scikit-learn
  digits, SmallResNet) and fits its hardness statistics.
- ``digits-diffusion --out DIR --budget demo|full --seeds 0,1,2`` trains the class-conditional
  pixel diffusion model on the CAS train half of the digits and reports CAS per seed.
- ``longtail --out DIR --seeds 0,1,2`` runs the long-tailed top-up experiment
  (:mod:`synthperf.guidance.longtail`): results.csv, summary.csv, longtail.png/.pdf.

Models load only from local folders (``from_pretrained(local_dir, local_files_only=True)``).
This module imports only typer and the standard library: ``plan`` runs without diffusers, and
``generate`` reports the missing ``diffusion`` extra when it runs. Bad input exits with status
2 and a message naming the option; a missing extra exits with status 1.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from .._cli_errors import user_errors

app = typer.Typer(help="Feedback-guided synthesis: generation plans, sharded resumable generation.",
                  no_args_is_help=True, add_completion=False)

@app.command("plan")
@user_errors
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
@user_errors
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
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Save PNGs resized to N x N (bicubic; "
                                             "upstream saved 256). Default: the generated size."),
    executor: str = typer.Option("local", "--executor", help="local | slurm | ray (without --worker)."),
    processes: int = typer.Option(1, "--processes", help="local executor: parallel processes."),
    address: Optional[str] = typer.Option(None, "--address", help="ray: cluster address."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="slurm: submitit log folder."),
    slurm: List[str] = typer.Option([], "--slurm", help="slurm: KEY=VALUE (repeatable: gpus, mem, time, account, partition, "
                                    "...; cpus_per_task defaults to the thread setting; cluster=local runs the "
                                    "array locally)."),
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
                      compile=compile_backend, max_sequence_length=max_sequence_length, image_size=image_size)
    if worker is not None:
        shard([], worker, workers)
        if executor != "local":
            raise ValueError("--worker runs one shard in this process; drop it to use --executor slurm|ray")
        summaries = [json.loads(run_job(job))]
    else:
        from .._parallel import device_resources, local_gpu_count, resource_defaults, slurm_cli_options

        gpus = device_resources(device)
        if gpus and executor == "ray" and address is None and local_gpu_count() == 0:
            raise ValueError(f"--device {device} with a local Ray asks for a GPU, and this machine has none "
                             "(pass --address of a cluster with GPUs, or --device cpu)")
        with resource_defaults(gpus or None):
            summaries = run_generation(job, executor=executor, workers=workers, processes=processes,
                                       address=address, log_dir=log_dir,
                                       slurm=slurm_cli_options(slurm) if slurm or executor == "slurm" else {})
    for s in summaries:
        typer.echo(f"worker {s['worker']}/{s['workers']}: {s['rows']} rows, {s['done']} generated, "
                   f"{s['skipped']} already finished, {s['corrupted']} corrupted")


@app.command("train-digits")
@user_errors
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


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return seeds


@app.command("digits-diffusion")
@user_errors
def digits_diffusion_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the trained diffusers model(s) and samples."),
    budget: str = typer.Option("demo", "--budget", help="demo | full | tiny (see synthperf.guidance.digits.PRESETS)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds; one model per seed."),
    per_class: int = typer.Option(100, "--per-class", help="Synthetic images per class for CAS."),
) -> None:
    """Train the class-conditional digits diffusion model on the CAS train half; report CAS per seed."""
    import numpy as np

    from .digits import make_digits_synthetic
    from .longtail import cas_score, digits_split

    x_tr, y_tr, x_te, y_te = digits_split()
    cas = []
    for seed in _seed_list(seeds):
        xs, ys, info = make_digits_synthetic(x_tr, y_tr, per_class, out_dir=out, seed=seed, budget=budget)
        cas.append(cas_score(xs, ys, x_te, y_te, seed=seed))
        typer.echo(f"seed {seed}: CAS {cas[-1]:.4f}  train {info['train_seconds']:.1f}s  sample "
                   f"{info['sample_seconds']:.1f}s  model {info['model_dir']}")
    if len(cas) > 1:
        typer.echo(f"CAS mean {np.mean(cas):.4f} +- {np.std(cas, ddof=1) / np.sqrt(len(cas)):.4f} (SE, "
                   f"{len(cas)} seeds), median {np.median(cas):.4f}")


@app.command("longtail")
@user_errors
def longtail_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for models, results.csv, summary.csv, longtail.png/.pdf."),
    seeds: str = typer.Option("0,1,2", "--seeds"),
    budget: str = typer.Option("demo", "--budget", help="Diffusion preset: demo | full | tiny."),
    fg_scale: float = typer.Option(0.02, "--fg-scale", help="w for every criterion."),
    guidance_freq: int = typer.Option(5, "--guidance-freq", help="Guide when step i % F == 0."),
    generator_data: str = typer.Option("longtail", "--generator-data", help="longtail | balanced."),
    evaluator: str = typer.Option("resnet", "--evaluator", help="resnet | mlp (downstream classifier)."),
    n_minority: int = typer.Option(8, "--n-minority", help="Images kept per minority class."),
    n_minority_classes: int = typer.Option(3, "--n-minority-classes"),
    classifier_epochs: int = typer.Option(15, "--classifier-epochs"),
) -> None:
    """Long-tailed digits: real-only vs unguided vs feedback-guided top-up (minority/overall accuracy +- SE)."""
    from .._io import atomic_write_bytes
    from .longtail import paired_difference, plot_longtail, run_longtail_experiment, summarize_longtail

    df = run_longtail_experiment(seeds=_seed_list(seeds), out_dir=out, budget=budget, fg_scale=fg_scale,
                                 guidance_freq=guidance_freq, generator_data=generator_data, evaluator=evaluator,
                                 n_minority=n_minority, n_minority_classes=n_minority_classes,
                                 classifier_epochs=classifier_epochs)
    summary = summarize_longtail(df)
    atomic_write_bytes(out / "results.csv", df.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(out / "summary.csv", summary.to_csv(index=False).encode("utf-8"))
    plot_longtail(df, out / "longtail")
    typer.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for arm in ("loss", "entropy", "hardness"):
        if arm in set(df["arm"]) and "unguided" in set(df["arm"]):
            m, se, n = paired_difference(df, arm)
            verdict = "beats" if m - 2 * se > 0 else ("is worse than" if m + 2 * se < 0 else "does not beat")
            typer.echo(f"{arm} - unguided, minority accuracy: {m:+.4f} +- {se:.4f} (SE, {n} seeds): "
                       f"{arm} guidance {verdict} unguided at 2 SE")
    typer.echo(f"wrote {out / 'results.csv'}, {out / 'summary.csv'}, {out / 'longtail.png'} and .pdf")
