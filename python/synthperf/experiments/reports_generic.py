"""Reports of GaFi / flows / guidance runs (rows without Method/Coverage); see :mod:`.reports`.

One table row per (grid point, key) where the key is ``method`` (GaFi), ``simulation`` (flows)
or ``class_id`` (guidance); every metric column is shown as mean ± SE over the rows. Identifiers
and counts (:data:`.reports.ID_COLUMNS`: seeds, ``kept_seed``, ``class_id``, the sample count
``n``) are never averaged; counts are shown as their values. Guidance rows without a
``regenerated`` column get one (kept_seed != seed). One PNG + PDF bar figure per metric with a
finite value, ``plots/<metric>``, one colour per grid point (or per key without a grid).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import save_figure
from .reports import ID_COLUMNS, _figure, _label, _mean, _se, _write_tables, format_pm, group_columns, method_color

__all__ = ["generic_report"]


def _generic_columns(df, key: str | None, groups: list[str]) -> tuple[list[str], list[str]]:
    """(metric columns averaged as mean ± SE, count columns shown as values)."""
    skip = set(groups) | {key} | ID_COLUMNS
    metrics = [c for c in df.columns if c not in skip and df[c].dtype.kind in "fib" and not c.startswith("grid.")]
    counts = [c for c in ("n", "n_samples") if c in df.columns and c != key]
    return metrics, counts


def generic_report(df, plots: Path, tables: Path) -> str:
    """GaFi / flows / guidance rows: one table row per (grid point, key), every metric as mean ± SE
    (identifiers and counts such as seeds, ``kept_seed`` and the sample count ``n`` are never
    averaged; guidance rows get ``regenerated`` = kept_seed != seed), one figure per metric."""
    df = df.copy()
    if "kept_seed" in df.columns and "seed" in df.columns and "regenerated" not in df.columns:
        df["regenerated"] = df["kept_seed"].to_numpy() != df["seed"].to_numpy()
    key = next((c for c in ("method", "simulation", "class_id") if c in df.columns), None)
    groups = group_columns(df)
    metrics, counts = _generic_columns(df, key, groups)
    by = groups + ([key] if key else [])
    parts = list(df.groupby(by, sort=False, dropna=False)) if by else [("all rows", df)]
    rows = []
    for k, g in parts:
        k = k if isinstance(k, tuple) else (k,)
        row = list(k)
        for c in counts:
            vals = sorted(g[c].dropna().unique())
            row.append(", ".join(f"{v:g}" for v in vals) if vals else "-")
        row += [format_pm(_mean(g[c].to_numpy(float)), _se(g[c].to_numpy(float)), digits=None) for c in metrics]
        rows.append(row)
    header = (by or ["group"]) + counts + metrics
    md = "## Results (mean ± SE over rows)\n\n" + _write_tables(tables / "summary", header, rows)
    for c in metrics:
        if np.isfinite(df[c].to_numpy(float)).any():
            _generic_figure(df, c, key, groups, plots / c)
            md += f"\n![{c}](plots/{c}.png)\n"
    return md


def _generic_figure(df, col: str, key: str | None, groups: list[str], stem: Path) -> None:
    """Bars of ``col`` per key (x) and grid point (colour), mean ± SE over the rows of each bar."""
    keys = list(dict.fromkeys(df[key])) if key else ["all rows"]
    points = list(df.groupby(groups, sort=False, dropna=False)) if groups else [(None, df)]
    fig = _figure(max(4.0, 0.9 * len(keys) * len(points) + 1.5), 3.4)
    ax = fig.subplots()
    width = 0.8 / len(points)
    rows_per_bar = 0
    for j, (pk, sub) in enumerate(points):
        label = _label(groups, pk) if groups else None
        vals = [(sub[sub[key] == k] if key else sub)[col].to_numpy(float) for k in keys]
        rows_per_bar = max(rows_per_bar, *(v.size for v in vals))
        means = np.array([_mean(v) if v.size else np.nan for v in vals])
        ses = np.array([_se(v) if v.size else np.nan for v in vals])
        ok = np.isfinite(means)
        colors = [method_color(label) if label else method_color(k) for k, o in zip(keys, ok) if o]
        yerr = np.where(np.isfinite(ses), ses, 0.0)[ok] if np.isfinite(ses).any() else None
        ax.bar((np.arange(len(keys)) + j * width)[ok], means[ok], width, yerr=yerr, capsize=2, label=label,
               color=colors)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, [str(k) for k in keys], fontsize=8)
    ax.set_xlabel(key or ""), ax.set_ylabel(col)
    ax.set_title(f"{col} (mean ± SE over rows)" if rows_per_bar > 1 else f"{col} (one row per bar, no SE)",
                 fontsize=9)
    if groups:
        ax.legend(fontsize=7)
    save_figure(fig, stem)
