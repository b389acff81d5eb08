"""Typer commands ``run``, ``plot`` and ``demo`` (attached at the top level of ``synthperf``).

``run_command``, ``plot_command`` and ``demo_command`` are plain functions with typer
signatures, so the root app can register them with ``app.command("run")(run_command)``;
``app`` is a standalone typer app holding the same three commands.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import typer
import yaml

from .._cli_errors import user_errors
from .config import to_dict

__all__ = ["app", "run_command", "plot_command", "demo_command", "default_run_dir", "run_plan", "slurm_options"]


_MULTIRUN = typer.Option(False, "--multirun", "-m", help="Sweep: key=a,b runs every value (Cartesian product "
                                                          "over the comma lists); without -m a comma list is an error.")
_CFG = typer.Option(None, "--cfg", help="'job': print the resolved config and the grid (YAML) and exit, "
                                        "running nothing (as Hydra's --cfg job; same as --dry-run).")
_DRY = typer.Option(False, "--dry-run", help="Print the resolved config and the grid (YAML); run and write nothing.")
_SLURM = typer.Option(None, "--slurm", help="Slurm/submitit parameter KEY=VALUE (repeatable): gpus, mem (32G), "
                                            "account, partition, time (minutes or 2:00:00), qos, constraint, cpus, "
                                            "cluster (slurm | local), ...; cpus_per_task defaults to --threads.")
_DEVICE = typer.Option(None, "--device", help="cpu | cuda: with cuda each Ray task asks for num_gpus=1 and each Slurm "
                                              "job for one GPU; also sets the config's device key when it has one.")


def default_run_dir(name: str, *, root: Path = Path("outputs"), now: Optional[datetime] = None) -> Path:
    """``outputs/<name>/<YYYY-mm-dd_HH-MM-SS>`` (Hydra's default layout, one folder per run); a
    ``_2``, ``_3``... suffix when that folder already exists."""
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    base = root / name / stamp
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{stamp}_{i}")
    return out


def slurm_options(items: Optional[List[str]], cluster: Optional[str], partition: Optional[str],
                  time_min: Optional[int]) -> dict:
    """``--slurm KEY=VALUE`` items plus the older ``--slurm-cluster/-partition/-time`` spellings as
    submitit parameters (:func:`synthperf._parallel.slurm_cli_options`; ``cpus_per_task`` from
    the thread setting). A parameter given both ways raises ValueError naming both flags."""
    from .._parallel import parse_slurm_options, slurm_cli_options

    opts = slurm_cli_options(items)
    explicit = set(parse_slurm_options(items))
    for flag, name, value in (("--slurm-cluster", "cluster", cluster),
                              ("--slurm-partition", "slurm_partition", partition),
                              ("--slurm-time", "timeout_min", time_min)):
        if value is None:
            continue
        if name in explicit:
            raise ValueError(f"{flag} and --slurm both set {flag.removeprefix('--slurm-')}; keep one")
        opts[name] = value
    opts.setdefault("timeout_min", 60)
    return opts


def run_plan(config: Path, overrides: List[str], *, multirun: bool, device: Optional[str]):
    """(raw config, effective overrides, points, schema name) of a ``run`` command line: sweeps
    rewritten as grid axes under ``multirun``, ``--device`` added as ``device=`` when the schema
    has that key. Raises ValueError/TypeError naming the key; writes nothing."""
    from .._overrides import parse_overrides
    from .config import load_config, resolve, schema_for, sweep_to_grid

    raw = load_config(config)
    parsed = parse_overrides(overrides)
    if device is not None:
        from .._parallel import device_resources

        device_resources(device)  # validates the spelling
        if "device" in {f.name for f in dataclasses.fields(schema_for(raw))}:
            if any(o.key == "device" for o in parsed):
                raise ValueError("--device and a device override both set the config's device; keep one")
            overrides = [*overrides, f"device={device}"]
    if multirun:
        overrides = sweep_to_grid(raw, overrides)
    points = resolve(raw, overrides)
    return raw, overrides, points


def _task_device(points, device: Optional[str]) -> Optional[str]:
    """The device the tasks run on: ``--device``, else ``cuda`` when any point's config says so."""
    if device is not None:
        return device
    devices = {str(getattr(cfg, "device", "cpu")) for cfg, _ in points}
    return next((d for d in sorted(devices) if d.startswith("cuda")), None)


@user_errors
def run_command(
    config: Path = typer.Argument(..., help="Experiment YAML (e.g. configs/sppi/meps_ages_20_40.yaml)."),
    overrides: Optional[List[str]] = typer.Argument(
        None, help="Overrides (Hydra grammar): key=value, a.b=value, +key=value (add), ++key=value (set or add), "
                   "~key (delete), key=a,b (a sweep, with -m); values are YAML."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (results, plots, report.md); "
                                                                 "default outputs/<name>/<YYYY-mm-dd_HH-MM-SS>."),
    multirun: bool = _MULTIRUN,
    cfg: Optional[str] = _CFG,
    dry_run: bool = _DRY,
    executor: str = typer.Option("local", "--executor", help="local | ray | slurm"),
    workers: int = typer.Option(1, "--workers", help="Worker processes (local), CPUs (ray) or array parallelism."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local ray)."),
    device: Optional[str] = _DEVICE,
    slurm: Optional[List[str]] = _SLURM,
    slurm_cluster: Optional[str] = typer.Option(None, "--slurm-cluster",
                                                help="submitit cluster: slurm (default) or local (testing); "
                                                     "same as --slurm cluster=..."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="Same as --slurm partition=..."),
    slurm_time: Optional[int] = typer.Option(None, "--slurm-time", help="Minutes; same as --slurm time=... "
                                                                         "(default 60)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip plots and report.md."),
    force: bool = typer.Option(False, "--force", help="Take over the run directory's lock when its holder "
                               "cannot be shown alive (e.g. recorded on another host); a live holder on "
                               "this host is still refused."),
) -> None:
    """Run (or resume) an experiment grid; finished chunks are skipped."""
    from .._parallel import device_resources, local_gpu_count, resource_defaults
    from .runner import plan_tasks, run_experiment

    if cfg is not None and cfg != "job":
        raise ValueError(f"--cfg must be 'job' (print the resolved config and grid), got {cfg!r}")
    overrides = list(overrides or [])
    raw, effective, points = run_plan(config, overrides, multirun=multirun, device=device)
    slurm_opts = slurm_options(slurm, slurm_cluster, slurm_partition, slurm_time)
    resources = device_resources(_task_device(points, device))
    target = out if out is not None else default_run_dir(str(getattr(points[0][0], "name", "") or Path(config).stem))
    if cfg == "job" or dry_run:
        tasks, _ = plan_tasks(raw, target, effective)
        doc = {"config": str(config), "overrides": effective, "out": str(target), "points": len(points),
               "chunks": len(tasks), "executor": executor, "resources": resources or {"gpus": 0},
               "grid": [g for _, g in points], "resolved": [to_dict(c) for c, _ in points]}
        if len(points) == 1:
            doc["resolved"] = doc["resolved"][0]
        typer.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120).rstrip())
        return
    if executor == "ray" and resources.get("gpus") and not address and local_gpu_count() < resources["gpus"]:
        raise ValueError(f"--device: tasks ask for {resources['gpus']} GPU each but this machine has "
                         f"{local_gpu_count()} for a local Ray; use --device cpu or --address of a GPU cluster")
    typer.echo(f"run directory: {target}")
    with resource_defaults(resources or None):
        summary = run_experiment(config, target, effective, executor=executor, workers=workers,
                                 address=address, slurm=slurm_opts, report=not no_report, force=force)
    typer.echo(f"{summary.points} grid point(s), {summary.chunks} chunk(s), {summary.computed} computed now; "
               f"results in {summary.out}" + (f"; report {summary.report}" if summary.report else ""))


@user_errors
def plot_command(
    results: List[Path] = typer.Argument(..., help="Run directories to combine."),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help="key=value row filter (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: the single run dir, "
                                                                  "else ./combined_report)."),
    title: str = typer.Option("Combined results", "--title"),
) -> None:
    """Combine runs (e.g. marginal + class-conditional, or all MEPS age groups) into one report."""
    import pandas as pd

    from .reports import filter_results, plot_results
    from .store import load_results

    frames = []
    for r in results:
        df = load_results(r)
        df.insert(0, "run", r.name)
        frames.append(df)
    df = filter_results(pd.concat(frames, ignore_index=True), filters or [])
    target = out or (results[0] if len(results) == 1 else Path("combined_report"))
    report = plot_results(df, target, title=title)
    typer.echo(f"wrote {report}")


@user_errors
def demo_command(
    out: Path = typer.Option(Path("synthperf_demo"), "--out", "-o", help="Output folder."),
    quick: bool = typer.Option(False, "--quick", help="Fast CI variant (tiny generators, 40 trials)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes for the SPPI trials."),
    seed: int = typer.Option(0, "--seed"),
    generators: Optional[List[str]] = typer.Option(None, "--generator",
                                                   help="Generator family to compare (repeatable): gafi, "
                                                        "diffusion, flows. Default: all."),
    no_longtail: bool = typer.Option(False, "--no-longtail", help="Skip the long-tail guidance experiment."),
    force: bool = typer.Option(False, "--force", help="Take over the output folder's lock when its holder "
                               "cannot be shown alive (e.g. recorded on another host); a live holder on "
                               "this host is still refused."),
) -> None:
    """End-to-end demo on scikit-learn digits: GaFi, diffusion and flow generators as sources of synthetic
    calibration data (quality, SPPI vs SC, selective prediction, long-tail guidance)."""
    from .demo import run_demo

    report = run_demo(out, quick=quick, seed=seed, workers=workers,
                      generators=tuple(generators) if generators else None, longtail=not no_longtail,
                      force=force)
    typer.echo(f"wrote {report}")


app = typer.Typer(name="experiments", help="Experiments: run, plot, demo.", no_args_is_help=True,
                  add_completion=False)
app.command("run")(run_command)
app.command("plot")(plot_command)
app.command("demo")(demo_command)
