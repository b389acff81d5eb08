"""The ``synthperf`` command line (typer).

Top level: ``--version``, ``backends``. Each system has a subcommand group that its own
module fills in (``conformal``, ``selective``, ``flows``, ``guidance``, ``gafi``); the
experiments layer adds ``run``, ``plot`` and ``demo``.
"""
from __future__ import annotations

from typing import Optional

import typer

from ._version import __version__

app = typer.Typer(
    name="synthperf",
    help="Synthetic-data-powered trustworthy ML: SPPI, selective prediction, inflationary flows, "
         "feedback-guided synthesis and GaFi.",
    no_args_is_help=True,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"synthperf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version_callback, is_eager=True,
                                           help="Print the version and exit."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    threads: Optional[int] = typer.Option(
        None, "--threads", min=1,
        help="Threads per process (torch, OpenMP, BLAS). Default: SYNTHPERF_NUM_THREADS or OMP_NUM_THREADS "
             "when set, else the cores not kept busy by other processes."),
) -> None:
    from ._cli_errors import fail
    from ._threads import configure_threads

    try:
        configure_threads(threads)  # sized to the free cores: oversubscribed barriers stall small ops
    except ValueError as exc:
        fail(exc)
    if no_progress:
        from .progress import disable_progress

        disable_progress()


@app.command("backends")
def backends_command() -> None:
    """List the kernel backends that can run on this machine."""
    from . import _native
    from .backend import available_backends, cuda_device_count, get_backend, native_cuda_built

    typer.echo(f"default backend : {get_backend()}")
    typer.echo(f"available       : {', '.join(available_backends())}")
    typer.echo(f"CUDA devices    : {cuda_device_count()}")
    typer.echo(f"CUDA module     : {'built' if native_cuda_built() else 'not built'}")
    typer.echo(f"OpenMP threads  : {_native.max_threads()} (openmp={'yes' if _native.has_openmp else 'no'})")


def _register_groups() -> None:
    """Attach the per-system command groups (each module owns its commands)."""
    from .cli_groups import register
    from .experiments.cli import demo_command, plot_command, run_command

    register(app)
    app.command("run")(run_command)
    app.command("plot")(plot_command)
    app.command("demo")(demo_command)


def main() -> None:
    _register_groups()
    app()
