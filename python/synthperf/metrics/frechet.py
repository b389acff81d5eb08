"""Frechet distance on features of a digits network trained in-process (no download).

``FD = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between Gaussian fits of the
features (the FID formula of Heusel et al. 2017, here on a small digits network instead of
Inception). :func:`digits_feature_extractor` trains a 64-128-64-10 MLP on the train half of
scikit-learn's digits (the shared CAS split, :func:`synthperf.metrics.digits_split`; fixed seed,
about 5-10 s on one core) and returns its 64-d penultimate (post-ReLU) features; its accuracy on
the held-out half is in ``meta["test_accuracy"]``. It is cached per process and can be saved to /
loaded from a local folder (safetensors + JSON, never pickle). Any callable mapping [N, ...]
to [N, D] features can replace it (``feature_extractor=``).
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .._io import atomic_write_bytes
from .._typing import ArrayLike, ArrayOrTensor, FloatArray
from .._threads import ThreadGovernor
from .quality import _digits_split_cached, _features

if TYPE_CHECKING:
    import torch

__all__ = ["DigitsFeatureNet", "digits_feature_extractor", "frechet_distance", "gaussian_frechet"]


def _torch_net(seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 10))


class DigitsFeatureNet:
    """A trained digits MLP; calling it maps x [N, 64] (pixels in [0, 1]) to features [N, 64] float64."""

    def __init__(self, net: torch.nn.Sequential, meta: dict[str, Any]) -> None:  # meta: JSON values
        self.net, self.meta = net, dict(meta)

    def __call__(self, x: ArrayLike) -> FloatArray:
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

    x_tr, y_tr, x_te, y_te = _digits_split_cached()
    x = torch.as_tensor(x_tr, dtype=torch.float32)
    y = torch.as_tensor(y_tr, dtype=torch.long)
    net = _torch_net(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    governor = ThreadGovernor()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(64):
            governor.tick()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(x).argmax(1) == y).float().mean())
        test = float((net(torch.as_tensor(x_te)).argmax(1) == torch.as_tensor(y_te)).float().mean())
    return DigitsFeatureNet(net, {"seed": seed, "epochs": epochs, "train_accuracy": acc, "test_accuracy": test,
                                  "features": 64, "trained_on": "sklearn digits train half (shared CAS split)"})


def digits_feature_extractor(seed: int = 0, *, epochs: int = 40, folder: str | os.PathLike | None = None
                             ) -> DigitsFeatureNet:
    """The package's digits feature network (trained once per process per (seed, epochs)).

    ``folder``: load it from there when it holds one (``feature_net.safetensors`` + ``.json``),
    else train and save it there. Returns a :class:`DigitsFeatureNet`: x [N, 64] in [0, 1] ->
    float64 [N, 64] features.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if folder is not None and (Path(folder) / "feature_net.json").is_file():
        net = DigitsFeatureNet.load(folder)
        got = (net.meta.get("seed"), net.meta.get("epochs"))
        if got != (seed, epochs):
            raise ValueError(f"folder {folder} holds a feature network with (seed, epochs) = {got}, not "
                             f"{(seed, epochs)}; use another folder")
        return net
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
    for name, v in (("mu_a", mu_a), ("cov_a", cov_a), ("mu_b", mu_b), ("cov_b", cov_b)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name} contains NaN or inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # singular product: regularise as the FID reference code does
            eps = 1e-6 * np.eye(mu_a.size)
            covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    d = mu_a - mu_b
    return float(max(0.0, d @ d + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)))


def _to_numpy(f: Any) -> Any:
    if hasattr(f, "detach") and hasattr(f, "cpu"):  # a torch tensor
        return f.detach().cpu().double().numpy()
    return f


def frechet_distance(x_a: ArrayLike, x_b: ArrayLike, *,
                     feature_extractor: Callable[[FloatArray], ArrayOrTensor] | None = None) -> float:
    """Frechet distance between two sample sets [N, ...] through ``feature_extractor``.

    Default extractor: :func:`digits_feature_extractor` (inputs 8x8 digits in [0, 1], [N, 64]
    or [N, 8, 8]). Any callable mapping an [N, ...] float64 array (passed in its given shape) to
    [N, D] features works, e.g. a local network; torch tensors are accepted as its output. Each set
    needs at least 2 samples; ``x_a`` and ``x_b`` must have the same per-sample shape. The plug-in
    estimate is biased upward for small N (compare sets of equal size).
    """
    a, b = _features(x_a, "x_a"), _features(x_b, "x_b")
    sa, sb = np.shape(x_a)[1:], np.shape(x_b)[1:]
    if sa != sb:
        raise ValueError(f"x_a has samples of shape {sa} but x_b has {sb}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"x_a and x_b need at least 2 samples each, got {a.shape[0]} and {b.shape[0]}")
    if feature_extractor is not None and not callable(feature_extractor):
        raise TypeError(f"feature_extractor must be callable, got {type(feature_extractor).__name__}")
    fx = feature_extractor or digits_feature_extractor()
    fa = _features(_to_numpy(fx(a.reshape((-1,) + sa))), "feature_extractor(x_a)")
    fb = _features(_to_numpy(fx(b.reshape((-1,) + sb))), "feature_extractor(x_b)")
    if fa.shape[0] != a.shape[0] or fb.shape[0] != b.shape[0] or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"feature_extractor must return [N, D] features, one row per sample; got "
                         f"{fa.shape} for {a.shape[0]} and {fb.shape} for {b.shape[0]} samples")
    return gaussian_frechet(fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False))
