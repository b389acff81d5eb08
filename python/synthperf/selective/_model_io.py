"""Model mode: running a model over a loader to get embeddings or logits (spec §1.4, §1.9, §1.10).

Two protocols, one implementation (spec §0):

| protocol            | seapig version | call per batch                 | output                                  |
|---------------------|----------------|--------------------------------|-----------------------------------------|
| ``embed`` / ``logits`` | A (git main) | ``model.embed(x)``, ``model.logits(x=x)`` on the batch input x | a tensor (B, D) / logits       |
| ``extract``         | B (PyPI 0.3.0) | ``model.extract(batch)`` on the whole batch | a dict with ``"embedding"`` / ``"logit"`` (+ ``"label"``) |

The A method wins when a model has both. The batch input x of A: a tensor as is, a list/tuple ->
element 0, a dict -> ``batch["image"]``; tensors are moved to the model's device (first parameter
or buffer). The model runs in eval mode under ``torch.inference_mode`` and its train/eval mode is
restored afterwards.

Cache files (``outdir`` + ``prefix``) use seapig's names and layout, so caches are shared with
seapig both ways: ``<name>.pt`` written with ``torch.save`` (atomically, ``synthperf._io``) holding
a tensor or a dict of tensors, and read back only with ``torch.load(weights_only=True)`` (torch's
restricted unpickler: tensors and plain containers, never arbitrary objects).
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from ..progress import track
from ._common import SelectiveTypeError

#: per kind: (version-A method, key of the version-B ``extract`` dict)
PROTOCOLS = {"embedding": ("embed", "embedding"), "logit": ("logits", "logit")}


def _check_param(fn: Any, method: str, param: str) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins / C extensions: trust them
        return
    if param not in params and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
        raise AttributeError(f"`model.{method}()` is required to accept `{param}` as argument.")


def check_embed_model(model: Any, method: str = "embed") -> None:
    """``model`` must expose ``model.<method>(x)``; TypeError/AttributeError otherwise."""
    fn = getattr(model, method, None)
    if fn is None or not callable(fn):
        raise TypeError(f"model is required to have a `.{method}()` method.")
    _check_param(fn, method, "x")


def resolve_protocol(model: Any, kind: str) -> tuple[str, str | None]:
    """``("embed"|"logits", None)`` for version A, ``("extract", key)`` for version B.

    Raises TypeError naming both methods when the model has neither (and AttributeError when
    the method does not take ``x`` / ``batch``).
    """
    method, key = PROTOCOLS[kind]
    if callable(getattr(model, method, None)):
        check_embed_model(model, method)
        return method, None
    extract = getattr(model, "extract", None)
    if callable(extract):
        _check_param(extract, "extract", "batch")
        return "extract", key
    raise TypeError(f"model is required to have a `.{method}()` method. (seapig git main: {method}(x); seapig "
                    f"0.3.0 models may instead define `.extract(batch)` returning a dict with key {key!r}); "
                    f"got {type(model).__name__} with neither")


def batch_input(batch: Any) -> Any:
    """The model input of a loader batch: tensor as is, list/tuple -> [0], dict -> ["image"]."""
    if isinstance(batch, Mapping):
        if "image" not in batch:
            raise KeyError(f"dict batches must hold the input under 'image'; got keys {sorted(map(str, batch))}")
        return batch["image"]
    if isinstance(batch, (list, tuple)):
        return batch[0]
    return batch


def batch_label(batch: Any) -> Any:
    """The label of a loader batch, or None: dict -> ``"label"``, list/tuple -> element 1."""
    if isinstance(batch, Mapping):
        return batch.get("label")
    if isinstance(batch, (list, tuple)) and len(batch) > 1:
        return batch[1]
    return None


def model_device(model: Any) -> torch.device | None:
    if not isinstance(model, torch.nn.Module):
        return None
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return None


def _to(batch: Any, dev: torch.device | None) -> Any:
    if dev is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(dev)
    if isinstance(batch, Mapping):
        return {k: _to(v, dev) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(v, dev) for v in batch) if not hasattr(batch, "_fields") else batch
    return batch


def run_model(model: Any, loader: Any, kind: str, *, desc: str) -> tuple[list[torch.Tensor], list[Any]]:
    """Per-batch outputs of the resolved protocol and the batches' labels (None where absent)."""
    method, key = resolve_protocol(model, kind)
    fn = getattr(model, method)
    dev = model_device(model)
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.eval()
    outs: list[torch.Tensor] = []
    labels: list[Any] = []
    try:
        with torch.inference_mode():
            total = len(loader) if hasattr(loader, "__len__") else None
            for batch in track(loader, desc, total=total):
                label = batch_label(batch)
                if key is None:
                    x = _to(batch_input(batch), dev)
                    out = fn(x) if method == "embed" else fn(x=x)
                else:
                    res = fn(_to(batch, dev))
                    if not isinstance(res, Mapping):
                        raise TypeError(f"model.extract() must return a dict, got {type(res).__name__}")
                    if key not in res:
                        raise KeyError(f"model.extract() output is missing key {key!r} (keys {sorted(map(str, res))})")
                    out = res[key]
                    label = res.get("label", label)
                if not isinstance(out, torch.Tensor):
                    what = f"model.{method}()" + ("" if key is None else f"[{key!r}]")
                    # seapig's wording; an AssertionError too, as seapig git main asserts for embeddings
                    raise SelectiveTypeError(f"Extracted {kind}s is not a torch.Tensor: {what} must return a "
                                             f"torch.Tensor, got {type(out).__name__}")
                outs.append(out)
                labels.append(label)
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return outs, labels


def embed_batches(model: Any, loader: Any, *, method: str = "embed", desc: str = "Embedding") -> torch.Tensor:
    """Concatenated embeddings (N, D) of ``loader`` (either protocol, module notes)."""
    if method != "embed":
        raise ValueError(f"embed_batches embeds; use the logit scores' loader path for {method!r}")
    outs, _ = run_model(model, loader, "embedding", desc=desc)
    flat = []
    for e in outs:
        if e.ndim > 2:
            raise ValueError(f"model embeddings must be (B, D), got shape {tuple(e.shape)}")
        flat.append(e.reshape(e.shape[0], -1) if e.ndim == 2 else e.reshape(-1, 1))
    if not flat:
        raise ValueError("the loader yielded no batches")
    return torch.cat(flat).clone()  # clone: inference tensors cannot be used in autograd later


def cache_path(outdir: str | Path | None, prefix: str | None, suffix: str = "") -> Path | None:
    """``outdir/{prefix}{suffix}.pt`` (folder created), or None when either is missing."""
    if outdir is None:
        return None
    if prefix is None:
        warnings.warn("outdir was given without prefix: embeddings are not cached", UserWarning, stacklevel=3)
        return None
    p = Path(outdir)
    p.mkdir(parents=True, exist_ok=True)
    return p / f"{prefix}{suffix}.pt"


def _cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().contiguous()
    return {k: _cpu(v) for k, v in obj.items()}


def save_cache(path: Path, obj: torch.Tensor | Mapping[str, torch.Tensor]) -> None:
    """Write a tensor or a dict of tensors (moved to the CPU) with ``torch.save``, atomically."""
    from .._io import atomic_write

    data = _cpu(obj)
    atomic_write(path, lambda fh: torch.save(data, fh))


def load_cache(path: Path) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``; ValueError naming the file when it
    is not a readable ``torch.save`` file of tensors (a pickle of other objects is refused)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, foreign pickle globals (UnpicklingError), truncated file
        raise ValueError(f"cache file {path} is corrupt or not a torch.save file of tensors: {exc}") from None


def load_or_embed(path: Path | None, model: Any, loader: Any, *, method: str = "embed",
                  key: str | None = None) -> torch.Tensor:
    """Load cached embeddings from ``path`` when it exists, else embed and (if path) save.

    The file holds the (N, D) tensor itself (seapig git main) or, with ``key`` (seapig 0.3.0's
    extractor layout), a dict ``{key: tensor}``; either layout is read."""
    if path is not None and path.is_file():
        warnings.warn(f"Loading pre-existing embeddings from {path}", UserWarning, stacklevel=3)
        data = load_cache(path)
        if isinstance(data, Mapping):
            found = next((data[k] for k in (key, "embedding", "embeddings") if k is not None and k in data), None)
            if found is None:
                raise ValueError(f"embedding cache {path} has no 'embedding' tensor (keys {sorted(map(str, data))})")
            data = found
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"embedding cache {path} holds a {type(data).__name__}, not a tensor of embeddings")
        dev = model_device(model)
        return data.to(dev) if dev is not None else data
    emb = embed_batches(model, loader, method=method)
    if path is not None:
        save_cache(path, emb if key is None else {key: emb})
    return emb
