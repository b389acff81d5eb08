"""``ModelExtractor`` (seapig 0.3.0, spec §1.10): run ``model.extract(batch) -> dict`` over a loader
and collect chosen keys, with an optional cache.

``output_keys`` are read from the model's dict; ``input_keys[0]`` names the model input inside
dict batches (not collected), ``input_keys[1:]`` (e.g. ``"label"``) are collected from the
batches themselves. Tensors are detached, moved to the CPU and concatenated over batches along
dim 0; the result is moved to the model's device (first parameter or buffer, else CPU).

Cache: ``<outdir>/<prefix>-<cache_tag or output_keys[0]>.pt``, seapig's name and layout (a dict of
tensors, ``torch.save``), written atomically and read only with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch

from ..progress import track
from ._model_io import load_cache, model_device, save_cache
from ._types import ExtractorModel, Loader


def _resolve_method(model: Any, name: str = "extract"):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(model, name):
        raise TypeError(f"`model` is required to have a `{name}()` method.")
    fn = getattr(model, name)
    if not callable(fn):
        raise TypeError(f"`model.{name}` must be callable")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn
    if "batch" not in params and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
        raise AttributeError(f"`model.{name}()` must take a `batch` parameter")
    return fn


class ModelExtractor:
    """Collect ``output_keys`` of ``model.extract(batch)`` and ``input_keys[1:]`` of the batches."""

    def __init__(self, output_keys: tuple[str, ...], input_keys: tuple[str, ...] = (),
                 cache_tag: str | None = None) -> None:
        output_keys, input_keys = tuple(output_keys), tuple(input_keys)
        if not output_keys:
            raise ValueError("ModelExtractor: output_keys must not be empty.")
        if not input_keys:
            raise ValueError("ModelExtractor: input_keys must not be empty.")
        clash = set(output_keys) & set(input_keys[1:])
        if clash:
            raise ValueError(f"ModelExtractor: output_keys {sorted(clash)} collide with input_keys {input_keys[1:]}")
        if cache_tag is not None and not isinstance(cache_tag, str):
            raise TypeError(f"cache_tag must be a str or None, got {type(cache_tag).__name__}")
        self.output_keys, self.input_keys, self.cache_tag = output_keys, input_keys, cache_tag

    def _cache_path(self, outdir: str | Path | None, prefix: str | None) -> Path | None:
        if outdir is None and prefix is None:
            return None
        if outdir is None or prefix is None:
            warnings.warn("ModelExtractor: give both outdir and prefix to cache; not caching", UserWarning,
                          stacklevel=3)
            return None
        return Path(outdir) / f"{prefix}-{self.cache_tag or self.output_keys[0]}.pt"

    def _validate(self, data: Mapping[str, torch.Tensor], where: str) -> None:
        missing = [k for k in (*self.output_keys, *self.input_keys[1:]) if k not in data]
        if missing:
            raise KeyError(f"{where} is missing key(s) {missing}")

    def extract(self, model: ExtractorModel, loader: Loader, *, outdir: str | Path | None = None, prefix: str | None = None,
                overwrite: bool = False) -> dict[str, torch.Tensor]:
        """``{key: tensor (N, ...)}`` for every output and extra input key (module notes)."""
        fn = _resolve_method(model)
        path = self._cache_path(outdir, prefix)
        dev = model_device(model)
        if path is not None and path.is_file() and not overwrite:
            warnings.warn(f"Loading pre-existing data from {path}", UserWarning, stacklevel=2)
            data = load_cache(path)
            if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
                raise TypeError(f"Cached file {path} does not contain a dict of tensors (got {type(data).__name__})")
            self._validate(data, f"cache file {path}")
        else:
            data = self._extract_loader(model, fn, loader)
            if path is not None:
                save_cache(path, data)
        return {k: (v.to(dev) if dev is not None else v) for k, v in data.items()}

    def _extract_loader(self, model: torch.nn.Module, fn, loader: Any) -> dict[str, torch.Tensor]:
        keys = (*self.output_keys, *self.input_keys[1:])
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                total = len(loader) if hasattr(loader, "__len__") else None
                for batch in track(loader, "Extracting", total=total):
                    if self.input_keys[1:] and not isinstance(batch, Mapping):
                        raise TypeError("Expected data loader to return a dictionary.")
                    out = fn(batch)
                    if not isinstance(out, Mapping):
                        raise TypeError(f"`model.extract()` must return a dict, got {type(out).__name__}")
                    for k in self.output_keys:
                        if k not in out:
                            raise KeyError(f"`model.extract()` output is missing key {k!r} (keys {sorted(out)})")
                        parts[k].append(torch.as_tensor(out[k]).detach().cpu())
                    for k in self.input_keys[1:]:
                        if k not in batch:
                            raise KeyError(f"loader batch is missing key {k!r} (keys {sorted(batch)})")
                        parts[k].append(torch.as_tensor(batch[k]).detach().cpu())
        finally:
            model.train(was_training)
        if not parts[self.output_keys[0]]:
            raise ValueError("No batches found in loader.")
        data = {k: torch.cat(v).clone() for k, v in parts.items()}
        self._validate(data, "extracted data")
        return data
