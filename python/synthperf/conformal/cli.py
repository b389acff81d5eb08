"""``synthperf conformal ...`` commands: inspect SPPI windows and worst-case bounds (spec §1b-§1c).

    synthperf conformal windows 15 1000 0.4          # rank r: L_r - U_r per real rank
    synthperf conformal bounds 15 1000 --alpha 0.05 --alpha 0.1 --beta 0.4
"""
from __future__ import annotations

from typing import List, Optional

import typer

from .._cli_errors import user_errors

app = typer.Typer(help="SPPI conformal prediction: transport windows and worst-case coverage bounds.",
                  no_args_is_help=True, add_completion=False)

DEFAULT_ALPHAS = [0.02, 0.03, 0.05, 0.1, 0.15, 0.2]


@app.command("windows")
@user_errors
def windows_command(
    n_real: int = typer.Argument(..., help="number of real calibration scores n (m = n + 1 ranks)"),
    n_synth: int = typer.Argument(..., help="number of synthetic scores N (>= n + 2)"),
    beta: float = typer.Argument(0.4, help="window slack in (0, 1)"),
) -> None:
    """Print the transport window [L_r, U_r] of every real rank r (1-based; -1 = empty)."""
    from .windows import transport_windows

    L, U = transport_windows(n_real, n_synth, beta)
    typer.echo(f"# N={n_synth} m={n_real + 1} beta={beta}")
    typer.echo(f"{'r':>5} {'L':>8} {'U':>8}")
    for r, (lo, up) in enumerate(zip(L.tolist(), U.tolist()), start=1):
        typer.echo(f"{r:>5} {lo:>8} {up:>8}")


@app.command("bounds")
@user_errors
def bounds_command(
    n_real: int = typer.Argument(..., help="number of real calibration scores n"),
    n_synth: int = typer.Argument(..., help="number of synthetic scores N (>= n + 2)"),
    alpha: Optional[List[float]] = typer.Option(None, "--alpha", "-a", help="miscoverage level(s); repeatable"),
    beta: float = typer.Option(0.4, "--beta", "-b", help="window slack in (0, 1)"),
) -> None:
    """Print SPPI's worst-case coverage bounds [r+/(n+1), r-/(n+1)] per alpha."""
    from .windows import coverage_bounds

    alphas = list(alpha) if alpha else DEFAULT_ALPHAS
    lower, upper = coverage_bounds(n_real, n_synth, alphas, beta)
    typer.echo(f"# n={n_real} N={n_synth} beta={beta}")
    typer.echo(f"{'alpha':>8} {'lower':>8} {'upper':>8}")
    for a, lo, up in zip(alphas, lower.tolist(), upper.tolist()):
        typer.echo(f"{a:>8g} {lo:>8.3f} {up:>8.3f}")
