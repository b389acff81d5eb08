"""``synthperf selective`` commands (typer group ``app``).

- ``select``: fit a KNN score on reference (+ calibration) embeddings stored as ``.npy`` or
  ``.safetensors`` (tensor ``embeddings``), threshold at ``q`` and write the query scores and
  selections as CSV, plus a JSON summary.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .._cli_errors import user_errors

app = typer.Typer(help="Selective prediction (seapig API) on exact faiss KNN.", no_args_is_help=True)



@app.callback()
def _group() -> None:
    """Selective prediction commands."""


SCORES = {"euclidean": "EuclideanScore", "cosine": "CosineScore", "mahalanobis": "MahalanobisScore"}


def load_embeddings(path: Path):
    """(N, D) float tensor from ``.npy`` (no pickles) or ``.safetensors`` (key ``embeddings``)."""
    import numpy as np
    import torch

    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    if path.suffix == ".npy":
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise ValueError(f"{path} is not a plain numeric .npy file: {exc}") from None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        data = load_file(str(path))
        if "embeddings" not in data:
            raise ValueError(f"{path} has no 'embeddings' tensor (keys {sorted(data)})")
        return data["embeddings"]
    raise ValueError(f"{path}: expected a .npy or .safetensors file")


@app.command("select")
@user_errors
def select_command(
    reference: Path = typer.Argument(..., help="reference embeddings (.npy / .safetensors)"),
    query: Path = typer.Argument(..., help="query embeddings to accept or reject"),
    out: Path = typer.Option(Path("selection.csv"), "--out", "-o", help="CSV with index,score,selected"),
    calibration: Optional[Path] = typer.Option(None, "--calibration", "-c", help="calibration embeddings"),
    score: str = typer.Option("euclidean", help="euclidean | cosine | mahalanobis"),
    k: int = typer.Option(5, help="neighbours"),
    stat: str = typer.Option("mean", help="max | mean | median | min"),
    q: float = typer.Option(0.95, help="target coverage on the calibration set, in (0, 1)"),
    index_factory: Optional[str] = typer.Option(None, help="faiss factory string (approximate); default exact"),
) -> None:
    """Fit, calibrate and select; prints a JSON summary."""
    import numpy as np

    from . import knn_scores

    if score not in SCORES:
        raise ValueError(f"--score must be one of {sorted(SCORES)}, got {score!r}")
    cls = getattr(knn_scores, SCORES[score])
    s = cls(k=k, stat=stat, index_factory=index_factory)
    s.fit(X=load_embeddings(reference), Y=None if calibration is None else load_embeddings(calibration))
    thr = float(s.set_threshold(q))
    res = s.select(load_embeddings(query))
    sc, sel = res["score"].cpu().numpy(), res["selected"].cpu().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([np.arange(sc.shape[0]), sc, sel.astype(int)])
    from .._io import atomic_write

    atomic_write(out, lambda fh: np.savetxt(fh, table, delimiter=",", header="index,score,selected", comments="",
                                            fmt=["%d", "%.8g", "%d"]))  # a killed run leaves no torn CSV
    typer.echo(json.dumps({"score": s.ident, "threshold": thr, "q": q, "calibrated": s.is_calibrated(),
                           "n_query": int(sc.shape[0]), "accepted": float(sel.mean()), "out": str(out)}))
