"""Reports: coverage and length/size vs alpha (mean ± SE, SPPI worst-case bounds), conditional
coverage per class, Markdown/LaTeX tables (mean ± SE), PNG + PDF figures and ``report.md``.

SE is the standard error over trials, std(ddof=1)/sqrt(T). Infinite lengths (trivial SC
intervals) are dropped from the length means and counted in the tables' ``inf`` column, as
upstream's plots drop them; a mean with no finite value prints as ``inf`` (all infinite) or
``n/a`` (NaN). Bound lines are :func:`synthperf.conformal.coverage_bounds` (specs/sppi.md §1c)
for the run's (n, N, beta): per class in class-conditional runs (n = n_cal_cond,
N = n_cal_maj_cond), and N = k * per-class pool for SPI-Subset. The bounds are step functions
of alpha (ranks), drawn as steps; x ticks sit at the evaluated alphas. Each grid point is its
own row/panel (a grid column is never averaged). Every method has one colour in every figure
(:func:`method_color`).

Findings (:func:`sppi_checks`) state their uncertainty: a set-size difference counts only beyond
``Z_SIGNIFICANT`` = 3 paired SEs, split conformal that is the full set by construction
(alpha < 1/(n+1)) is named as such, and coverage within ±3 SE of the worst-case bounds is
reported as consistent with theory.
"""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from .._io import atomic_write_bytes, save_figure  # save_figure: the one figure-saving helper (re-exported)
from .._typing import LazyModule
from .config import parse_override
from .store import load_results

if TYPE_CHECKING:
    import pandas as pd
else:  # annotations resolve to pandas' classes; importing this module does not import pandas
    pd = LazyModule("pandas")

__all__ = ["summarize", "sppi_bounds", "plot_results", "write_report", "filter_results", "markdown_table",
           "latex_table", "save_figure", "method_color", "METHOD_COLORS", "sppi_checks", "group_columns",
           "format_pm", "Z_SIGNIFICANT"]

_GROUP_CANDIDATES = ("run", "dataset", "age_range", "n_cal", "n_cal_maj", "beta", "k")
_PER_TRIAL = {"point", "trial", "seed", "Method", "Coverage", "Length", "alpha", "Class", "Conditional Coverage",
              "Conditional Length", "n_cal_cond", "n_cal_maj_cond", "n_classes", "n_classes_maj", "dist_criterion"}
#: identifiers and counts: shown, never averaged (generic GaFi / flows / guidance reports)
ID_COLUMNS = frozenset({"point", "trial", "seed", "kept_seed", "class_id", "n", "n_samples", "image", "file",
                        "prompt"})
#: one colour per method in every figure (the demo uses the same map)
METHOD_COLORS = {"SC": "#1f77b4", "SC (synth)": "#7f7f7f", "SPI": "#d62728", "SPI [subset]": "#8c564b",
                 "SC (real, conformal)": "#1f77b4", "quantile (real)": "#9467bd", "synthetic only": "#7f7f7f",
                 "SPPI": "#d62728"}
_PALETTE = ("#2ca02c", "#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#9467bd", "#8c564b", "#393b79", "#637939",
            "#843c39")
Z_SIGNIFICANT = 3.0


def method_color(name: Any) -> str:
    """The fixed colour of a method (or any label): :data:`METHOD_COLORS`, else a stable palette
    entry chosen by a CRC32 of the name (the same in every figure and process)."""
    key = str(name)
    return METHOD_COLORS.get(key) or _PALETTE[zlib.crc32(key.encode("utf-8")) % len(_PALETTE)]


# ----------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------
def _se(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


def _mean(v: np.ndarray) -> float:
    """Mean of the finite values; inf when every value is infinite, NaN when there is none."""
    v = np.asarray(v, dtype=float)
    fin = v[np.isfinite(v)]
    if fin.size:
        return float(fin.mean())
    return float("inf") if np.isinf(v).any() else float("nan")


def _units(df) -> list[str]:
    return [c for c in ("run", "point") if c in df.columns]


def group_columns(df) -> list[str]:
    """Columns that distinguish panels/rows: run/dataset/age group/sizes plus every grid column.

    A grid column is one that varies across grid points but is constant within each (run, point),
    whatever its dtype (e.g. a float ``rho``); a ``grid.X`` duplicate of a group column is dropped.
    Without a ``point`` column, non-float columns that vary are used.
    """
    cols = [c for c in _GROUP_CANDIDATES if c in df.columns and df[c].nunique(dropna=False) > 1]
    units = _units(df)
    extra = []
    for c in df.columns:
        if c in _PER_TRIAL or c in ID_COLUMNS or c in cols or c in _GROUP_CANDIDATES:
            continue
        if df[c].nunique(dropna=False) <= 1:
            continue
        if units:
            if (df.groupby(units, sort=False)[c].nunique(dropna=False) > 1).any():
                continue  # varies within a point: a measurement or a row key, not a setting
        elif df[c].dtype.kind == "f":
            continue
        extra.append(c)
    extra = [c for c in extra if not (c.startswith("grid.") and c[5:] in cols + extra)]
    return cols + extra


def _marginal(df):
    return df[df["Class"].isna()] if "Class" in df.columns else df


def summarize(df, value_cols: Sequence[str] = ("Coverage", "Length"), by: Sequence[str] | None = None):
    """Mean, SE, trials and count of infinite values per (groups..., Method, alpha)."""
    import pandas as pd

    m = _marginal(df)
    by = list(by if by is not None else group_columns(df)) + ["Method", "alpha"]
    rows = []
    for key, g in m.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["trials"] = int(g["trial"].nunique()) if "trial" in g else len(g)
        for col in value_cols:
            v = g[col].to_numpy(dtype=float)
            row[f"{col}_mean"] = _mean(v)
            row[f"{col}_se"] = _se(v)
            row[f"{col}_inf"] = int(np.isinf(v).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _calibration_sizes(df) -> tuple[bool, int, int, int, int] | None:
    """(per_class, n, N, n_min, n_max) of the rows ``df`` (one panel); n_min/n_max over classes."""
    if df.empty or "n_cal" not in df.columns:
        return None
    first = df.iloc[0]
    pc = df[df["Class"].notna()] if "Class" in df.columns else df.iloc[:0]
    if len(pc):
        sizes = pc["n_cal_cond"].to_numpy(float)
        return True, int(pc.iloc[0]["n_cal_cond"]), int(pc.iloc[0]["n_cal_maj_cond"]), int(sizes.min()), \
            int(sizes.max())
    n = int(first["n_cal"])
    return False, n, int(first.get("n_cal_maj", 0)), n, n


def sppi_bounds(df, method: str, alpha):
    """Worst-case SPPI coverage bounds for the rows of ``df`` (one panel), or None if not SPPI.

    ``alpha``: a float (returns a float pair) or an array (returns a pair of arrays).
    """
    from ..conformal import coverage_bounds

    if method not in ("SPI", "SPI [subset]") or df.empty:
        return None
    first = df.iloc[0]
    sizes = _calibration_sizes(df)
    if sizes is None:
        return None
    per_class, n, N = sizes[:3]
    if per_class and int(first["n_classes_maj"]) != int(first["n_classes"]):  # pooled synthetic scores
        N = int(first["n_cal_maj"])
    if method == "SPI [subset]":
        N = int(first["k"]) * (int(first["n_cal_maj"]) // max(int(first["n_classes_maj"]), 1))
    if N <= n + 1:
        return None
    a = np.asarray(alpha, dtype=float)
    return coverage_bounds(n, N, float(a) if a.ndim == 0 else a, float(first["beta"]))


def _with_class_rows(df, rows):
    """``rows`` (marginal rows of one panel/method) plus the per-class rows of the same points."""
    if "Class" not in df.columns or not df["Class"].notna().any() or rows.empty:
        return rows
    mask = df["Class"].notna() & df["Method"].isin(rows["Method"].unique())
    for col in ("run", "point"):
        if col in df.columns:
            mask &= df[col].isin(rows[col].unique())
    return df[df.index.isin(rows.index) | mask]


def filter_results(df, filters: Iterable[str]):
    """Keep rows where every ``key=value`` holds (value parsed as YAML, compared as text otherwise)."""
    for f in filters:
        key, value = parse_override(f)
        if key not in df.columns:
            raise ValueError(f"--filter {f!r}: no column {key!r}; columns: {', '.join(map(str, df.columns))}")
        col = df[key]
        mask = col == value
        if not mask.any():
            mask = col.astype(str) == str(value)
        df = df[mask]
    if df.empty:
        raise ValueError(f"no rows left after the filters {list(filters)}")
    return df


# ----------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------
def format_pm(mean: float, se: float, scale: float = 1.0, digits: int | None = 3) -> str:
    """``mean ± se`` (scaled); ``n/a`` for NaN, ``inf`` / ``-inf`` for infinite means.

    ``digits``: decimals; None = 4 significant digits for the mean and 2 for the SE (any scale).
    """
    if math.isnan(mean):
        return "n/a"
    if math.isinf(mean):
        return "inf" if mean > 0 else "-inf"
    if digits is None:
        return f"{mean * scale:.4g} ± {se * scale:.2g}" if math.isfinite(se) else f"{mean * scale:.4g}"
    return f"{mean * scale:.{digits}f} ± {se * scale:.{digits}f}" if math.isfinite(se) else f"{mean * scale:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def latex_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def esc(s: Any) -> str:
        return str(s).replace("±", r"$\pm$").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")

    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule", " & ".join(map(esc, header)) + r" \\",
             r"\midrule"]
    lines += [" & ".join(map(esc, r)) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _write_tables(stem: Path, header, rows) -> str:
    """``<stem>.md`` and ``<stem>.tex``: the suffix is appended (a stem ``..._alpha0.1`` keeps ``.1``)."""
    md = markdown_table(header, rows)
    atomic_write_bytes(Path(f"{stem}.md"), md.encode("utf-8"))
    atomic_write_bytes(Path(f"{stem}.tex"), latex_table(header, rows).encode("utf-8"))
    return md


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _label(groups: Sequence[str], key) -> str:
    return ", ".join(f"{g}={v}" for g, v in zip(groups, key if isinstance(key, tuple) else (key,)))


def _setting_title(df) -> str:
    """The settings shared by the rows of one panel, e.g. ``imagenet_like, n=15, N=400, beta=0.4``."""
    parts = []
    if "dataset" in df.columns and df["dataset"].nunique() == 1:
        parts.append(str(df["dataset"].iloc[0]))
    if "age_range" in df.columns and df["age_range"].nunique() == 1:
        parts.append(f"ages {df['age_range'].iloc[0]}")
    sizes = _calibration_sizes(df)
    if sizes is not None:
        per_class, n, N, lo, hi = sizes
        if per_class:
            parts.append("class-conditional, n per class=" + (f"{lo}" if lo == hi else f"{lo}-{hi}") + f", N={N}")
        else:
            parts.append(f"n={n}, N={N}")
    if "beta" in df.columns and df["beta"].nunique() == 1:
        parts.append(f"beta={df['beta'].iloc[0]:g}")
    return ", ".join(parts) or "results"


def _panels(df, groups: list[str]):
    if not groups:
        return [(_setting_title(df), df)]
    return [(_label(groups, key), sub) for key, sub in df.groupby(groups, sort=False, dropna=False)]


def _set_value_ticks(ax, values: Sequence[float], name: str = "alpha") -> None:
    """x ticks exactly at the evaluated values (alpha or q)."""
    values = sorted(float(v) for v in values)
    ax.set_xticks(values, [f"{v:g}" for v in values], fontsize=7 if len(values) > 6 else 8,
                  rotation=45 if len(values) > 8 else 0)
    ax.set_xlabel(name)


def _step_bounds(ax, sub, method: str, alphas: Sequence[float]) -> None:
    """SPPI bounds as the step functions of alpha they are (evaluated on a fine alpha grid)."""
    lo_a, hi_a = min(alphas), max(alphas)
    pad = 0.02 * (hi_a - lo_a) if hi_a > lo_a else 0.005
    grid = np.unique(np.concatenate([np.linspace(max(lo_a - pad, 1e-6), min(hi_a + pad, 1 - 1e-6), 600),
                                     np.asarray(alphas, float)]))
    b = sppi_bounds(sub[sub["Method"] == method], method, grid)
    if b is None:
        return
    lo, hi = (np.asarray(v, float) for v in b)
    color = method_color(method)
    ax.plot(grid, lo, color=color, ls="--", lw=1, drawstyle="steps-post", label=f"{method} worst-case bounds")
    ax.plot(grid, hi, color=color, ls="--", lw=1, drawstyle="steps-post")


def _vs_alpha(df, groups, col: str, ylabel: str, stem: Path, bounds: bool) -> Path:
    panels = _panels(_marginal(df), groups)
    fig = _figure(4.4 * len(panels), 3.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, sub) in zip(axes, panels):
        summ = summarize(sub, (col,), by=[])
        alphas = sorted(summ["alpha"].unique())
        for method, s in summ.groupby("Method", sort=False):
            s = s.sort_values("alpha")
            ok = np.isfinite(s[f"{col}_mean"].to_numpy())
            ax.errorbar(s["alpha"][ok], s[f"{col}_mean"][ok], yerr=s[f"{col}_se"][ok].fillna(0), marker="o", ms=4,
                        capsize=3, label=method, color=method_color(method))
            if bounds:
                _step_bounds(ax, _with_class_rows(df, sub[sub["Method"] == method]), method, alphas)
        if bounds:
            ax.plot(alphas, [1 - a for a in alphas], color="k", lw=0.6, alpha=0.5, label="1 - alpha")
        _set_value_ticks(ax, alphas)
        ax.set_ylabel(ylabel), ax.set_title(f"{title}\n{_setting_title(sub)}" if groups else title, fontsize=9)
    axes[-1].legend(fontsize=7, loc="best")
    trials = int(df["trial"].nunique()) if "trial" in df.columns else len(df)
    fig.suptitle(f"{ylabel} vs alpha (mean ± SE over {trials} trials)", fontsize=10)
    save_figure(fig, stem)
    return Path(f"{stem}.png")


def _per_class(df, groups, col: str, ylabel: str, stem: Path, classes: Sequence[int] | None) -> list[Path]:
    pc = df[df["Class"].notna()]
    out = []
    for a in sorted(pc["alpha"].unique()):
        panels = _panels(pc[pc["alpha"] == a], groups)
        fig = _figure(5.5 * len(panels), 3.6)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, sub) in zip(axes, panels):
            cls = sorted(sub["Class"].unique())
            if classes:
                cls = [c for c in cls if int(c) in set(classes)]
            elif len(cls) > 12:
                cls = cls[:10]
            methods = list(dict.fromkeys(sub["Method"]))
            width = 0.8 / max(len(methods), 1)
            for j, m in enumerate(methods):
                g = sub[sub["Method"] == m].groupby("Class")[col]
                mean = g.agg(lambda v: _mean(v.to_numpy(dtype=float))).reindex(cls)
                se = g.agg(lambda v: _se(v.to_numpy(dtype=float))).reindex(cls)
                ax.bar(np.arange(len(cls)) + j * width, mean, width, yerr=se.fillna(0), capsize=2, label=m,
                       color=method_color(m))
            if col == "Conditional Coverage":
                ax.axhline(1 - a, color="k", lw=0.7)
            ax.set_xticks(np.arange(len(cls)) + 0.4 - width / 2, [str(int(c)) for c in cls], fontsize=7)
            ax.set_xlabel("class"), ax.set_ylabel(ylabel), ax.set_title(f"{title}, alpha={a:g}", fontsize=9)
        axes[-1].legend(fontsize=7)
        s = stem.parent / f"{stem.name}_alpha{a:g}"
        save_figure(fig, s)
        out.append(Path(f"{s}.png"))
    return out


# ----------------------------------------------------------------------------------------
# Findings
# ----------------------------------------------------------------------------------------
def _paired_difference(sub, a: str = "SC", b: str = "SPI", col: str = "Length") -> tuple[float, float, int, int]:
    """mean and SE over trials of ``col[a] - col[b]``, paired by (run, point, trial); also the
    number of pairs used and of pairs dropped because a value is infinite."""
    idx = _units(sub) + ["trial"]
    wide = sub[sub["Method"].isin([a, b])].pivot_table(index=idx, columns="Method", values=col, aggfunc="mean")
    if a not in wide or b not in wide:
        return float("nan"), float("nan"), 0, 0
    d = (wide[a] - wide[b]).to_numpy(float)
    fin = d[np.isfinite(d)]
    return (float(fin.mean()) if fin.size else float("nan")), _se(fin), int(fin.size), int(d.size - fin.size)


def sppi_checks(df, groups: Sequence[str] | None = None) -> list[str]:
    """Markdown bullet lines: SPI vs SC set size per setting (paired over trials, significant only
    beyond ``Z_SIGNIFICANT`` SE, trivial SC named) and SPPI coverage vs its worst-case bounds."""
    groups = list(group_columns(df) if groups is None else groups)
    lines: list[str] = []
    marginal = _marginal(df)
    smaller, noise, larger, trivial, details = [], [], [], [], []
    keys = groups + ["alpha"]
    for key, g in marginal.groupby(keys, sort=False, dropna=False):
        if not {"SPI", "SC"} <= set(g["Method"]):
            continue
        key = key if isinstance(key, tuple) else (key,)
        alpha = float(key[-1])
        label = _label(keys, key[:-1] + (f"{alpha:g}",))
        spi, sc = g[g["Method"] == "SPI"], g[g["Method"] == "SC"]
        sizes = _calibration_sizes(_with_class_rows(df, sc))
        n_lo, n_hi = (sizes[3], sizes[4]) if sizes else (0, 0)
        sc_inf = int(np.isinf(sc["Length"].to_numpy(float)).sum())
        stat = f"SPI {format_pm(_mean(spi['Length']), _se(spi['Length']))} vs SC " \
               f"{format_pm(_mean(sc['Length']), _se(sc['Length']))}"
        if sizes and alpha < 1.0 / (n_hi + 1):
            trivial.append(label)
            details.append(f"  - {label}: SC is the full set by construction (alpha < 1/(n+1) = {1 / (n_hi + 1):.3f} "
                           f"with n={n_hi}{' per class' if sizes[0] else ''}); not counted as an SPPI gain ({stat}).")
            continue
        diff, se, pairs, dropped = _paired_difference(g)
        z = diff / se if se > 0 else (math.copysign(math.inf, diff) if diff != 0 else 0.0)
        note = ""
        if sizes and alpha < 1.0 / (n_lo + 1):
            note += f" SC is the full set for the classes with n < 1/alpha - 1 (n from {n_lo} to {n_hi})."
        if dropped or sc_inf:
            note += f" {dropped} trial(s) with an infinite length were left out of the difference."
        if not math.isfinite(se) and pairs < 2:
            noise.append(label)
            details.append(f"  - {label}: {stat}; one paired trial, no SE: not testable.{note}")
        elif z > Z_SIGNIFICANT:
            smaller.append(label)
            details.append(f"  - {label}: SPI smaller than SC by {diff:.3f} ± {se:.3f} "
                           f"({z:.1f} SE, paired over {pairs} trials; more than {Z_SIGNIFICANT:g} SE).{note}")
        elif z < -Z_SIGNIFICANT:
            larger.append(label)
            details.append(f"  - {label}: SPI larger than SC by {-diff:.3f} ± {se:.3f} "
                           f"({-z:.1f} SE, paired over {pairs} trials).{note}")
        else:
            noise.append(label)
            details.append(f"  - {label}: {stat}; difference SC - SPI = {diff:.3f} ± {se:.3f} "
                           f"(|z| = {abs(z):.1f} ≤ {Z_SIGNIFICANT:g}): difference within noise.{note}")
    tested = len(smaller) + len(noise) + len(larger)
    if tested or trivial:
        if tested and len(smaller) == tested:
            head = (f"- **Yes: SPPI's sets/intervals were smaller than SC's (real only) by more than "
                    f"{Z_SIGNIFICANT:g} SE at every non-trivial setting** ({tested} of {tested}).")
        elif tested:
            head = (f"- SPPI's sets/intervals were smaller than SC's by more than {Z_SIGNIFICANT:g} SE at "
                    f"{len(smaller)} of {tested} non-trivial settings; the difference was within noise at "
                    f"{len(noise)} and SPPI's were larger by more than {Z_SIGNIFICANT:g} SE at {len(larger)}.")
        else:
            head = "- No non-trivial setting to compare SPPI and SC at."
        if trivial:
            head += (f" At {len(trivial)} setting(s) SC is trivially the full set (alpha < 1/(n+1)); "
                     f"those are listed, not counted.")
        lines += [head] + details
    lines += _bound_checks(df, groups)
    return lines


def _bound_checks(df, groups) -> list[str]:
    inside, noise, outside = 0, [], []
    for (title, sub) in _panels(_marginal(df), groups):
        for (method, a), g in sub.groupby(["Method", "alpha"], sort=False):
            b = sppi_bounds(_with_class_rows(df, g), method, a)
            if b is None:
                continue
            cov = g["Coverage"].to_numpy(dtype=float)
            mean, se = _mean(cov), _se(cov)
            text = f"{title} {method} alpha={a:g}: {format_pm(mean, se)} vs [{b[0]:.3f}, {b[1]:.3f}]"
            if b[0] <= mean <= b[1]:
                inside += 1
            elif math.isfinite(se) and b[0] - Z_SIGNIFICANT * se <= mean <= b[1] + Z_SIGNIFICANT * se:
                noise.append(text)
            else:
                outside.append(text)
    total = inside + len(noise) + len(outside)
    if not total:
        return []
    if not outside:
        line = (f"- **Yes: every SPPI mean coverage is consistent with its guaranteed worst-case bounds** "
                f"({inside} of {total} inside")
        line += (f", {len(noise)} outside by less than {Z_SIGNIFICANT:g} SE, i.e. within trial noise: "
                 + "; ".join(noise) + ")." if noise else "; the bounds hold for the expected coverage).")
        return [line]
    line = (f"- **No: {len(outside)} of {total} SPPI mean coverages lie outside their worst-case bounds by more "
            f"than {Z_SIGNIFICANT:g} SE**: " + "; ".join(outside) + ".")
    if noise:
        line += f" {len(noise)} more lie outside by less than {Z_SIGNIFICANT:g} SE (trial noise): " + "; ".join(noise) + "."
    return [line]


_sppi_checks = sppi_checks  # former private name


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------
def plot_results(df: pd.DataFrame, out_dir: str | os.PathLike, *, title: str = "Experiment report",
                 plot_classes: Sequence[int] | None = None,
                 configs: Mapping[int, Mapping[str, object]] | None = None) -> Path:
    """Write figures, tables and ``report.md`` for the rows ``df`` into ``out_dir``; returns report.md."""
    out = Path(out_dir)
    plots, tables = out / "plots", out / "tables"
    plots.mkdir(parents=True, exist_ok=True), tables.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}\n"]
    if "Method" in df.columns and "Coverage" in df.columns:
        md += _sppi_report(df, plots, tables, plot_classes)
    else:
        from .reports_generic import generic_report

        md.append(generic_report(df, plots, tables))
    if configs:
        md.append("## Resolved configs\n")
        for p, cfg in configs.items():
            extra = ", ".join(f"{k}={cfg[k]}" for k in ("n_seeds", "alpha", "seed") if k in cfg)
            md.append(f"- point {p}: [points/p{p:04d}/config.yaml](points/p{p:04d}/config.yaml)"
                      + (f" ({extra})" if extra else ""))
        md.append("")
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(md).encode("utf-8"))
    return report


def _sppi_report(df, plots: Path, tables: Path, plot_classes) -> list[str]:
    groups = group_columns(df)
    has_class = "Class" in df.columns and df["Class"].notna().any()
    classification = "n_classes" in df.columns and (df["n_classes"] != 2).any()
    length_label = "mean set size" if classification or has_class else "mean interval length"
    figs = [_vs_alpha(df, groups, "Coverage", "coverage", plots / "coverage", True),
            _vs_alpha(df, groups, "Length", length_label, plots / "length", False)]
    if has_class:
        figs += _per_class(df, groups, "Conditional Coverage", "conditional coverage", plots / "conditional_coverage",
                           plot_classes)
        figs += _per_class(df, groups, "Conditional Length", "conditional size", plots / "conditional_size",
                           plot_classes)
    md = ["## Findings\n", *sppi_checks(df, groups), "", "## Figures\n"]
    md += [f"![{f.stem}](plots/{f.name})\n" for f in figs]
    summ = summarize(df, by=groups)
    header = groups + ["Method", "alpha", "trials", "Coverage (mean ± SE)", "Length/size (mean ± SE)", "inf lengths",
                       "SPPI bounds"]
    rows = []
    marginal = _marginal(df)
    for _, r in summ.iterrows():
        sub = marginal
        for g in groups:
            sub = sub[sub[g].isna()] if _isna(r[g]) else sub[sub[g] == r[g]]
        sub = sub[(sub["Method"] == r["Method"]) & (sub["alpha"] == r["alpha"])]
        b = sppi_bounds(_with_class_rows(df, sub), r["Method"], r["alpha"])
        rows.append([r[g] for g in groups] + [r["Method"], f"{r['alpha']:g}", r["trials"],
                                              format_pm(r["Coverage_mean"], r["Coverage_se"]),
                                              format_pm(r["Length_mean"], r["Length_se"]), r["Length_inf"],
                                              f"[{b[0]:.3f}, {b[1]:.3f}]" if b else "-"])
    md.append("## Summary (mean ± SE over trials)\n")
    md.append(_write_tables(tables / "summary", header, rows))
    if has_class:
        pc = df[df["Class"].notna()]
        for a in sorted(pc["alpha"].unique()):
            sub = pc[pc["alpha"] == a]
            cols = [(k, m) for k, g in _panels(sub, groups) for m in dict.fromkeys(g["Method"])]
            rows = []
            for c in sorted(sub["Class"].unique()):
                row = [int(c)]
                for k, g in _panels(sub, groups):
                    for m in dict.fromkeys(g["Method"]):
                        v = g[(g["Class"] == c) & (g["Method"] == m)]["Conditional Coverage"].to_numpy(float)
                        row.append(format_pm(_mean(v), _se(v), 100.0, 1) if v.size else "-")
                rows.append(row)
            header = ["class"] + [f"{m} ({k})" if groups else m for k, m in cols]
            md.append(f"## Conditional coverage ×100 per class, alpha={a:g} (mean ± SE)\n")
            md.append(_write_tables(tables / f"class_coverage_alpha{a:g}", header, rows))
    return md


def _isna(v) -> bool:
    try:
        return bool(v != v)
    except (TypeError, ValueError):
        return False


def write_report(out: str | os.PathLike) -> Path:
    """Plots, tables and ``report.md`` for run directory ``out``."""
    df, configs = load_results(out, with_config=True)
    first = next(iter(configs.values()), {})
    return plot_results(df, out, title=f"{first.get('experiment', 'experiment')} run: {first.get('name', Path(out).name)}",
                        plot_classes=first.get("plot_classes"), configs=configs)
