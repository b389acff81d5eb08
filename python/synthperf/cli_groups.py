"""Registry of per-system CLI groups, imported lazily so ``synthperf --help`` stays fast.

Each entry maps a group name to ``module:attribute`` of a ``typer.Typer``; a system adds
its group here when it lands.
"""
from __future__ import annotations

import importlib

import typer

GROUPS: dict[str, tuple[str, str]] = {
    "conformal": ("synthperf.conformal.cli:app", "SPPI conformal prediction: windows and worst-case bounds."),
    "selective": ("synthperf.selective.cli:app", "Selective prediction (seapig API) on exact faiss KNN."),
    "flows": ("synthperf.flows.cli:app", "Inflationary flows: training, pfODE simulations and metrics."),
    "gafi": ("synthperf.gafi.cli:app", "GaFi: GAN synthetic data post-processing (DSF, DDR, ET, MultiGAN, CAS)."),
    "guidance": ("synthperf.guidance.cli:app", "Feedback-guided synthesis (SD/FLUX): plans, sharded resumable generation."),
}


def register(app: typer.Typer) -> None:
    for name, (target, help_text) in GROUPS.items():
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        app.add_typer(getattr(module, attr or "app"), name=name, help=help_text)
