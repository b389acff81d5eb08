"""Reports: coverage and length/size vs alpha (mean ± SE, SPPI worst-case bounds), conditional
coverage per class, Markdown/LaTeX tables (mean ± SE), PNG + PDF figures and ``report.md``.

SE is the standard error over trials, std(ddof=1)/sqrt(T). Infinite lengths (trivial SC
intervals) are dropped from the length means and counted in the tables' ``inf`` column, as
upstream's plots drop them. Bound lines are :func:`synthperf.conformal.coverage_bounds`
(specs/sppi.md §1c) for the run's (n, N, beta): per class in class-conditional runs
(n = n_cal_cond, N = n_cal_maj_cond), and N = k * per-class pool for SPI-Subset.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .config import parse_override
from .store import atomic_write_bytes, load_results

__all__ = ["summarize", "sppi_bounds", "plot_results", "write_report", "filter_results", "markdown_table"]

_GROUP_CANDIDATES = ("run", "dataset", "age_range", "n_cal", "n_cal_maj", "beta", "k")
_PER_TRIAL = {"point", "trial", "seed", "Method", "Coverage", "Length", "alpha", "Class", "Conditional Coverage",
              "Conditional Length", "n_cal_cond", "n_cal_maj_cond", "n_classes", "n_classes_maj", "dist_criterion"}
COLORS = {"SC": "#555555", "SC (synth)": "#d08a2e", "SPI": "#2e6fd0", "SPI [subset]": "#3a9a4a"}


# ----------------------------------------------------------------------------------------
# Summaries
# ----------------------------------------------------------------------------------------
def _se(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


def group_columns(df) -> list[str]:
    """Columns that distinguish panels: run/dataset/age group/sizes plus any varying grid column."""
    cols = [c for c in _GROUP_CANDIDATES if c in df.columns and df[c].nunique(dropna=False) > 1]
    extra = [c for c in df.columns if c not in _PER_TRIAL and c not in cols and c not in _GROUP_CANDIDATES
             and df[c].dtype != float and df[c].nunique(dropna=False) > 1]
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
            fin = v[np.isfinite(v)]
            row[f"{col}_mean"] = float(fin.mean()) if fin.size else float("inf")
            row[f"{col}_se"] = _se(v)
            row[f"{col}_inf"] = int((~np.isfinite(v)).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def sppi_bounds(df, method: str, alpha: float) -> tuple[float, float] | None:
    """Worst-case SPPI coverage bounds for the rows of ``df`` (one panel), or None if not SPPI."""
    from ..conformal import coverage_bounds

    if method not in ("SPI", "SPI [subset]"):
        return None
    first = df.iloc[0]
    per_class = "Class" in df.columns and df["Class"].notna().any()
    if per_class:
        pc = df[df["Class"].notna()].iloc[0]
        n, N = int(pc["n_cal_cond"]), int(pc["n_cal_maj_cond"])
        if int(first["n_classes_maj"]) != int(first["n_classes"]):  # pooled synthetic scores
            N = int(first["n_cal_maj"])
    else:
        n, N = int(first["n_cal"]), int(first["n_cal_maj"])
    if method == "SPI [subset]":
        N = int(first["k"]) * (int(first["n_cal_maj"]) // max(int(first["n_classes_maj"]), 1))
    if N <= n + 1:
        return None
    return coverage_bounds(n, N, float(alpha), float(first["beta"]))


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
def _pm(mean: float, se: float, scale: float = 1.0, digits: int = 3) -> str:
    if not math.isfinite(mean):
        return "inf"
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
    md = markdown_table(header, rows)
    atomic_write_bytes(stem.with_suffix(".md"), md.encode("utf-8"))
    atomic_write_bytes(stem.with_suffix(".tex"), latex_table(header, rows).encode("utf-8"))
    return md


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------
def save_figure(fig, stem: str | os.PathLike) -> list[Path]:
    """``<stem>.png`` and ``<stem>.pdf`` (atomically); closes the figure."""
    import matplotlib.pyplot as plt

    out = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        atomic_write_bytes(Path(f"{stem}.{ext}"), buf.getvalue())
        out.append(Path(f"{stem}.{ext}"))
    plt.close(fig)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(df, groups: list[str]):
    if not groups:
        return [("all", df)]
    return [(", ".join(f"{g}={v}" for g, v in zip(groups, key if isinstance(key, tuple) else (key,))), sub)
            for key, sub in df.groupby(groups, sort=False, dropna=False)]


def _vs_alpha(df, groups, col: str, ylabel: str, stem: Path, bounds: bool) -> Path:
    plt = _plt()
    panels = _panels(_marginal(df), groups)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, sub) in zip(axes[0], panels):
        summ = summarize(sub, (col,), by=[])
        alphas = sorted(summ["alpha"].unique())
        for method, s in summ.groupby("Method", sort=False):
            s = s.sort_values("alpha")
            ok = np.isfinite(s[f"{col}_mean"].to_numpy())
            ax.errorbar(s["alpha"][ok], s[f"{col}_mean"][ok], yerr=s[f"{col}_se"][ok].fillna(0), marker="o", ms=4,
                        capsize=3, label=method, color=COLORS.get(method))
            if bounds:
                b = [sppi_bounds(sub[sub["Method"] == method], method, a) for a in s["alpha"]]
                if b and all(x is not None for x in b):
                    lo, hi = np.array(b).T
                    ls = "--" if method == "SPI" else ":"
                    ax.plot(s["alpha"], lo, ls, color="#c0392b", marker="_", ms=14, lw=1,
                            label=f"{method} lower bound")
                    ax.plot(s["alpha"], hi, ls, color="#27ae60", marker="_", ms=14, lw=1,
                            label=f"{method} upper bound")
        if bounds:
            ax.plot(alphas, [1 - a for a in alphas], color="k", lw=0.6, alpha=0.5, label="1 - alpha")
        ax.set_xlabel("alpha"), ax.set_ylabel(ylabel), ax.set_title(title, fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="best")
    save_figure(fig, stem)
    return Path(f"{stem}.png")


def _per_class(df, groups, col: str, ylabel: str, stem: Path, classes: Sequence[int] | None) -> list[Path]:
    plt = _plt()
    pc = df[df["Class"].notna()]
    out = []
    for a in sorted(pc["alpha"].unique()):
        panels = _panels(pc[pc["alpha"] == a], groups)
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.4), squeeze=False)
        for ax, (title, sub) in zip(axes[0], panels):
            cls = sorted(sub["Class"].unique())
            if classes:
                cls = [c for c in cls if int(c) in set(classes)]
            elif len(cls) > 12:
                cls = cls[:10]
            methods = list(dict.fromkeys(sub["Method"]))
            width = 0.8 / max(len(methods), 1)
            for j, m in enumerate(methods):
                g = sub[sub["Method"] == m].groupby("Class")[col]
                mean = g.mean().reindex(cls)
                se = g.agg(lambda v: _se(v.to_numpy(dtype=float))).reindex(cls)
                ax.bar(np.arange(len(cls)) + j * width, mean, width, yerr=se.fillna(0), capsize=2, label=m,
                       color=COLORS.get(m))
            if col == "Conditional Coverage":
                ax.axhline(1 - a, color="k", lw=0.7)
            ax.set_xticks(np.arange(len(cls)) + 0.4 - width / 2, [str(int(c)) for c in cls], fontsize=7)
            ax.set_xlabel("class"), ax.set_ylabel(ylabel), ax.set_title(f"{title} alpha={a:g}", fontsize=9)
        axes[0][-1].legend(fontsize=7)
        s = stem.parent / f"{stem.name}_alpha{a:g}"
        save_figure(fig, s)
        out.append(Path(f"{s}.png"))
    return out


# ----------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------
def _sppi_checks(df, groups) -> list[str]:
    """Plain statements: SPPI sets vs SC, and whether coverages lie in the SPPI bounds."""
    lines = []
    summ = summarize(df, by=groups)
    key_cols = groups + ["alpha"]
    smaller, larger = [], []
    for key, g in summ.groupby(key_cols, sort=False, dropna=False):
        by_m = {r["Method"]: r for _, r in g.iterrows()}
        if "SPI" in by_m and "SC" in by_m:
            spi, sc = by_m["SPI"]["Length_mean"], by_m["SC"]["Length_mean"]
            label = ", ".join(f"{c}={v}" for c, v in zip(key_cols, key if isinstance(key, tuple) else (key,)))
            (smaller if spi < sc else larger).append(f"{label} (SPI {spi:.3f} vs SC {sc:.3f})")
    if smaller or larger:
        if not larger:
            lines.append(f"- **Yes: SPPI's sets/intervals were smaller than SC's (real only) at every setting** "
                         f"({len(smaller)} of {len(smaller)}).")
        else:
            lines.append(f"- SPPI's sets/intervals were smaller than SC's at {len(smaller)} of "
                         f"{len(smaller) + len(larger)} settings; **not smaller** at: {'; '.join(larger)}.")
    inside, outside, within_se = 0, [], 0
    m = _marginal(df)
    for (title, sub) in _panels(m, groups):
        for (method, a), g in sub.groupby(["Method", "alpha"], sort=False):
            b = sppi_bounds(_with_class_rows(df, g), method, a)
            if b is None:
                continue
            cov = g["Coverage"].to_numpy(dtype=float)
            mean, se = float(cov.mean()), _se(cov)
            if b[0] <= mean <= b[1]:
                inside += 1
            else:
                outside.append(f"{title} {method} alpha={a:g}: {mean:.3f} ± {se:.3f} vs [{b[0]:.3f}, {b[1]:.3f}]")
                within_se += int(b[0] - 3 * se <= mean <= b[1] + 3 * se)
    total = inside + len(outside)
    if total:
        if not outside:
            lines.append(f"- **Yes: every SPPI mean coverage lies inside its guaranteed worst-case bounds** "
                         f"({total} of {total}; the bounds hold for the expected coverage).")
        else:
            lines.append(f"- **No: {len(outside)} of {total} SPPI mean coverages lie outside their bounds** "
                         f"({within_se} of them within 3 standard errors, i.e. consistent with trial noise): "
                         + "; ".join(outside) + ".")
    return lines


def plot_results(df, out_dir: str | os.PathLike, *, title: str = "Experiment report",
                 plot_classes: Sequence[int] | None = None, configs: dict | None = None) -> Path:
    """Write figures, tables and ``report.md`` for the rows ``df`` into ``out_dir``; returns report.md."""
    out = Path(out_dir)
    plots, tables = out / "plots", out / "tables"
    plots.mkdir(parents=True, exist_ok=True), tables.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}\n"]
    if "Method" in df.columns and "Coverage" in df.columns:
        groups = group_columns(df)
        length_label = "mean set size" if (df.get("n_classes", 2) != 2).any() else "mean interval length"
        if "Class" in df.columns and df["Class"].notna().any():
            length_label = "mean set size"
        figs = [_vs_alpha(df, groups, "Coverage", "coverage", plots / "coverage", True),
                _vs_alpha(df, groups, "Length", length_label, plots / "length", False)]
        if "Class" in df.columns and df["Class"].notna().any():
            figs += _per_class(df, groups, "Conditional Coverage", "conditional coverage",
                               plots / "conditional_coverage", plot_classes)
            figs += _per_class(df, groups, "Conditional Length", "conditional size", plots / "conditional_size",
                               plot_classes)
        md.append("## Findings\n")
        md += _sppi_checks(df, groups)
        md.append("")
        md.append("## Figures\n")
        md += [f"![{f.stem}](plots/{f.name})\n" for f in figs]
        summ = summarize(df, by=groups)
        header = groups + ["Method", "alpha", "trials", "Coverage (mean ± SE)", "Length/size (mean ± SE)",
                           "inf lengths", "SPPI bounds"]
        rows = []
        for _, r in summ.iterrows():
            sub = _marginal(df)
            for g in groups:
                sub = sub[sub[g] == r[g]]
            sub = sub[(sub["Method"] == r["Method"]) & (sub["alpha"] == r["alpha"])]
            b = sppi_bounds(_with_class_rows(df, sub), r["Method"], r["alpha"])
            rows.append([r[g] for g in groups] + [r["Method"], f"{r['alpha']:g}", r["trials"],
                                                  _pm(r["Coverage_mean"], r["Coverage_se"]),
                                                  _pm(r["Length_mean"], r["Length_se"]), r["Length_inf"],
                                                  f"[{b[0]:.3f}, {b[1]:.3f}]" if b else "-"])
        md.append("## Summary (mean ± SE over trials)\n")
        md.append(_write_tables(tables / "summary", header, rows))
        if "Class" in df.columns and df["Class"].notna().any():
            pc = df[df["Class"].notna()]
            for a in sorted(pc["alpha"].unique()):
                sub = pc[pc["alpha"] == a]
                methods = list(dict.fromkeys(sub["Method"]))
                rows = []
                for c in sorted(sub["Class"].unique()):
                    row = [int(c)]
                    for m in methods:
                        v = sub[(sub["Class"] == c) & (sub["Method"] == m)]["Conditional Coverage"].to_numpy(float)
                        row.append(_pm(float(v.mean()), _se(v), 100.0, 1))
                    rows.append(row)
                md.append(f"## Conditional coverage ×100 per class, alpha={a:g} (mean ± SE)\n")
                md.append(_write_tables(tables / f"class_coverage_alpha{a:g}", ["class"] + methods, rows))
    else:
        md.append(_generic(df, plots, tables))
    if configs:
        md.append("## Resolved configs\n")
        for p, cfg in configs.items():
            md.append(f"- point {p}: [points/p{p:04d}/config.yaml](points/p{p:04d}/config.yaml) "
                      f"(n_seeds={cfg.get('n_seeds', '-')}, alpha={cfg.get('alpha', '-')})")
        md.append("")
    report = out / "report.md"
    atomic_write_bytes(report, "\n".join(md).encode("utf-8"))
    return report


def _generic(df, plots: Path, tables: Path) -> str:
    """GaFi / flows / guidance rows: a table of every numeric column and a bar chart of the first."""
    key = next((c for c in ("method", "simulation", "class_id") if c in df.columns), None)
    numeric = [c for c in df.columns if c not in ("point", "trial", "seed", key) and df[c].dtype.kind in "fi"]
    groups = list(df.groupby(key, sort=False)) if key else [("all", df)]
    rows = [[k] + [_pm(float(g[c].mean()), _se(g[c].to_numpy(float))) for c in numeric] for k, g in groups]
    md = "## Results (mean ± SE)\n\n" + _write_tables(tables / "summary", [key or "group"] + numeric, rows)
    if numeric:
        plt = _plt()
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar([str(k) for k, _ in groups], [float(g[numeric[0]].mean()) for _, g in groups])
        ax.set_ylabel(numeric[0])
        save_figure(fig, plots / numeric[0])
        md += f"\n![{numeric[0]}](plots/{numeric[0]}.png)\n"
    return md


def write_report(out: str | os.PathLike) -> Path:
    """Plots, tables and ``report.md`` for run directory ``out``."""
    df, configs = load_results(out, with_config=True)
    first = next(iter(configs.values()), {})
    return plot_results(df, out, title=f"{first.get('experiment', 'experiment')} run: {first.get('name', Path(out).name)}",
                        plot_classes=first.get("plot_classes"), configs=configs)
