"""``EmbeddingScore.plot_embs``: a 2-D map (t-SNE, or UMAP when installed) of reference and query
embeddings (spec §1.4). Object-API matplotlib (the pyplot backend is never touched)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

METHODS = ("tsne", "umap")


def _reducer(method: str, method_args: dict[str, Any] | None):
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")
    args = dict(method_args or {})
    if method.lower() == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            raise ImportError("t-SNE is not installed: pip install scikit-learn") from exc
        return TSNE(n_components=2, **args)
    try:
        import umap
    except ImportError as exc:
        raise ImportError("UMAP is not installed: pip install umap-learn") from exc
    return umap.UMAP(n_components=2, **args)


def plot_embeddings(ref: torch.Tensor, query: torch.Tensor | None, *, method: str = "tsne",
                    method_args: dict[str, Any] | None = None, title: str = ""):
    """Figure with the 2-D embedding of ``ref`` (N, D) and ``query`` (M, D), coloured by set.

    The two sets are embedded jointly (one fit of the reducer on their concatenation);
    ``method_args`` go to ``sklearn.manifold.TSNE`` / ``umap.UMAP`` (e.g. ``perplexity``,
    ``random_state``). Returns ``(figure, coordinates (N + M, 2) float64 numpy)``.
    """
    reducer = _reducer(method, method_args)
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("matplotlib is not installed; install it to plot (pip install matplotlib)") from exc
    parts = [ref.detach().cpu().double().numpy()]
    if query is not None:
        parts.append(torch.as_tensor(query).detach().cpu().double().numpy())
    data = np.concatenate(parts, axis=0)
    xy = np.asarray(reducer.fit_transform(data), dtype=np.float64)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    n = parts[0].shape[0]
    ax.scatter(xy[:n, 0], xy[:n, 1], s=6, alpha=0.5, label="reference")
    if query is not None:
        ax.scatter(xy[n:, 0], xy[n:, 1], s=10, alpha=0.8, label="query")
    ax.set_title(title or method)
    ax.legend()
    return fig, xy
