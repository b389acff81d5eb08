"""CAS, the GaFi greedy search and MultiGAN (spec sections 4-7).

**Protocols.** ``protocol="clean"`` (default) fixes the upstream leakage: every search
decision uses the held-out *validation* split of the real training data (the max over
epochs of val accuracy), and the reported CAS is the *test* accuracy at the best-val epoch.
``protocol="upstream_test_selected"`` reproduces upstream for comparison: selection and
reporting both use the max-over-epochs *test* accuracy (optimistic, test-selected).

**Search** (:func:`gafi_search`): greedy coordinate search ckpt epoch -> sigma -> tau with
fast DDR (``search_regen_every``, upstream DS=10), then the final run with the best triple
and accurate DDR (``final_regen_every``, DS=1). Each step's rows are written to
``<out>/<step>/results.parquet`` after every run (atomically, with a checksummed sidecar:
:func:`synthperf.gafi._io.write_table`), so an interrupted search resumes by skipping
finished runs; histories go to ``histories.parquet``; each step plots its score curve
(PNG + PDF). A damaged table is reported once and the runs it held are recomputed; the
tables always list runs in grid order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from .._io import save_figure
from ._io import write_table, read_table
from .classifier import ClassifierConfig, fit_classifier
from .data import DatasetSplits
from .sampling import SamplerSpec, SyntheticSource, check_sigma, check_tau

__all__ = ["PROTOCOLS", "CASResult", "run_cas", "PipelineConfig", "linspace_triplet", "expand_grid",
           "gafi_search", "SearchResult", "run_multigan", "run_name"]

PROTOCOLS = ("clean", "upstream_test_selected")


def linspace_triplet(start: float, stop: float, step: float) -> list[float]:
    """Upstream ``misc.linspace``: inclusive ``start..stop`` by ``step``, rounded to 3 decimals."""
    if step <= 0:
        raise ValueError(f"triplet step must be > 0, got {step}")
    out, v = [], type(step)(start)
    while v <= stop:
        out.append(v)
        v = round(v + step, 3)
    return out


def expand_grid(value, name: str) -> list:
    """A list stays a list; a 3-tuple/list ``(start, stop, step)`` given as a dict
    ``{start, stop, step}`` or a string ``"(a, b, c)"`` expands with :func:`linspace_triplet`."""
    if isinstance(value, str):
        import ast

        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"{name} must be a list or a (start, stop, step) triplet, got {value!r}") from None
        if not isinstance(value, tuple):
            raise ValueError(f"{name} string must hold a (start, stop, step) tuple, got {value!r}")
    if isinstance(value, dict):
        try:
            value = (value["start"], value["stop"], value["step"])
        except KeyError:
            raise ValueError(f"{name} dict needs keys start, stop, step; got {sorted(value)}") from None
    if isinstance(value, tuple):
        if len(value) != 3:
            raise ValueError(f"{name} triplet must be (start, stop, step), got {value!r}")
        _check_numbers(value, name)
        return linspace_triplet(*value)
    if isinstance(value, list) and value:
        _check_numbers(value, name)
        return list(value)
    raise ValueError(f"{name} must be a non-empty list or a (start, stop, step) triplet, got {value!r}")


def _check_numbers(values, name: str) -> None:
    import numbers

    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} entries must be numbers, got {type(v).__name__} {v!r}")


@dataclass
class CASResult:
    """``selection_score``: what search decisions use; ``cas``: the reported accuracy."""

    protocol: str
    selection_score: float
    cas: float
    best_epoch: int
    history: list[dict]


def _eval_plan(splits: DatasetSplits, protocol: str):
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "clean":
        return {"val": splits.val, "test": splits.test}, "val"
    return {"test": splits.test}, "test"


def run_cas(source, splits: DatasetSplits, cfg: ClassifierConfig, *, protocol: str = "clean",
            checkpoint_dir: str | Path | None = None, resume: bool = False, device: str = "cpu",
            description: str = "CAS") -> CASResult:
    """Train a fresh classifier on ``source`` (synthetic data, or real data for the reference)
    and score it on real data under ``protocol`` (see module docstring)."""
    eval_sets, select_on = _eval_plan(splits, protocol)
    fit = fit_classifier(source, splits.num_classes, cfg, eval_sets=eval_sets, select_on=select_on,
                         checkpoint_dir=checkpoint_dir, resume=resume, device=device, description=description)
    best = fit.best_row()
    return CASResult(protocol=protocol, selection_score=best[f"{select_on}_accuracy"],
                     cas=best["test_accuracy"], best_epoch=fit.best_epoch, history=fit.history)


@dataclass
class PipelineConfig:
    """PIPELINE keys of ``Pipeline.yaml``/``MultiGAN.yaml`` (grids already expanded)."""

    ckpt_epochs: list[int] = field(default_factory=lambda: linspace_triplet(150, 500, 10))
    stddev_search: list[float] = field(default_factory=lambda: linspace_triplet(1.0, 2.0, 0.05))
    threshold_search: list[float] = field(default_factory=lambda: linspace_triplet(0.0, 0.9, 0.1))
    steps: tuple[str, ...] = ("all",)
    filtering_attempts: int = -1
    class_samples: int | None = None
    search_regen_every: int = 10
    final_regen_every: int = 1
    replace_fraction: float = 1.0
    protocol: str = "clean"
    batch_size: int = 512

    def __post_init__(self) -> None:
        for s in self.stddev_search:
            check_sigma(s)
        for t in self.threshold_search:
            check_tau(t)
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        bad = set(self.steps) - {"all", "ckpt", "stddev", "threshold", "best"}
        if bad:
            raise ValueError(f"steps has unknown entries {sorted(bad)}; use all, ckpt, stddev, threshold, best")


def run_name(ckpt: int, ds: int, r: float, sigma: float, tau: float) -> str:
    """Upstream run name ``ckpt{NNN}_DS{P}_r{r}_std{sigma}_filter{tau}``."""
    return f"ckpt{ckpt:03d}_DS{ds}_r{r}_std{sigma}_filter{tau}"


@dataclass
class SearchResult:
    best_ckpt: int
    best_sigma: float
    best_tau: float
    final: dict
    tables: dict[str, pd.DataFrame]


def _plot_step(df: pd.DataFrame, column: str, step: str, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3))
    ax = fig.add_subplot()
    d = df.sort_values(column)
    ax.plot(d[column], d["selection_score"], "o-", label="selection score")
    ax.plot(d[column], d["cas"], "s--", label="reported CAS")
    ax.set_xlabel(column), ax.set_ylabel("accuracy"), ax.set_title(f"GaFi search: {step}")
    ax.legend(fontsize=7)
    save_figure(fig, path)


def _finished_runs(res_path: Path, hist_path: Path, step: str) -> tuple[list[dict], list[dict]]:
    """(result rows, history rows) of the finished runs of a search step on disk (verified
    tables, :func:`synthperf.gafi._io.read_table`; a damaged one is reported once and its runs
    recomputed). A run is finished when it has its results row *and* its history rows: histories
    are written before results, so a kill between the two leaves history rows of an unfinished
    run (dropped here; it runs again), and a damaged ``histories.parquet`` makes the runs it held
    run again rather than leaving their histories lost."""
    res = read_table(res_path, what=f"every run of the {step!r} step")
    hist = read_table(hist_path, what=f"every run of the {step!r} step")
    rows = res.to_dict("records") if res is not None else []
    hists = hist.to_dict("records") if hist is not None else []
    with_history = {h.get("checkpoint_name") for h in hists}
    rows = [r for r in rows if r["checkpoint_name"] in with_history]
    done = {r["checkpoint_name"] for r in rows}
    return rows, [h for h in hists if h.get("checkpoint_name") in done]


def _in_grid_order(rows: list[dict], hists: list[dict], names: Sequence[str]) -> tuple[list[dict], list[dict]]:
    """Rows and history rows sorted by their run's place in the step's grid ``names`` (runs of
    an earlier grid, not in ``names``, first, in their stored order): the tables of a resumed
    search equal an uninterrupted one's whichever runs had to be recomputed."""
    place = {n: i for i, n in enumerate(names)}

    def key(r: dict) -> int:
        return place.get(r["checkpoint_name"], -1)

    return sorted(rows, key=key), sorted(hists, key=key)


def gafi_search(checkpoints: Mapping[int, Callable], classifier: Callable, splits: DatasetSplits,
                cls_cfg: ClassifierConfig, pcfg: PipelineConfig, out_dir: str | Path, *,
                device: str = "cpu", seed: int = 42, resume: bool = True) -> SearchResult:
    """Greedy GaFi search over ``checkpoints`` (epoch -> loaded generator) (spec section 5).

    With ``resume`` (default) runs already listed in a step's ``results.parquet`` are skipped;
    ``resume=False`` starts every step afresh and overwrites those tables.

    Requested ``ckpt_epochs`` missing from ``checkpoints`` are skipped (as upstream); none
    available raises ValueError.
    """
    out = Path(out_dir)
    class_samples = pcfg.class_samples or splits.class_samples()
    epochs = [e for e in pcfg.ckpt_epochs if e in checkpoints]
    if not epochs:
        raise ValueError(f"none of ckpt_epochs {pcfg.ckpt_epochs[:5]}... has a generator checkpoint "
                         f"(available: {sorted(checkpoints)[:10]})")
    steps = set(pcfg.steps)
    if "all" in steps:
        steps = {"ckpt", "stddev", "threshold", "best"}
    tables: dict[str, pd.DataFrame] = {}

    def run_step(step: str, grid: list[tuple[int, float, float]], ds: int, column: str) -> pd.DataFrame:
        sdir = out / step
        res_path, hist_path = sdir / "results.parquet", sdir / "histories.parquet"
        names = [run_name(ckpt, ds, pcfg.replace_fraction, sigma, tau) for ckpt, sigma, tau in grid]
        rows, hists = _finished_runs(res_path, hist_path, step) if resume else ([], [])
        done = {r["checkpoint_name"] for r in rows}
        for (ckpt, sigma, tau), name in zip(grid, names):
            if name in done:
                continue
            source = SyntheticSource([SamplerSpec(checkpoints[ckpt], sigma=sigma, tau=tau)], classifier,
                                     class_samples, regen_every=ds, replace_fraction=pcfg.replace_fraction,
                                     max_attempts=pcfg.filtering_attempts, seed=seed, batch_size=pcfg.batch_size,
                                     device=device)
            res = run_cas(source, splits, cls_cfg, protocol=pcfg.protocol, device=device, description=f"{step} {name}")
            rows.append({"checkpoint_name": name, "step": step, "ckpt": ckpt, "sigma": sigma, "tau": tau, "DS": ds,
                         "r": pcfg.replace_fraction, "selection_score": res.selection_score, "cas": res.cas,
                         "best_epoch": res.best_epoch, "protocol": res.protocol})
            hists.extend({"checkpoint_name": name, **h} for h in res.history)
            rows, hists = _in_grid_order(rows, hists, names)
            write_table(pd.DataFrame(hists), hist_path)
            write_table(pd.DataFrame(rows), res_path)
        df = pd.DataFrame(rows)
        tables[step] = df
        if len(df) and column:
            _plot_step(df, column, step, sdir / "search")
        return df

    def best_of(df: pd.DataFrame) -> dict:
        return df.loc[df["selection_score"].idxmax()].to_dict()  # first max, as argmax

    ckpt, sigma, tau = epochs[-1], 1.0, 0.0
    if "ckpt" in steps:
        ckpt = int(best_of(run_step("ckpt", [(e, 1.0, 0.0) for e in epochs], pcfg.search_regen_every, "ckpt"))["ckpt"])
    if "stddev" in steps:
        sigma = float(best_of(run_step("stddev", [(ckpt, s, 0.0) for s in pcfg.stddev_search],
                                       pcfg.search_regen_every, "sigma"))["sigma"])
    if "threshold" in steps:
        tau = float(best_of(run_step("threshold", [(ckpt, sigma, t) for t in pcfg.threshold_search],
                                     pcfg.search_regen_every, "tau"))["tau"])
    final: dict = {}
    if "best" in steps:
        final = best_of(run_step("best", [(ckpt, sigma, tau)], pcfg.final_regen_every, ""))
    return SearchResult(ckpt, sigma, tau, final, tables)


def run_multigan(samplers: Sequence[SamplerSpec], classifier: Callable, splits: DatasetSplits,
                 cls_cfg: ClassifierConfig, *, class_samples: int | None = None, regen_every: int = 1,
                 filtering_attempts: int = -1, protocol: str = "clean", seed: int = 42,
                 batch_size: int = 512, device: str = "cpu") -> CASResult:
    """MultiGAN CAS (spec section 6): each of the N tuned generators gives class_samples // N
    filtered samples per class, regenerated every ``regen_every`` epochs (upstream 1)."""
    cs = class_samples or splits.class_samples()
    source = SyntheticSource(samplers, classifier, cs, regen_every=regen_every, max_attempts=filtering_attempts,
                             seed=seed, batch_size=batch_size, device=device)
    return run_cas(source, splits, cls_cfg, protocol=protocol, device=device, description="MultiGAN")
