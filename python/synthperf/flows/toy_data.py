"""Toy datasets for inflationary flows (specs/inflationary_flows.md §4).

Every generator takes ``n`` and ``seed`` (a numpy Generator is built from it, so the same
seed gives the same numbers) and returns float64 [n, d]. Unless noted the output is
z-scored per original column with its own sample mean/std (ddof=0), as upstream does per
draw.

| name | d | generator |
|---|---|---|
| circles | 2 | make_circles(n, factor=0.5, noise=0.08) |
| moons | 2 | make_moons(n, noise=0.08) |
| sine2 | 2 | x ~ U(-1, 1), y = sin(4 pi x)/4 + N(0, 0.15^2) |
| swirl | 3 | make_swiss_roll(n, noise=1.25) |
| s_curve | 3 | make_s_curve(n, noise=0.2) |
| alt_swirl / alt_s_curve | 3 | [raw x, 0.5 N(0,1), raw z] (upstream quirk: x, z NOT standardised) |

``alt_standardize=True`` z-scores x and z of the ``alt_*`` sets instead (what the docstring
upstream describes). ``augment_to=D'`` embeds the data in D' dimensions with a Gram-Schmidt
orthonormalised N(0, 1) matrix [D', d] drawn with seed 42.
"""
from __future__ import annotations

import numpy as np

from .._validation import positive_int
from ._sizes import check_alloc

TOY_DATASETS: dict[str, int] = {
    "circles": 2, "moons": 2, "sine2": 2, "swirl": 3, "s_curve": 3, "alt_swirl": 3, "alt_s_curve": 3,
}


def zscore(x: np.ndarray) -> np.ndarray:
    """Per-column (x - mean) / std with ddof=0 (§1.3)."""
    std = x.std(axis=0)
    std[std == 0] = 1.0
    return (x - x.mean(axis=0)) / std


def _circles(n: int, rng: np.random.Generator) -> np.ndarray:
    n_out = n // 2
    n_in = n - n_out
    a_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    a_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    x = np.concatenate([np.stack([np.cos(a_out), np.sin(a_out)], 1),
                        0.5 * np.stack([np.cos(a_in), np.sin(a_in)], 1)])
    x = x[rng.permutation(n)]
    return x + rng.normal(0.0, 0.08, size=x.shape)


def _moons(n: int, rng: np.random.Generator) -> np.ndarray:
    n_out = n // 2
    n_in = n - n_out
    t_out = np.linspace(0, np.pi, n_out)
    t_in = np.linspace(0, np.pi, n_in)
    x = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)])
    x = x[rng.permutation(n)]
    return x + rng.normal(0.0, 0.08, size=x.shape)


def _sine2(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.uniform(-1.0, 1.0, size=n)
    y = np.sin(4 * np.pi * x) / 4 + rng.normal(0.0, 0.15, size=n)
    return np.stack([x, y], 1)


def _swirl_raw(n: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.uniform(size=n)
    tau = 1.5 * np.pi * (1 + 2 * u)
    x = np.stack([tau * np.cos(tau), 21.0 * rng.uniform(size=n), tau * np.sin(tau)], 1)
    return x + rng.normal(0.0, 1.25, size=x.shape)


def _s_curve_raw(n: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.uniform(size=n)
    tau = 3 * np.pi * (u - 0.5)
    x = np.stack([np.sin(tau), 2.0 * rng.uniform(size=n), np.sign(tau) * (np.cos(tau) - 1)], 1)
    return x + rng.normal(0.0, 0.2, size=x.shape)


def orthonormal_embedding(data_dim: int, augment_to: int, seed: int = 42) -> np.ndarray:
    """Gram-Schmidt (QR) orthonormalised N(0, 1) matrix [augment_to, data_dim]."""
    if augment_to < data_dim:
        raise ValueError(f"augment_to = {augment_to} must be >= the data dimension {data_dim}")
    a = np.random.default_rng(seed).normal(size=(augment_to, data_dim))
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diag(r))[None, :]


def make_toy(name: str, n: int, *, seed: int = 0, augment_to: int | None = None,
             alt_standardize: bool = False) -> np.ndarray:
    """Draw ``n`` samples of toy dataset ``name`` (see the module table); float64 [n, d]."""
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}: expected one of {sorted(TOY_DATASETS)}")
    n = positive_int(n, "n", minimum=2)
    dim = 3 if augment_to is None else check_alloc(positive_int(augment_to, "augment_to"), "augment_to",
                                                   bytes_per=8 * 3)  # the [augment_to, d <= 3] embedding
    check_alloc(n, "n", bytes_per=8 * 2 * max(dim, 3))  # the raw draw and the float64 [n, d] result
    rng = np.random.default_rng(seed)
    if name in ("alt_swirl", "alt_s_curve"):
        raw = (_swirl_raw if name == "alt_swirl" else _s_curve_raw)(n, rng)
        xz = zscore(raw[:, [0, 2]]) if alt_standardize else raw[:, [0, 2]]
        x = np.stack([xz[:, 0], 0.5 * rng.normal(size=n), xz[:, 1]], 1)
    else:
        gen = {"circles": _circles, "moons": _moons, "sine2": _sine2, "swirl": _swirl_raw,
               "s_curve": _s_curve_raw}[name]
        x = zscore(gen(n, rng))
    if augment_to is not None:
        x = x @ orthonormal_embedding(x.shape[1], positive_int(augment_to, "augment_to")).T
    return x
