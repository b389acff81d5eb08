"""Frechet distance on features of a digits network trained in-process (no download).

``FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between Gaussian fits of the
features (the FID formula of Heusel et al. 2017, here on a small digits network instead of
Inception). :func:`digits_feature_extractor` trains a 64-128-64-10 MLP on scikit-learn's
digits (fixed seed, a few seconds on one core) and returns its 64-d penultimate features;
it is cached per process and can be saved to / loaded from a local folder (safetensors + JSON).
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .quality import _features

__all__ = ["DigitsFeatureNet", "digits_feature_extractor", "frechet_distance", "gaussian_frechet"]


def _torch_net(seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 10))


class DigitsFeatureNet:
    """A trained digits MLP; calling it maps x [N, 64] (pixels in [0, 1]) to features [N, 64] float64."""

    def __init__(self, net: Any, meta: dict[str, Any]) -> None:
        self.net, self.meta = net, dict(meta)

    def __call__(self, x: Any) -> np.ndarray:
        import torch

        a = _features(x, "x")
        if a.shape[1] != 64:
            raise ValueError(f"x must have 64 features (8x8 digits in [0, 1]), got {a.shape[1]}")
        with torch.no_grad():
            h = self.net[:4](torch.as_tensor(a, dtype=torch.float32))
        return h.double().numpy()

    def save(self, folder: str | os.PathLike) -> Path:
        """``folder/feature_net.safetensors`` + ``feature_net.json`` (atomic writes)."""
        from safetensors.torch import save

        from ..experiments.store import atomic_write_bytes

        folder = Path(folder)
        atomic_write_bytes(folder / "feature_net.safetensors", save({k: v.contiguous() for k, v in
                                                                     self.net.state_dict().items()}))
        atomic_write_bytes(folder / "feature_net.json", json.dumps(self.meta, sort_keys=True).encode("utf-8"))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "DigitsFeatureNet":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            meta = json.loads((folder / "feature_net.json").read_text(encoding="utf-8"))
            state = load_file(str(folder / "feature_net.safetensors"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise ValueError(f"folder {folder} holds no readable feature network: {exc}") from None
        net = _torch_net(int(meta.get("seed", 0)))
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"folder {folder}: feature network weights do not match: {exc}") from None
        return cls(net.eval(), meta)


@functools.lru_cache(maxsize=4)
def _trained(seed: int, epochs: int) -> DigitsFeatureNet:
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images.reshape(-1, 64) / 16.0, dtype=torch.float32)
    y = torch.as_tensor(d.target, dtype=torch.long)
    net = _torch_net(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
    return DigitsFeatureNet(net, {"seed": seed, "epochs": epochs, "train_accuracy": acc, "features": 64})


def digits_feature_extractor(seed: int = 0, *, epochs: int = 30, folder: str | os.PathLike | None = None
                             ) -> DigitsFeatureNet:
    """The package's digits feature network (trained once per process and seed).

    ``folder``: load it from there when it holds one, else train and save it there.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if folder is not None and (Path(folder) / "feature_net.json").is_file():
        return DigitsFeatureNet.load(folder)
    net = _trained(seed, epochs)
    if folder is not None:
        net.save(folder)
    return net


def gaussian_frechet(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet distance between N(mu_a, cov_a) and N(mu_b, cov_b) (float64, >= 0)."""
    from scipy import linalg

    mu_a, mu_b = np.asarray(mu_a, float), np.asarray(mu_b, float)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(float), np.atleast_2d(cov_b).astype(float)
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"means {mu_a.shape}/{mu_b.shape} and covariances {cov_a.shape}/{cov_b.shape} do not match")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # singular product: regularise as the FID reference code does
            eps = 1e-6 * np.eye(mu_a.size)
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    d = mu_a - mu_b
    return float(max(0.0, d @ d + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)))


def frechet_distance(x_a: Any, x_b: Any, *, feature_extractor: Callable[[Any], Any] | None = None) -> float:
    """Frechet distance between two sample sets [N, ...] through ``feature_extractor``.

    Default extractor: :func:`digits_feature_extractor` (inputs 8x8 digits in [0, 1], [N, 64]).
    Any callable mapping an [N, ...] array to [N, D] features works (e.g. a local network).
    Each set needs at least 2 samples.
    """
    a, b = _features(x_a, "x_a"), _features(x_b, "x_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x_a has {a.shape[1]} features but x_b has {b.shape[1]}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("x_a and x_b need at least 2 samples each")
    if feature_extractor is not None and not callable(feature_extractor):
        raise TypeError("feature_extractor must be callable")
    fx = feature_extractor or digits_feature_extractor()
    fa, fb = _features(fx(a), "features of x_a"), _features(fx(b), "features of x_b")
    return gaussian_frechet(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
