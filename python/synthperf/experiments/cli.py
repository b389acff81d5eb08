"""Typer commands ``run``, ``plot`` and ``demo`` (attached at the top level of ``synthperf``).

``run_command``, ``plot_command`` and ``demo_command`` are plain functions with typer
signatures, so the root app can register them with ``app.command("run")(run_command)``;
``app`` is a standalone typer app holding the same three commands.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .._cli_errors import user_errors

__all__ = ["app", "run_command", "plot_command", "demo_command"]


@user_errors
def run_command(
    config: Path = typer.Argument(..., help="Experiment YAML (e.g. configs/sppi/meps_ages_20_40.yaml)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="key=value overrides (YAML values; dotted keys)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (results, plots, report.md)."),
    executor: str = typer.Option("local", "--executor", help="local | ray | slurm"),
    workers: int = typer.Option(1, "--workers", help="Worker processes (local), CPUs (ray) or array parallelism."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (default: a local ray)."),
    slurm_cluster: Optional[str] = typer.Option(None, "--slurm-cluster",
                                                help="submitit cluster: slurm (default) or local (testing)."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="Slurm partition."),
    slurm_time: int = typer.Option(60, "--slurm-time", help="Slurm time limit per job (minutes)."),
    no_report: bool = typer.Option(False, "--no-report", help="Skip plots and report.md."),
) -> None:
    """Run (or resume) an experiment grid; finished chunks are skipped."""
    from .runner import run_experiment

    slurm = {"timeout_min": slurm_time}
    if slurm_cluster:
        slurm["cluster"] = slurm_cluster
    if slurm_partition:
        slurm["slurm_partition"] = slurm_partition
    summary = run_experiment(config, out, list(overrides or []), executor=executor, workers=workers,
                             address=address, slurm=slurm, report=not no_report)
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
) -> None:
    """End-to-end demo on scikit-learn digits: GaFi, diffusion and flow generators as sources of synthetic
    calibration data (quality, SPPI vs SC, selective prediction, long-tail guidance)."""
    from .demo import run_demo

    report = run_demo(out, quick=quick, seed=seed, workers=workers,
                      generators=tuple(generators) if generators else None, longtail=not no_longtail)
    typer.echo(f"wrote {report}")


app = typer.Typer(name="experiments", help="Experiments: run, plot, demo.", no_args_is_help=True,
                  add_completion=False)
app.command("run")(run_command)
app.command("plot")(plot_command)
app.command("demo")(demo_command)
