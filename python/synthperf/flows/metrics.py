"""Metrics and experiments for inflationary flows (specs/inflationary_flows.md §6).

- :func:`roundtrip_mse` - pixel MSE between originals and roundtrip reconstructions, in float
  (default) or with upstream's uint8 wrap-around arithmetic (``uint8_wrap=True``).
- :func:`frechet_distance` / :func:`feature_statistics` / :func:`frechet_distance_from_features`
  / :func:`frechet_distance_with_extractor` - the exact Frechet formula
  ||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)) on features of any local torch module or
  callable. :func:`load_local_feature_extractor` builds one from a local safetensors state dict
  (into the caller's ``nn.Module``, or as a plain MLP); no code is ever loaded from a file
  (no TorchScript / pickle, issue 17) and nothing is downloaded.
- :func:`alpha_shape_contains` - point-in-alpha-shape for 2-D polygons and 3-D meshes
  (Delaunay simplices with circumradius < 1/alpha); :func:`chi2_coverage` is the Gaussian
  reference; :func:`coverage_experiment` runs the §6 boundary-shell experiment.
- :func:`residual_cross_correlations` - R(0, t) of network outputs/residuals, with upstream's
  column-only normalisation available as ``upstream_normalization=True``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, spatial, stats

from .._typing import ArrayOrTensor
from .._validation import float_array
from .pfode import PfodeFlow
from .schedules import InflationSchedule

if TYPE_CHECKING:  # torch is imported lazily; "torch.*" annotations resolve with torch in localns (_typing)
    import torch


# ----------------------------------------------------------------------------- roundtrip MSE
def to_uint8_pixels(x: ArrayLike | ArrayOrTensor) -> np.ndarray:
    """[-1, 1] floats -> uint8 via clip(x 127.5 + 128) (upstream's transform)."""
    arr = float_array(x, "x")
    return np.clip(arr * 127.5 + 128.0, 0, 255).astype(np.uint8)


def roundtrip_mse(original: ArrayLike | ArrayOrTensor, reconstructed: ArrayLike | ArrayOrTensor, *,
                 uint8_wrap: bool = False) -> float:
    """Mean squared pixel error (units: 0-255 grey levels^2) between [-1, 1] images [N, ...].

    ``uint8_wrap=True`` reproduces upstream's arithmetic: subtraction and squaring in uint8, so
    differences wrap mod 256 (exact only where |delta| < 16). The default is the true MSE.
    """
    a, b = to_uint8_pixels(original), to_uint8_pixels(reconstructed)
    if a.shape != b.shape:
        raise ValueError(f"original {a.shape} and reconstructed {b.shape} must have the same shape")
    if uint8_wrap:
        diff = (a - b).astype(np.uint8)  # wraps mod 256 like the upstream tensors
        sq = (diff * diff).astype(np.uint8)
        return float(sq.astype(np.float64).sum() / a.size)
    return float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())


# ----------------------------------------------------------------------------- Frechet distance
def feature_statistics(features: ArrayLike | ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [k] and covariance [k, k] (ddof=1) of features [n, k], float64."""
    f = float_array(features, "features", ndim=2).astype(np.float64)
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors, got {f.shape[0]}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)) (exact; imaginary round-off dropped);
    means [k], covariances [k, k]."""
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.size, m1.size):
        raise ValueError(f"shape mismatch: mu {m1.shape} vs {m2.shape}, sigma {s1.shape} vs {s2.shape}")
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean[0] if isinstance(covmean, tuple) else covmean)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def frechet_distance_from_features(feat_a: ArrayLike | ArrayOrTensor, feat_b: ArrayLike | ArrayOrTensor) -> float:
    """:func:`frechet_distance` between the statistics of two feature sets [n_a, k] and [n_b, k]."""
    return frechet_distance(*feature_statistics(feat_a), *feature_statistics(feat_b))


def frechet_distance_with_extractor(extractor: Callable[[torch.Tensor], ArrayOrTensor],
                                    images_a: ArrayLike | ArrayOrTensor, images_b: ArrayLike | ArrayOrTensor, *,
                                    batch: int = 256) -> float:
    """FID-style distance with any local torch module or callable mapping a tensor [B, ...] to
    features [B, k] (a tensor or anything ``torch.as_tensor`` takes); images [n, ...].

    An ``nn.Module`` gets its inputs in the dtype of its first parameter."""
    import torch

    param = next(iter(extractor.parameters()), None) if isinstance(extractor, torch.nn.Module) else None

    def feats(images):
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        if param is not None and x.is_floating_point():
            x = x.to(param.dtype)
        with torch.no_grad():
            return np.concatenate([np.asarray(torch.as_tensor(extractor(x[i:i + batch])).double().reshape(
                min(batch, x.shape[0] - i), -1)) for i in range(0, x.shape[0], batch)])
    return frechet_distance_from_features(feats(images_a), feats(images_b))


def load_local_feature_extractor(path: str | Path, module: torch.nn.Module | None = None) -> torch.nn.Module:
    """A feature extractor [B, ...] -> [B, k] from a local ``.safetensors`` state dict (data only).

    ``module`` (a ``torch.nn.Module``, e.g. the caller's Inception port): the tensors are loaded
    into it with ``strict=True`` and it is returned in eval mode. ``module=None``: the file must
    hold an MLP as ``torch.nn.Sequential`` names it, ``{i}.weight`` [out, in] / ``{i}.bias`` [out]
    for Linear layers i = 0, 2, 4, ... with ReLU between them; inputs are flattened. TorchScript
    or pickle files are refused: they carry code (issue 17). Nothing is downloaded.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"feature extractor {str(p)!r} not found; synthperf never downloads weights - "
                                "place a .safetensors state dict there or pass any torch module")
    if p.suffix != ".safetensors":
        raise ValueError(f"feature extractor {str(p)!r} must be a .safetensors state dict; TorchScript/pickle "
                         "files carry code and are not loaded (pass a local nn.Module to "
                         "frechet_distance_with_extractor instead)")
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"feature extractor {str(p)!r} is not a readable safetensors file: {exc}") from None
    if module is not None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"feature extractor {str(p)!r} does not match module: {exc}") from None
        return module.eval()
    return _mlp_from_state(tensors, str(p))


def _mlp_from_state(tensors: dict, where: str):
    import torch

    idx = sorted({int(k.split(".")[0]) for k in tensors if k.split(".")[0].isdigit()})
    expected = {f"{i}.{n}" for i in idx for n in ("weight", "bias")}
    if not idx or set(tensors) != expected or idx != list(range(0, 2 * len(idx), 2)):
        raise ValueError(f"feature extractor {where!r}: expected MLP tensors '0.weight', '0.bias', '2.weight', ... "
                         f"(Linear layers of an nn.Sequential with ReLU between), got {sorted(tensors)[:6]}")
    layers: list = []
    for n, i in enumerate(idx):
        w, b = tensors[f"{i}.weight"], tensors[f"{i}.bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],) or (layers and w.shape[1] != layers[-2].out_features):
            raise ValueError(f"feature extractor {where!r}: layer {i} has inconsistent shapes {tuple(w.shape)}, "
                             f"{tuple(b.shape)}")
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w, "bias": b})
        layers += [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(torch.nn.Flatten(), *layers[:-1]).eval()


# ----------------------------------------------------------------------------- coverage
def _circumradius(pts: np.ndarray) -> np.ndarray:
    """Circumradius of each simplex, pts [S, d+1, d]."""
    a = pts[:, 1:] - pts[:, :1]                       # [S, d, d]
    rhs = 0.5 * (a ** 2).sum(-1)                      # [S, d]
    with np.errstate(all="ignore"):
        centre = np.linalg.solve(a + 1e-300 * np.eye(a.shape[-1]), rhs[..., None])[..., 0]
    r = np.linalg.norm(centre, axis=1)
    r[~np.isfinite(r)] = np.inf
    return r


def alpha_shape_contains(boundary: ArrayLike | ArrayOrTensor, points: ArrayLike | ArrayOrTensor,
                         alpha: float) -> np.ndarray:
    """Whether each point [n, d] (d = 2 or 3) lies inside the alpha shape of ``boundary`` [b, d].

    The shape is the union of Delaunay simplices whose circumradius is < 1/alpha (alpha -> 0
    gives the convex hull); alpha = 0.005 is upstream's 2-D choice. Returns bool [n].
    """
    b = float_array(boundary, "boundary", ndim=2).astype(np.float64)
    p = float_array(points, "points", ndim=2).astype(np.float64)
    if b.shape[1] not in (2, 3) or p.shape[1] != b.shape[1]:
        raise ValueError(f"boundary and points must both be 2-D or 3-D, got {b.shape[1]} and {p.shape[1]}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    tri = spatial.Delaunay(b)
    keep = _circumradius(b[tri.simplices]) < (np.inf if alpha == 0 else 1.0 / alpha)
    simplex = tri.find_simplex(p)
    return (simplex >= 0) & keep[np.maximum(simplex, 0)]


def chi2_coverage(radii: Iterable[float], dim: int) -> np.ndarray:
    """Ideal Gaussian coverage P(||z|| <= r) = chi2_dim CDF(r^2) (the §6 reference values)."""
    return stats.chi2.cdf(np.asarray(list(radii), np.float64) ** 2, dim)


def shell_points(std: np.ndarray, radius: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points r std * v with v uniform on the unit sphere (ellipsoid shell at Mahalanobis r)."""
    v = rng.normal(size=(n, std.size))
    return radius * std * v / np.linalg.norm(v, axis=1, keepdims=True)


def coverage_experiment(flow: PfodeFlow, schedule: InflationSchedule, W: np.ndarray, *,
                        radii: Sequence[float] | np.ndarray = np.linspace(0.5, 3.5, 7),
                        n_test: int = 20000, n_boundary: int = 200, eps: float = 1e-2, steps: int = 701,
                        h: float = 1e-2, alpha: float | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """§6 coverage: latent test points + boundary shells, generation T -> 0, coverage in data space.

    Returns percent-in per radius for the initial latent (``latent``), data space (``data``) and
    after melting back (``latent_roundtrip``), plus the chi-square reference (``ideal``).
    """
    from .pfode import from_latent, ifs_times, melt

    rng = np.random.default_rng(seed)
    d = schedule.data_dim
    std = schedule.latent_std(1.0 if schedule.is_prp else eps)
    test = rng.normal(size=(n_test, d)) * std
    shells = [shell_points(std, r, n_boundary, rng) for r in radii]
    z_T = np.concatenate([test] + shells)
    times = ifs_times(steps, h)
    gen = from_latent(flow, schedule, W, z_T, times[::-1].copy(), save_every=steps)
    back = melt(flow, schedule, W, gen.tilde_xs[-1], times, save_every=steps)
    a = (0.005 if d == 2 else 0.1) if alpha is None else alpha

    def cover(states: np.ndarray) -> np.ndarray:
        pts, out = states[:n_test], []
        for i in range(len(radii)):
            bnd = states[n_test + i * n_boundary: n_test + (i + 1) * n_boundary]
            out.append(100.0 * alpha_shape_contains(bnd, pts, a).mean())
        return np.array(out)

    return {"radii": np.asarray(radii), "ideal": 100 * chi2_coverage(radii, d), "latent": cover(z_T),
            "data": cover(gen.xs[-1]), "latent_roundtrip": cover(back.xs_es[-1])}


# ----------------------------------------------------------------------------- residual correlations
def residual_cross_correlations(r0: ArrayLike | ArrayOrTensor, rt: ArrayLike | ArrayOrTensor, *,
                                upstream_normalization: bool = False) -> np.ndarray:
    """R(0, t)[i, j] = mean_n (r0_ni - mu0_i)(rt_nj - mut_j) / (sigma0_i sigma_t_j), [d, d].

    ``upstream_normalization=True`` divides column j by sigma0_j sigma_t_j instead (the
    upstream quirk, §6). Inputs [N, d] (e.g. D(y + n_t, t) - y at two times).
    """
    a = float_array(r0, "r0", ndim=2).astype(np.float64)
    b = float_array(rt, "rt", ndim=2).astype(np.float64)
    if a.shape != b.shape:
        raise ValueError(f"r0 {a.shape} and rt {b.shape} must have the same shape")
    ca, cb = a - a.mean(0), b - b.mean(0)
    cov = ca.T @ cb / a.shape[0]
    sa, sb = a.std(0), b.std(0)
    denom = (sa * sb)[None, :] if upstream_normalization else np.outer(sa, sb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return cov / denom


def network_residuals(denoiser: Callable[[torch.Tensor, torch.Tensor], ArrayOrTensor], schedule: InflationSchedule,
                      y_es: ArrayLike | ArrayOrTensor, times: ArrayLike, *,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outputs D(y + n_t, t) and residuals D - y, each [T, N, d], with fresh noise per time (§6).

    ``y_es`` [N, d] clean points (ES), ``times`` scalar or [T]; ``denoiser(u float32 [N, d], t [N])``
    returns D [N, d] (a tensor or anything ``torch.as_tensor`` takes)."""
    import torch

    y = float_array(y_es, "y_es", ndim=2).astype(np.float64)
    rng = np.random.default_rng(seed)
    outs = []
    for t in np.atleast_1d(times):
        u = y + rng.normal(size=y.shape) * np.sqrt(schedule.gamma(t)[0])
        with torch.no_grad():
            D = denoiser(torch.as_tensor(u, dtype=torch.float32), torch.full((y.shape[0],), float(t)))
        outs.append(np.asarray(torch.as_tensor(D).double()))
    D = np.stack(outs)
    return D, D - y[None]
