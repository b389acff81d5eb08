"""Seeded SPPI trials reproducing upstream's experiment runner (spec §5, §8).

One call runs all trials of one config: the upstream sampling on the host (Python's
``random`` for the trial seeds, numpy PCG64 for splits and eps - bit-exact), the scores from
a one-time per-image precompute, the thresholds of every (trial, group) at once through the
batched kernels, and the set/interval evaluation batched over trials and alpha.

Sampling (``utils.py::get_data``), with ``seed_`` the trial seed:

- trial seeds: ``random.Random(seed).sample(range(1, 999999), n_seeds)``;
- marginal: ``rng = default_rng(seed_)``; ``perm = rng.permutation(n_real)``: the first
  ``n_cal`` rows calibrate, the next ``n_test`` test; then ``rng.permutation(n_synth)[:n_cal_maj]``
  on the *same* rng gives the synthetic rows;
- ``class_conditional`` (upstream ``exact``): per real class in ascending order, a fresh
  ``default_rng(seed_)`` permutes that class's rows and takes ``n_cal // C`` calibration and
  ``n_test // C`` test rows; per synthetic class, a fresh ``default_rng(seed_)`` takes the
  first ``n_cal_maj // C_maj`` rows of its permutation; all concatenated class by class;
- ``only_maj_exact``: marginal real rows, per-class synthetic rows as above;
- eps: a fresh ``default_rng(seed_)`` draws eps_cal (n), eps_test (n_test), eps_synth (N)
  in that order (the shared seed of pitfall P8).

Result: a DataFrame with one row per (trial, method, alpha) - columns trial, seed, Method,
Coverage, Length, alpha, n_cal, n_cal_maj, n_test, dataset, beta, n_classes, n_classes_maj,
k, dist_criterion[, age_range] - and, for class-conditional runs, one row per class after
each marginal row (Class, Conditional Coverage, Conditional Length, n_cal_cond,
n_cal_maj_cond; NaN Coverage/Length).
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np

from .._validation import open_unit_interval, positive_int, real_scalar
from ..progress import progress_task
from .data import ClassificationData, RegressionData
from .evaluation import evaluate_aps_sets, evaluate_intervals
from .scores import APS_TOP, aps_from_precomputed, aps_precompute, cqr_scores
from .subset import _check_criterion, class_distances, select_nearest
from .thresholds import split_conformal_thresholds, sppi_thresholds

METHODS = ("SC", "SC (synth)", "SPI", "SPI [subset]")
#: upstream takes alpha from a ``MEPS_alpha_{a}`` dataset name (spec §5).
MEPS_ALPHA_PATTERN = re.compile(r"^MEPS_alpha_([0-9.]+)$")
_MEPS_ALPHA = MEPS_ALPHA_PATTERN


@dataclass(kw_only=True)
class SPPITrialParams:
    """The SPPI trial hyperparameters (spec §5 table): the one definition, shared by
    :class:`SPPITrialConfig` and the experiments layer's ``experiments.schemas.SPPIConfig``
    (both subclass it; experiments may import conformal, never the reverse). Keyword-only.

    beta : SPPI's synthetic-rank level in (0, 1); seed / n_seeds : upstream's trial seeds
    (:func:`trial_seeds`); n_cal / n_test / n_cal_maj : real calibration, real test and
    synthetic calibration rows per trial; class_conditional (upstream ``exact``),
    only_maj_exact, class_conditional_maj (None: per-class synthetic pool iff the classes
    match); k / dist_criterion : the SPI [subset] nearest synthetic classes; chunk_trials :
    trials per batched chunk; backend : kernel backend (None: the process setting).
    """

    beta: float = 0.4
    seed: int = 42
    n_seeds: int = 100
    n_cal: int = 15
    n_test: int = 500
    n_cal_maj: int = 1000
    class_conditional: bool = False
    only_maj_exact: bool = False
    class_conditional_maj: Optional[bool] = None
    k: int = 20
    dist_criterion: Literal["cramer-von-mises", "wasserstein"] = "cramer-von-mises"
    chunk_trials: int = 25
    backend: Optional[str] = None


@dataclass
class SPPITrialConfig(SPPITrialParams):
    """One experiment config (spec §5 table). ``real``/``synth`` hold the loaded data; the
    trial hyperparameters (keyword-only) are those of :class:`SPPITrialParams`."""

    real: RegressionData | ClassificationData
    synth: RegressionData | ClassificationData
    alpha: Sequence[float] = (0.1,)
    methods: Sequence[str] = ("SC", "SC (synth)", "SPI")
    dataset: str = ""
    age_range: str | None = None
    top: float | None = None  # trivial threshold; None: 1 for APS (pitfall P3), +inf for regression
    upstream: bool = False  # upstream's double rank expressions (bit parity); default: exact ranks
    extra: Mapping[str, Any] = field(default_factory=dict)  # copied into every row


def trial_seeds(seed: int, n_seeds: int) -> list[int]:
    """Upstream's per-trial seeds: ``random.sample(range(1, 999999), n_seeds)`` after ``random.seed(seed)``."""
    return random.Random(positive_int(seed, "seed", minimum=0)).sample(range(1, 999999), positive_int(n_seeds, "n_seeds"))


def _config(config: object) -> SPPITrialConfig:
    if isinstance(config, SPPITrialConfig):
        cfg = dataclasses.replace(config)
    elif isinstance(config, Mapping):
        known = {f.name for f in dataclasses.fields(SPPITrialConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys: {sorted(known)}")
        cfg = SPPITrialConfig(**config)
    else:
        raise TypeError(f"config must be an SPPITrialConfig or a mapping, got {type(config).__name__}")
    regression = isinstance(cfg.real, RegressionData)
    if not isinstance(cfg.real, (RegressionData, ClassificationData)) or type(cfg.synth) is not type(cfg.real):
        raise TypeError("real and synth must both be RegressionData or both ClassificationData")
    match = _MEPS_ALPHA.match(cfg.dataset or "")
    if regression and match:  # upstream replaces alpha by the one in the MEPS dataset name
        cfg.alpha = (float(match.group(1)),)
    cfg.alpha = tuple(float(a) for a in np.atleast_1d(open_unit_interval(np.asarray(cfg.alpha, dtype=float), "alpha")))
    cfg.beta = float(open_unit_interval(cfg.beta, "beta"))
    methods = [cfg.methods] if isinstance(cfg.methods, str) else list(cfg.methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown methods {bad or methods}: expected a non-empty list from {METHODS}")
    if regression and "SPI [subset]" in methods:
        raise ValueError("method 'SPI [subset]' is classification-only (upstream has no regression variant)")
    if regression and (cfg.class_conditional or cfg.only_maj_exact):
        raise ValueError("class_conditional / only_maj_exact need class labels; regression runs are marginal "
                         "(upstream forces class_conditional off)")
    cfg.methods = tuple(methods)
    for name in ("n_cal", "n_test", "n_cal_maj", "n_seeds", "k", "chunk_trials"):
        setattr(cfg, name, positive_int(getattr(cfg, name), name))
    positive_int(cfg.seed, "seed", minimum=0)
    if not isinstance(cfg.upstream, (bool, np.bool_)):
        raise TypeError(f"upstream must be a bool, got {type(cfg.upstream).__name__} {cfg.upstream!r}")
    if cfg.top is not None:
        cfg.top = real_scalar(cfg.top, "top")
    _check_criterion(cfg.dist_criterion)
    if cfg.n_cal + 1 >= cfg.n_cal_maj:
        raise ValueError(f"n_cal_maj must exceed n_cal + 1 (upstream aborts otherwise); got n_cal={cfg.n_cal}, "
                         f"n_cal_maj={cfg.n_cal_maj}")
    return cfg


# ----------------------------------------------------------------------------------------
# Sampling (host, numpy PCG64, exact)
# ----------------------------------------------------------------------------------------
def _rows_by_class(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    classes = np.unique(labels)
    return classes, [np.flatnonzero(labels == c) for c in classes]


def _sample_stratified(seed_: int, groups: list[np.ndarray], first: int, second: int = 0):
    a, b = [], []
    for rows in groups:
        perm = np.random.default_rng(seed_).permutation(rows.shape[0])
        if perm.shape[0] < first + second:
            raise ValueError(f"a class has only {perm.shape[0]} rows; {first + second} are needed per class")
        a.append(rows[perm[:first]])
        b.append(rows[perm[first:first + second]])
    return np.concatenate(a), np.concatenate(b)


def _sample_trial(cfg: SPPITrialConfig, seed_: int, real_groups, synth_groups):
    n_real, n_synth = len(cfg.real), len(cfg.synth)
    if cfg.class_conditional:
        C = len(real_groups)
        cal, test = _sample_stratified(seed_, real_groups, cfg.n_cal // C, cfg.n_test // C)
    else:
        rng = np.random.default_rng(seed_)
        perm = rng.permutation(n_real)
        if n_real < cfg.n_cal + cfg.n_test:
            raise ValueError(f"real data has {n_real} rows < n_cal + n_test = {cfg.n_cal + cfg.n_test}")
        cal, test = perm[: cfg.n_cal], perm[cfg.n_cal: cfg.n_cal + cfg.n_test]
    if synth_groups is not None:
        syn, _ = _sample_stratified(seed_, synth_groups, cfg.n_cal_maj // len(synth_groups))
    else:
        if n_synth < cfg.n_cal_maj:
            raise ValueError(f"synthetic data has {n_synth} rows < n_cal_maj = {cfg.n_cal_maj}")
        syn = rng.permutation(n_synth)[: cfg.n_cal_maj]
    return cal, test, syn


def _sample_all(cfg: SPPITrialConfig, seeds: list[int], draw_eps: bool):
    classification = isinstance(cfg.real, ClassificationData)
    real_groups = _rows_by_class(cfg.real.labels)[1] if (classification and cfg.class_conditional) else None
    stratify_synth = classification and (cfg.class_conditional or cfg.only_maj_exact)
    synth_groups = _rows_by_class(cfg.synth.labels)[1] if stratify_synth else None
    cal, test, syn, eps = [], [], [], []
    for s in seeds:
        c, t, y = _sample_trial(cfg, s, real_groups, synth_groups)
        cal.append(c), test.append(t), syn.append(y)
        if draw_eps:
            rng = np.random.default_rng(s)
            eps.append((rng.uniform(size=c.shape[0]), rng.uniform(size=t.shape[0]), rng.uniform(size=y.shape[0])))
    out = [np.stack(cal), np.stack(test), np.stack(syn)]
    if draw_eps:
        out += [np.stack([e[i] for e in eps]) for i in range(3)]
    return out


# ----------------------------------------------------------------------------------------
# Thresholds for every (trial, method, group, alpha)
# ----------------------------------------------------------------------------------------
def _thresholds(cfg, real_groups: np.ndarray, synth_groups: np.ndarray, synth_by_class, top: float) -> np.ndarray:
    """real_groups [T, G, n_g], synth_groups [T, G, N_g] (may be a broadcast view),
    synth_by_class [T, C_maj, M] or None. Returns [T, M, G, A]."""
    T, G, n_g = real_groups.shape
    alphas = np.asarray(cfg.alpha)
    R = real_groups.reshape(T * G, n_g)
    out = []
    for method in cfg.methods:
        if method == "SC":
            q = split_conformal_thresholds(R, alphas, top, backend=cfg.backend, upstream=cfg.upstream)
        elif method == "SC (synth)":
            q = split_conformal_thresholds(np.ascontiguousarray(synth_groups).reshape(T * G, -1), alphas, top,
                                           backend=cfg.backend, upstream=cfg.upstream)
        elif method == "SPI":
            q = sppi_thresholds(R, np.ascontiguousarray(synth_groups).reshape(T * G, -1), alphas, cfg.beta, top,
                                backend=cfg.backend, upstream=cfg.upstream)
        else:  # SPI [subset]
            if synth_by_class is None:
                raise ValueError("'SPI [subset]' needs per-class synthetic sampling: set only_maj_exact=True "
                                 "(marginal) or class_conditional=True")
            if cfg.k > synth_by_class.shape[1]:
                raise ValueError(f"k = {cfg.k} exceeds the number of synthetic classes ({synth_by_class.shape[1]})")
            step = max(1, cfg.chunk_trials)  # bounded memory: pooled sorts of [step, G, C_maj, n + M]
            chosen = np.concatenate([
                select_nearest(class_distances(real_groups[i:i + step], synth_by_class[i:i + step, None],
                                               cfg.dist_criterion), cfg.k)
                for i in range(0, T, step)])  # [T, G, k]
            pool = np.take_along_axis(synth_by_class[:, None], chosen[..., None], axis=2)  # [T, G, k, M]
            q = sppi_thresholds(R, pool.reshape(T * G, -1), alphas, cfg.beta, top, backend=cfg.backend,
                                upstream=cfg.upstream)
        out.append(np.asarray(q).reshape(T, G, alphas.shape[0]))
    return np.stack(out, axis=1)


# ----------------------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------------------
def _frame(cfg, seeds, cov, length, class_cov=None, class_len=None, classes=None, n_classes=0, n_classes_maj=0):
    import pandas as pd

    T, M, A = cov.shape
    t_idx, m_idx, a_idx = (g.ravel() for g in np.meshgrid(np.arange(T), np.arange(M), np.arange(A), indexing="ij"))
    seeds_arr = np.asarray(seeds)
    methods = np.asarray(cfg.methods, dtype=object)
    alphas = np.asarray(cfg.alpha)
    common = {"n_cal": cfg.n_cal, "n_cal_maj": cfg.n_cal_maj, "n_test": cfg.n_test, "dataset": cfg.dataset,
              "beta": cfg.beta, "n_classes": n_classes, "n_classes_maj": n_classes_maj, "k": cfg.k,
              "dist_criterion": cfg.dist_criterion}
    if cfg.age_range is not None:
        common["age_range"] = cfg.age_range
    common.update(cfg.extra)
    base = {"trial": t_idx, "seed": seeds_arr[t_idx], "Method": methods[m_idx]}
    marginal = pd.DataFrame({**base, "Coverage": cov.ravel(), "Length": length.ravel(), "alpha": alphas[a_idx],
                             **common})
    if class_cov is None:
        return marginal
    C = class_cov.shape[-1]
    reps = np.repeat(np.arange(T * M * A), C)
    per_class = pd.DataFrame({"trial": t_idx[reps], "seed": seeds_arr[t_idx[reps]], "Method": methods[m_idx[reps]],
                              "alpha": alphas[a_idx[reps]], "Class": np.tile(classes, T * M * A),
                              "Conditional Coverage": class_cov.ravel(), "Conditional Length": class_len.ravel(),
                              **common,
                              "n_cal_cond": cfg.n_cal // max(n_classes, 1),
                              "n_cal_maj_cond": cfg.n_cal_maj // max(n_classes_maj, 1)})
    marginal["_order"] = np.arange(T * M * A) * (C + 1)
    per_class["_order"] = reps * (C + 1) + 1 + np.tile(np.arange(C), T * M * A)
    out = pd.concat([marginal, per_class], ignore_index=True).sort_values("_order", kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def _run_regression(cfg: SPPITrialConfig, seeds: list[int]):
    cal, test, syn = _sample_all(cfg, seeds, draw_eps=False)
    real, synth = cfg.real, cfg.synth
    cal_scores = cqr_scores(real.intervals[cal], real.y[cal])  # [T, n]
    syn_scores = cqr_scores(synth.intervals[syn], synth.y[syn])  # [T, N]
    top = math.inf if cfg.top is None else cfg.top
    thr = _thresholds(cfg, cal_scores[:, None], syn_scores[:, None], None, top)[:, :, 0]  # [T, M, A]
    metrics = evaluate_intervals(real.intervals[test], real.y[test], thr)
    return _frame(cfg, seeds, metrics.coverage, metrics.length, n_classes=2, n_classes_maj=0)


def _run_classification(cfg: SPPITrialConfig, seeds: list[int]):
    real, synth = cfg.real, cfg.synth
    candidates = np.unique(real.labels)  # class-conditional: np.unique(y_calib); marginal: the subset classes
    synth_classes = np.unique(synth.labels)
    col = np.searchsorted(candidates, real.labels)
    Zr, Pr = aps_precompute(real.probs, np.broadcast_to(candidates, (len(real), candidates.size)))
    Zs, Ps = aps_precompute(synth.probs, synth.labels)
    z_true = np.take_along_axis(Zr, col[:, None], axis=1)[:, 0]
    p_true = np.take_along_axis(Pr, col[:, None], axis=1)[:, 0]
    cal, test, syn, eps_cal, eps_test, eps_syn = _sample_all(cfg, seeds, draw_eps=True)
    T = len(seeds)
    cal_scores = aps_from_precomputed(z_true[cal], p_true[cal], eps_cal)  # [T, n]
    syn_scores = aps_from_precomputed(Zs[syn], Ps[syn], eps_syn)  # [T, N]
    stratified = cfg.class_conditional or cfg.only_maj_exact
    synth_by_class = syn_scores.reshape(T, synth_classes.size, -1) if stratified else None
    if cfg.class_conditional:
        G = candidates.size
        real_groups = cal_scores.reshape(T, G, -1)
        same = np.array_equal(synth_classes, candidates)
        per_class = same if cfg.class_conditional_maj is None else bool(cfg.class_conditional_maj)
        if per_class and not same:
            raise ValueError("class_conditional_maj=True needs the same synthetic and real classes")
        synth_groups = synth_by_class if per_class else np.broadcast_to(syn_scores[:, None], (T, G, syn_scores.shape[1]))
    else:
        real_groups, synth_groups = cal_scores[:, None], syn_scores[:, None]
    top = APS_TOP if cfg.top is None else cfg.top
    thr = _thresholds(cfg, real_groups, synth_groups, synth_by_class, top)  # [T, M, G, A]
    thr = np.moveaxis(thr, 2, -1) if cfg.class_conditional else thr[:, :, 0]  # [T, M, A, C] or [T, M, A]
    M, A = len(cfg.methods), len(cfg.alpha)
    cov, size = np.empty((T, M, A)), np.empty((T, M, A))
    ccov, csize = np.empty((T, M, A, candidates.size)), np.empty((T, M, A, candidates.size))
    with progress_task("SPPI trials", total=T) as advance:
        for lo in range(0, T, cfg.chunk_trials):
            sl = slice(lo, min(T, lo + cfg.chunk_trials))
            m = evaluate_aps_sets(Zr, Pr, test[sl], eps_test[sl], col[test[sl]], thr[sl],
                                  class_conditional=cfg.class_conditional)
            cov[sl], size[sl], ccov[sl], csize[sl] = m.coverage, m.size, m.class_coverage, m.class_size
            advance(sl.stop - sl.start)
    if not cfg.class_conditional:
        return _frame(cfg, seeds, cov, size, n_classes=candidates.size, n_classes_maj=synth_classes.size)
    return _frame(cfg, seeds, cov, size, ccov, csize, candidates, candidates.size, synth_classes.size)


def run_sppi_trials(config: SPPITrialConfig | Mapping[str, Any], *, trial_range: tuple[int, int] | range | None = None):
    """Run seeded trials of one SPPI experiment (spec §5); returns a pandas DataFrame.

    ``config`` is an :class:`SPPITrialConfig` or a mapping with its field names (unknown keys
    raise ValueError). Regression data (MEPS) uses CQR scores and intervals; classification
    data uses randomized APS (top = 1) over the real classes as candidates. For a MEPS dataset
    name ``MEPS_alpha_{a}`` alpha is taken from the name, as upstream does.
    Same config, same numbers.

    ``trial_range``: ``(lo, hi)`` (or a step-1 ``range``) with ``0 <= lo < hi <= n_seeds`` runs
    only trials ``lo..hi-1``: the seeds ``trial_seeds(seed, n_seeds)[lo:hi]`` and the same rows
    (``trial`` column ``lo..hi-1``) as that slice of the full run, because each trial depends
    only on its own seed. This is how the experiments layer splits a run into chunks.
    ``None`` (default) runs all ``n_seeds`` trials.
    """
    cfg = _config(config)
    lo, hi = _trial_range(trial_range, cfg.n_seeds)
    seeds = trial_seeds(cfg.seed, cfg.n_seeds)[lo:hi]
    run = _run_regression if isinstance(cfg.real, RegressionData) else _run_classification
    df = run(cfg, seeds)
    if lo:
        df["trial"] = df["trial"].to_numpy() + lo
    return df


def _trial_range(trial_range: object, n_seeds: int) -> tuple[int, int]:
    """``(lo, hi)`` of a ``trial_range`` argument, checked against ``n_seeds`` (ValueError/TypeError)."""
    if trial_range is None:
        return 0, n_seeds
    if isinstance(trial_range, range):
        if trial_range.step != 1:
            raise ValueError(f"trial_range must be a step-1 range, got {trial_range!r}")
        bounds = (trial_range.start, trial_range.stop)
    elif isinstance(trial_range, (tuple, list)) and len(trial_range) == 2:
        bounds = tuple(trial_range)
    else:
        raise TypeError(f"trial_range must be (lo, hi), a range or None, got {type(trial_range).__name__} "
                        f"{trial_range!r}")
    for b in bounds:
        if isinstance(b, (bool, np.bool_)) or not isinstance(b, (int, np.integer)):
            raise TypeError(f"trial_range bounds must be integers, got {trial_range!r}")
    lo, hi = int(bounds[0]), int(bounds[1])
    if not 0 <= lo < hi <= n_seeds:
        raise ValueError(f"trial_range must satisfy 0 <= lo < hi <= n_seeds = {n_seeds}, got ({lo}, {hi})")
    return lo, hi
