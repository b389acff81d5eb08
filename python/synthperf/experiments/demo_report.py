"""The demo's report: findings that state their uncertainty, figures (PNG + PDF) and tables.

Rules the text follows (issue 13, item 4):
- a difference is called a difference only beyond 3 standard errors (paired over trials, since
  every method is evaluated on the same draws); otherwise it is "within the noise";
- split conformal with n real points is the full label set when alpha < 1/(n+1), and the text
  says so instead of crediting SPPI for beating it;
- SPPI coverage is checked against its worst-case bounds within +-3 SE, and a result consistent
  with theory is never reported as a failure;
- selective thresholds are compared only within a guarantee type.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .reports import METHOD_COLORS, Z_SIGNIFICANT, method_color
from .store import atomic_write_bytes, write_chunk

__all__ = ["paired_gain", "sppi_findings", "best_generator", "write_demo_report", "METHOD_COLORS"]



def _se(v) -> float:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def _pm(m: float, se: float, digits: int = 3) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{m:.{digits}f}"


def paired_gain(df: pd.DataFrame, alpha: float, a: str = "SC", b: str = "SPI", col: str = "Length"):
    """Mean of ``col[a] - col[b]`` over trials at ``alpha`` and its SE (paired by trial).

    ``df``: one generator's SPPI rows (columns trial, Method, alpha, ``col``). Positive = ``b``
    smaller. Returns (mean, se, n_trials).
    """
    sub = df[np.isclose(df["alpha"], alpha) & df["Method"].isin([a, b])]
    wide = sub.pivot_table(index="trial", columns="Method", values=col, aggfunc="mean")
    if a not in wide or b not in wide:
        raise ValueError(f"methods {a!r} and {b!r} must both be present at alpha={alpha}")
    d = (wide[a] - wide[b]).to_numpy(float)
    return float(d.mean()), _se(d), int(len(d))


def sppi_findings(df: pd.DataFrame, n_cal: int, n_synth: int, beta: float) -> tuple[list[dict], list[str]]:
    """Per-alpha rows (sizes, coverages, paired gain, bounds) and plain-language findings."""
    from ..conformal import coverage_bounds

    rows, text = [], []
    for alpha in sorted(df["alpha"].unique()):
        a = df[np.isclose(df["alpha"], alpha)]
        stat = {m: (g["Length"].mean(), _se(g["Length"]), g["Coverage"].mean(), _se(g["Coverage"]))
                for m, g in a.groupby("Method")}
        gain, gse, _ = paired_gain(df, alpha)
        z = gain / gse if gse > 0 else (np.inf if gain > 0 else (-np.inf if gain < 0 else 0.0))
        lo, hi = coverage_bounds(n_cal, n_synth, float(alpha), beta)
        cov, cse = stat["SPI"][2], stat["SPI"][3]
        inside = (cov >= lo - 3 * cse) and (cov <= hi + 3 * cse)
        trivial = alpha < 1.0 / (n_cal + 1)
        rows.append({"alpha": float(alpha), "stat": stat, "gain": gain, "gain_se": gse, "z": z, "bounds": (lo, hi),
                     "inside": inside, "sc_trivial": trivial})
        a_s = f"α={alpha:g}"
        if trivial:
            text.append(f"{a_s}: SC with n={n_cal} is the full label set by construction (α < 1/(n+1) = "
                        f"{1 / (n_cal + 1):.3f}); SPI's mean size {stat['SPI'][0]:.2f} vs 10.")
        elif z > Z_SIGNIFICANT:
            text.append(f"{a_s}: SPI sets are smaller than SC's by {gain:.3f} ± {gse:.3f} labels "
                        f"({z:.1f} SE, paired over trials).")
        elif z < -Z_SIGNIFICANT:
            text.append(f"{a_s}: SPI sets are larger than SC's by {-gain:.3f} ± {gse:.3f} labels ({-z:.1f} SE).")
        else:
            text.append(f"{a_s}: SPI vs SC set size differs by {gain:.3f} ± {gse:.3f} labels: within the noise "
                        f"(|z| = {abs(z):.1f} ≤ {Z_SIGNIFICANT:g}).")
        text[-1] += (f" SPI coverage {cov:.3f} ± {cse:.3f} is {'inside' if inside else 'OUTSIDE'} its worst-case "
                     f"bounds [{lo:.3f}, {hi:.3f}] (±3 SE).")
    return rows, text


def best_generator(sppi: pd.DataFrame, results: dict[str, dict[str, Any]]) -> str:
    """The generator whose synthetic calibration scores are closest to the real ones (smallest
    score Wasserstein-1 distance): chosen by a quality metric, not by the SPPI outcome."""
    keys = list(results)
    dist = [results[k]["quality"].get("score_wasserstein", np.nan) for k in keys]
    if all(not np.isfinite(d) for d in dist):
        return keys[0]
    return keys[int(np.nanargmin(dist))]


# ----------------------------------------------------------------------------- figures
def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h))


def _save(fig, stem: Path) -> None:
    from .._io import save_figure

    save_figure(fig, stem)


def plot_sample_grid(x01: np.ndarray, y: np.ndarray, stem: Path, title: str, per_class: int = 10) -> None:
    """A 10 x ``per_class`` grid of 8x8 samples, one row per class."""
    fig = _figure(per_class * 0.45, 10 * 0.45 + 0.4)
    grid = np.full((10 * 9, per_class * 9), 0.12)  # light grey gutters
    for c in range(10):
        idx = np.flatnonzero(y == c)[:per_class]
        for j, i in enumerate(idx):
            grid[c * 9:c * 9 + 8, j * 9:j * 9 + 8] = x01[i].reshape(8, 8)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([c * 9 + 3.5 for c in range(10)], [str(c) for c in range(10)])
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    _save(fig, stem)


def plot_sppi(sppi: pd.DataFrame, findings: dict[str, list[dict]], labels: dict[str, str], stem: Path) -> None:
    """Set size and coverage vs alpha per generator; SPPI bounds as a bracket at each alpha."""
    keys = list(findings)
    fig = _figure(4.0 * len(keys), 6.4)
    alphas = sorted(sppi["alpha"].unique())
    for j, k in enumerate(keys):
        df = sppi[sppi["generator"] == k]
        ax_len, ax_cov = fig.add_subplot(2, len(keys), j + 1), fig.add_subplot(2, len(keys), len(keys) + j + 1)
        for m, g in df.groupby("Method", sort=False):
            s = g.groupby("alpha").agg(L=("Length", "mean"), Lse=("Length", _se), C=("Coverage", "mean"),
                                       Cse=("Coverage", _se)).reset_index()
            kw = dict(marker="o", ms=4, capsize=3, label=m, color=method_color(m))
            ax_len.errorbar(s["alpha"], s["L"], yerr=s["Lse"], **kw)
            ax_cov.errorbar(s["alpha"], s["C"], yerr=s["Cse"], **kw)
        for r in findings[k]:  # the bound holds at each evaluated alpha: a bracket, not a line
            lo, hi = r["bounds"]
            ax_cov.vlines(r["alpha"], lo, hi, color=METHOD_COLORS["SPI"], alpha=0.35, lw=6,
                          label="SPI worst-case bounds" if r is findings[k][0] else None)
        ax_cov.plot(alphas, [1 - a for a in alphas], ls=":", color="k", lw=0.8, label="1 − α")
        for ax in (ax_len, ax_cov):
            ax.set_xscale("log")
            ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
            ax.minorticks_off()
            ax.set_xlabel("α")
        ax_len.set_title(labels[k], fontsize=9)
        ax_len.set_ylabel("mean set size (labels)")
        ax_cov.set_ylabel("coverage (real test)")
        if j == 0:
            ax_len.legend(fontsize=7)
            ax_cov.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, stem)


def plot_selective(df: pd.DataFrame, stem: Path) -> None:
    fig = _figure(9, 3.4)
    ax0, ax1 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    qs = sorted(df["q"].unique())
    for m, g in df.groupby("Method", sort=False):
        s = g.groupby("q").agg(a=("accepted", "mean"), ase=("accepted", _se), r=("risk", "mean"),
                               rse=("risk", _se)).reset_index()
        kw = dict(marker="o", ms=4, capsize=3, label=m, color=method_color(m))
        ax0.errorbar(s["q"], s["a"], yerr=s["ase"], **kw)
        ax1.errorbar(s["q"], s["r"], yerr=s["rse"], **kw)
    b = df[df["Method"] == "SPPI"].groupby("q")[["lower", "upper"]].first().reset_index()
    ax0.vlines(b["q"], b["lower"], b["upper"], color=METHOD_COLORS["SPPI"], alpha=0.35, lw=6,
               label="SPPI worst-case bounds")
    ax0.plot(qs, qs, ls=":", color="k", lw=0.8, label="q")
    for ax in (ax0, ax1):
        ax.set_xticks(qs, [f"{q:g}" for q in qs])
        ax.set_xlabel("target accepted fraction q")
    ax0.set_ylabel("accepted fraction (real test)")
    ax1.set_ylabel("selective risk (error among accepted)")
    ax0.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, stem)


# ----------------------------------------------------------------------------- markdown
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return "n/a" if not np.isfinite(v) else f"{v:.{digits}f}"
    return str(v)


def _quality_section(results: dict[str, dict[str, Any]], out: Path) -> list[str]:
    head = ["generator", "CAS (mean ± SE)", "real clf. acc. on synthetic (min class)", "Fréchet dist.",
            "score KS", "score W1", "train s", "sample s"]
    rows = []
    for k, r in results.items():
        q, info = r["quality"], r["info"]
        rows.append([r["spec"].label, _pm(q["cas_mean"], q["cas_se"]),
                     f"{_fmt(q['real_clf_accuracy'])} ({_fmt(q['real_clf_accuracy_min_class'])})",
                     _fmt(q["frechet"], 2), _fmt(q["score_ks"]), _fmt(q["score_wasserstein"], 4),
                     _fmt(float(info.get("train_seconds", np.nan)), 1),
                     _fmt(float(info.get("sample_seconds", np.nan)), 1)])
    md = ["## Synthetic data quality\n",
          "CAS: a fresh MLP trained on the synthetic set only, tested on the real pool (mean ± SE over "
          "classifier seeds). The real classifier's accuracy on the synthetic samples, the Fréchet distance "
          "on the features of a digits network the package trains itself, and the two-sample distances "
          "(Kolmogorov–Smirnov, Wasserstein-1) between real and synthetic calibration-score distributions "
          "(non-randomized APS of the true label, the quantity SPPI transports).\n",
          _table(head, rows)]
    ref = next(iter(results.values()))["quality"]
    if "real_cas_mean" in ref:
        md.append(f"For reference, the same CAS classifier trained on the real training split scores "
                  f"{_pm(ref['real_cas_mean'], ref['real_cas_se'])}.\n")
    for k, r in results.items():
        md.append(f"![{k} samples](plots/samples_{k}.png)")
    md.append("")
    return md


def _sppi_section(sppi: pd.DataFrame, findings: dict[str, list[dict]], texts: dict[str, list[str]],
                  results: dict[str, dict[str, Any]], best: str, ctx: dict[str, Any]) -> list[str]:
    md = ["## SPPI vs split conformal, per generator\n",
          f"{ctx['n_trials']} trials per generator; each draws n={ctx['n_cal']} real calibration and "
          f"{ctx['n_test']} real test points from the pool and N={ctx['n_synth']} synthetic calibration points. "
          "SC uses the 15 real points; SC (synth) uses the synthetic points alone and has **no guarantee** on "
          "real data; SPI (SPPI) uses both and its coverage lies in the worst-case bounds whatever the synthetic "
          f"data are (β={ctx['beta']}). Gains are SC size − SPI size, paired over trials.\n",
          "![sppi](plots/sppi_generators.png)\n"]
    head = ["generator", "α", "SC size", "SPI size", "SC (synth) size", "gain ± SE (z)", "SC coverage",
            "SPI coverage", "SPI bounds", "SC (synth) coverage"]
    rows = []
    for k, frs in findings.items():
        for r in frs:
            st = r["stat"]
            rows.append([results[k]["spec"].label, f"{r['alpha']:g}", _pm(st["SC"][0], st["SC"][1], 2),
                         _pm(st["SPI"][0], st["SPI"][1], 2), _pm(st["SC (synth)"][0], st["SC (synth)"][1], 2),
                         ("SC = full set" if r["sc_trivial"] else
                          f"{r['gain']:.3f} ± {r['gain_se']:.3f} ({r['z']:.1f})"),
                         _pm(st["SC"][2], st["SC"][3]), _pm(st["SPI"][2], st["SPI"][3]),
                         f"[{r['bounds'][0]:.3f}, {r['bounds'][1]:.3f}]", _pm(st["SC (synth)"][2], st["SC (synth)"][3])])
    md.append(_table(head, rows))
    md.append(f"### Findings\n\nBest generator by score distance (chosen before looking at SPPI results): "
              f"**{results[best]['spec'].label}**.\n")
    for k, t in texts.items():
        md.append(f"- **{results[k]['spec'].label}**")
        md += [f"  - {line}" for line in t]
    md.append("")
    return md


def _selective_section(df: pd.DataFrame) -> list[str]:
    head = ["method", "guarantee", "q", "accepted (mean ± SE)", "accepted SD over trials", "risk (mean ± SE)",
            "SPPI bounds"]
    guarantee = {"SC (real, conformal)": "marginal: E[accepted] ≥ q", "SPPI": "worst-case bounds",
                 "quantile (real)": "none", "synthetic only": "none"}
    rows, text = [], []
    for (m, q), g in df.groupby(["Method", "q"], sort=False):
        lo, hi = g["lower"].iloc[0], g["upper"].iloc[0]
        rows.append([m, guarantee.get(m, "?"), f"{q:g}", _pm(g["accepted"].mean(), _se(g["accepted"])),
                     _fmt(float(g["accepted"].std(ddof=1))), _pm(g["risk"].mean(), _se(g["risk"])),
                     f"[{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else "-"])
    for q, g in df.groupby("q"):
        sp, sc = g[g["Method"] == "SPPI"], g[g["Method"] == "SC (real, conformal)"]
        if sp.empty or sc.empty:
            continue
        lo, hi = sp["lower"].iloc[0], sp["upper"].iloc[0]
        m, se = sp["accepted"].mean(), _se(sp["accepted"])
        inside = lo - 3 * se <= m <= hi + 3 * se
        trivial = int(np.ceil((N_CAL_SEL + 1) * q)) > N_CAL_SEL
        text.append(f"q={q:g}: SPPI accepts {_pm(m, se)} (SD {sp['accepted'].std(ddof=1):.3f}), "
                    f"{'inside' if inside else 'OUTSIDE'} its bounds [{lo:.3f}, {hi:.3f}]; the conformal real-only "
                    + ("threshold accepts everything (rank ⌈(n+1)q⌉ > n)" if trivial else
                       f"threshold accepts {_pm(sc['accepted'].mean(), _se(sc['accepted']))} "
                       f"(SD {sc['accepted'].std(ddof=1):.3f})") + ".")
    return ["## Selective prediction with a synthetic-powered threshold\n",
            "SoftmaxScore (negative max softmax) of the digits classifier with the best generator's logits. "
            "Thresholds are compared within a guarantee type: the conformal real-only threshold (rank "
            "⌈(n+1)q⌉ of the 15 real scores) and SPPI both carry finite-sample guarantees; the plain quantile "
            "and the synthetic-only threshold carry none.\n",
            "![selective](plots/selective.png)\n", _table(head, rows)] + [f"- {t}" for t in text] + [""]


N_CAL_SEL = 15


_GENERATOR_DATA_WORDS = {
    "longtail": "the same long-tailed set (one model per seed)",
    "balanced": "the whole real training half (a stand-in for the paper's pretrained model, which never saw the "
                "long-tailed set)",
}


def _longtail_section(lt: pd.DataFrame | None, out: Path) -> list[str]:
    """The long-tail top-up result: per-arm accuracies (mean ± SE over seeds) and each
    criterion's paired difference to unguided samples, with a plain verdict."""
    if lt is None:
        return []
    from ..guidance.longtail import paired_difference, plot_longtail, summarize_longtail

    plot_longtail(lt, out / "plots" / "longtail")
    s = summarize_longtail(lt)
    rows = [[r["arm"], _pm(r["minority_acc_mean"], r["minority_acc_sem"]), _pm(r["majority_acc_mean"],
             r["majority_acc_sem"]), _pm(r["overall_acc_mean"], r["overall_acc_sem"]), int(r["n_seeds"])]
            for _, r in s.iterrows()]
    text = []
    for arm in ("loss", "entropy", "hardness"):
        if arm not in set(lt["arm"]) or "unguided" not in set(lt["arm"]):
            continue
        d, se, n = paired_difference(lt, arm)
        if n < 2:
            text.append(f"{arm} guidance: {d:+.3f} minority-class accuracy vs unguided from one seed only; "
                        "no standard error, so no verdict.")
            continue
        z = d / se if se and np.isfinite(se) and se > 0 else float("nan")
        verdict = ("beats unguided samples" if z > 2 else "is worse than unguided samples" if z < -2
                   else "does not differ from unguided samples beyond the noise")
        text.append(f"{arm} guidance {verdict} on minority-class accuracy: {d:+.3f} ± {se:.3f} "
                    f"(paired over {n} seeds, |z| = {abs(z):.1f}; 2 SE taken as the bar with so few seeds).")
    r0 = lt.iloc[0]
    return ["## Feedback guidance on long-tailed digits (in miniature)\n",
            f"{len(str(r0['minority_classes']).split(','))} minority classes with few real images each "
            f"(redrawn per seed), the rest of the training split kept; a classifier trained on the long-tailed set "
            f"guides a class-conditional diffusion model trained on "
            f"{_GENERATOR_DATA_WORDS.get(str(r0['generator_data']), repr(r0['generator_data']))}; each arm tops "
            f"the classes up to the same count and a fresh `{r0['evaluator']}` classifier is tested on the real pool "
            "(spec feedback_guidance §7).\n",
            "![long-tail](plots/longtail.png)\n",
            _table(["arm", "minority acc.", "majority acc.", "overall acc.", "seeds"], rows)] + \
        [f"- {t}" for t in text] + [""]


def write_demo_report(out: Path, *, sppi: pd.DataFrame, results: dict[str, dict[str, Any]], selective: pd.DataFrame,
                      longtail: Any, timings: dict[str, float], context: dict[str, Any]) -> Path:
    """Figures under ``out/plots`` (PNG + PDF), tables, and ``out/report.md``; returns its path."""
    out = Path(out)
    n_synth = int(sppi["n_cal_maj"].iloc[0])
    ctx = {**context, "n_cal": int(sppi["n_cal"].iloc[0]), "n_test": int(sppi["n_test"].iloc[0]),
           "n_synth": n_synth, "beta": float(sppi["beta"].iloc[0])}
    findings, texts = {}, {}
    for k in results:
        findings[k], texts[k] = sppi_findings(sppi[sppi["generator"] == k], ctx["n_cal"], n_synth, ctx["beta"])
        plot_sample_grid(results[k]["x"], results[k]["y"], out / "plots" / f"samples_{k}",
                         results[k]["spec"].label)
    plot_sppi(sppi, findings, {k: r["spec"].label for k, r in results.items()}, out / "plots" / "sppi_generators")
    plot_selective(selective, out / "plots" / "selective")
    flows = [k for k in results if k == "flows"]
    traj = []
    if flows:
        from ..flows.digits import plot_digits_trajectories

        plot_digits_trajectories(results["flows"]["info"]["model_dir"], out / "plots" / "flows_trajectories")
        traj = ["## Inflationary flow trajectories\n",
                "Melt (data → Gaussian latent) and generation (latent → data) of the trained class-conditional "
                "flow, images along pfODE time.\n", "![flows](plots/flows_trajectories.png)\n"]
    md = [f"# synthperf demo: generators as sources of synthetic calibration data (digits)\n",
          f"{'Quick (CI) variant. ' if ctx['quick'] else ''}Real data: scikit-learn digits, {ctx['n_train']} "
          f"training / {ctx['n_pool']} pool images. Classifier: logistic regression on {ctx['n_clf']} training "
          f"images, pool accuracy {ctx['clf_acc']:.3f}. Each generator family trains from scratch on the training "
          f"split (budget `{ctx['budget']}`) and makes {ctx['per_class']} images per class.\n"]
    md += _quality_section(results, out)
    md += _sppi_section(sppi, findings, texts, results, ctx["best"], ctx)
    md += _selective_section(selective)
    md += _longtail_section(longtail, out)
    md += traj
    md += ["## Timings\n", _table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()]),
           f"Total: {sum(timings.values()):.1f} s.\n"]
    write_chunk(sppi, out / "sppi_all.parquet")
    path = out / "report.md"
    atomic_write_bytes(path, "\n".join(md).encode("utf-8"))
    return path
