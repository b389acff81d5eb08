"""Regression tests for the experiments reports (issue 13 item 6) and the shared figure/IO helpers.

Each test pins one reported bug: per-alpha tables overwriting each other (``with_suffix``), grid
points averaged together, NaN printed as ``inf``, the flows report plotting the sample count, the
guidance report averaging ``kept_seed``, figures titled "all" / inconsistent colours / bounds as
slopes / ticks off the evaluated alphas, and findings that ignored the noise or trivial SC.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib import colors as mc
from matplotlib.container import BarContainer

from synthperf import _io
from synthperf.conformal import coverage_bounds
from synthperf.experiments import reports, reports_generic, store

N_CAL, N_MAJ, BETA = 15, 400, 0.4


def _sppi_frame(alphas, length, coverage, *, trials=40, n_cal=N_CAL, seed=0, point=0, classes=0, **extra):
    """Marginal SPPI rows (SC, SPI) like ``run_sppi_trials``: length/coverage(method, alpha, rng) -> [trials]."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in alphas:
        for m in ("SC", "SPI"):
            for t, (cov, ln) in enumerate(zip(coverage(m, a, rng, trials), length(m, a, rng, trials))):
                base = {"point": point, "trial": t, "seed": 1000 + t, "Method": m, "alpha": a, "n_cal": n_cal,
                        "n_cal_maj": N_MAJ, "n_test": 300, "dataset": "toy", "beta": BETA, "n_classes": 5,
                        "n_classes_maj": 5, "k": 20, "dist_criterion": "cramer-von-mises", **extra}
                rows.append({**base, "Coverage": cov, "Length": ln})
                for c in range(classes):
                    rows.append({**base, "Coverage": np.nan, "Length": np.nan, "Class": float(c),
                                 "Conditional Coverage": cov, "Conditional Length": ln + c,
                                 "n_cal_cond": float(n_cal // classes), "n_cal_maj_cond": float(N_MAJ // classes)})
    return pd.DataFrame(rows)


def _const(v_sc, v_spi, noise=0.0):
    def f(m, a, rng, n):
        return (v_sc if m == "SC" else v_spi)(a) + noise * rng.standard_normal(n)
    return f


def _capture(monkeypatch):
    """Figures passed to save_figure, by stem name (files are still written)."""
    figs = {}

    def keep(fig, stem):
        figs[str(stem).rsplit("/", 1)[-1]] = fig
        return _io.save_figure(fig, stem)

    monkeypatch.setattr(reports, "save_figure", keep)
    monkeypatch.setattr(reports_generic, "save_figure", keep)
    return figs


# ------------------------------------------------------------------------------ shared helpers
def test_io_helpers_are_the_reexported_ones(tmp_path):
    assert store.atomic_write_bytes is _io.atomic_write_bytes and reports.save_figure is _io.save_figure
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [0, 1])
    paths = _io.save_figure(fig, tmp_path / "sub" / "name_alpha0.1")
    assert [p.name for p in paths] == ["name_alpha0.1.png", "name_alpha0.1.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert not list((tmp_path / "sub").glob(".*.tmp"))
    _io.atomic_write_bytes(tmp_path / "x.bin", b"one")
    _io.atomic_write_bytes(tmp_path / "x.bin", b"two")
    assert (tmp_path / "x.bin").read_bytes() == b"two"
    with pytest.raises(TypeError, match="data must be bytes"):
        _io.atomic_write_bytes(tmp_path / "y", "text")
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
        _io.save_figure(object(), tmp_path / "z")


def test_reports_do_not_touch_the_matplotlib_backend(tmp_path):
    code = ("import sys, matplotlib; get = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); b = get(); "
            "import pandas as pd; from synthperf.experiments.reports import plot_results; "
            "plot_results(pd.DataFrame({'method': ['a', 'b'], 'cas': [0.5, 0.7]}), sys.argv[1]); "
            "print('matplotlib.pyplot' in sys.modules, get() == b)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]  # no pyplot, no matplotlib.use
    assert (tmp_path / "plots" / "cas.pdf").is_file()


def test_format_nan_is_not_inf():
    assert reports.format_pm(float("nan"), float("nan")) == "n/a"
    assert reports.format_pm(float("inf"), float("nan")) == "inf" and reports.format_pm(-math.inf, 0.0) == "-inf"
    assert reports.format_pm(0.5, 0.01) == "0.500 ± 0.010" and reports.format_pm(0.5, float("nan")) == "0.500"
    assert reports.format_pm(1.91e-11, 3e-12, digits=None) == "1.91e-11 ± 3e-12"
    df = _sppi_frame([0.1], _const(lambda a: np.nan, lambda a: np.inf), _const(lambda a: 0.9, lambda a: 0.9),
                     trials=3)
    s = reports.summarize(df, by=[]).set_index("Method")
    assert np.isnan(s.loc["SC", "Length_mean"]) and s.loc["SPI", "Length_mean"] == np.inf
    assert s.loc["SC", "Length_inf"] == 0 and s.loc["SPI", "Length_inf"] == 3


# ------------------------------------------------------------------------------ tables and grid points
def test_per_alpha_class_tables_do_not_overwrite_each_other(tmp_path):
    df = _sppi_frame([0.1, 0.2], _const(lambda a: 2 - a, lambda a: 1.5 - a, 0.1),
                     _const(lambda a: 1 - a, lambda a: 1 - a, 0.01), n_cal=60, classes=3, trials=5)
    reports.plot_results(df, tmp_path)
    names = sorted(p.name for p in (tmp_path / "tables").glob("class_coverage_*"))
    assert names == ["class_coverage_alpha0.1.md", "class_coverage_alpha0.1.tex", "class_coverage_alpha0.2.md",
                     "class_coverage_alpha0.2.tex"]  # with_suffix made both "class_coverage_alpha0.md"
    t1, t2 = ((tmp_path / "tables" / f"class_coverage_alpha{a}.md").read_text() for a in ("0.1", "0.2"))
    assert t1 != t2 and "90." in t1 and "80." in t2  # each table holds its own alpha
    assert {f"conditional_coverage_alpha{a}.png" for a in ("0.1", "0.2")} <= {p.name for p in
                                                                             (tmp_path / "plots").iterdir()}


def test_grid_points_are_rows_not_averaged(tmp_path):
    flows = pd.DataFrame([{"point": p, "trial": 0, "seed": 0, "simulation": s, "n": 96, "rho": rho,
                           "final_std": 1.0 + rho + 0.1 * i, "roundtrip_mse": 0.01 * rho if s == "rdtrp" else np.nan}
                          for p, rho in enumerate((1.0, 2.0)) for i, s in enumerate(("melt", "rdtrp", "gen"))])
    assert reports.group_columns(flows) == ["rho"]
    md = reports.plot_results(flows, tmp_path).read_text()
    table = (tmp_path / "tables" / "summary.md").read_text()
    assert "1.5" not in table and "± 0.5" not in table  # rho 1.500 ± 0.500 was two grid points averaged
    assert "| 1.0 | rdtrp | 96 | 2.1 | 0.01 |" in table and "| 2.0 | gen | 96 | 3.2 | n/a |" in table
    # the sample count n is shown, never plotted or averaged; NaN metrics print n/a, not inf
    assert "inf" not in table and "plots/n.png" not in md and not (tmp_path / "plots" / "n.png").exists()
    assert "plots/final_std.png" in md and "plots/roundtrip_mse.png" in md
    # SPPI: a float grid column constant within each point is a group, a grid.X copy is dropped
    a = _sppi_frame([0.1], _const(lambda a: 2.0, lambda a: 1.0, 0.1), _const(lambda a: 0.9, lambda a: 0.9, 0.01),
                    point=0, shift=0.5, **{"grid.shift": 0.5})
    b = _sppi_frame([0.1], _const(lambda a: 2.0, lambda a: 1.0, 0.1), _const(lambda a: 0.9, lambda a: 0.9, 0.01),
                    point=1, shift=1.5, **{"grid.shift": 1.5})
    both = pd.concat([a, b], ignore_index=True)
    assert reports.group_columns(both) == ["shift"]
    s = reports.summarize(both)
    assert sorted(s["shift"]) == [0.5, 0.5, 1.5, 1.5] and (s["trials"] == 40).all()


def test_guidance_report_never_averages_kept_seed(tmp_path):
    rows = [{"point": 0, "trial": i, "seed": 10 + i, "class_id": i % 2, "prompt": "p", "image": f"{i}.png",
             "criterion": 0.1 * i, "corrupted": False, "kept_seed": (10 + i) if i != 3 else 999_999,
             "regenerated": i == 3} for i in range(6)]
    md = reports.plot_results(pd.DataFrame(rows), tmp_path).read_text()
    table = (tmp_path / "tables" / "summary.md").read_text()
    header = table.splitlines()[0]
    assert "kept_seed" not in header and "seed" not in header.replace("kept_seed", "")
    assert header == "| class_id | criterion | corrupted | regenerated |"
    assert "| 1 | 0.3 ± 0.12 | 0 ± 0 | 0.3333 ± 0.33 |" in table  # class 1: rows 1, 3, 5; row 3 regenerated
    assert "kept_seed" not in md and "plots/criterion.png" in md


# ------------------------------------------------------------------------------ figures
def test_figures_titles_colours_step_bounds_and_ticks(tmp_path, monkeypatch):
    figs = _capture(monkeypatch)
    alphas = [0.1, 0.2, 0.3]
    df = _sppi_frame(alphas, _const(lambda a: 3 - 4 * a, lambda a: 2.8 - 4 * a, 0.2),
                     _const(lambda a: 1 - a, lambda a: 1 - a, 0.02), classes=3, n_cal=30)
    reports.plot_results(df, tmp_path)
    colours = {}
    for name in ("coverage", "length"):
        ax = figs[name].axes[0]
        assert ax.get_title() != "all" and "n=30, N=400" in ax.get_title() and "beta=0.4" in ax.get_title()
        np.testing.assert_allclose(ax.get_xticks(), alphas)  # ticks exactly at the evaluated alphas
        for line in ax.get_lines():
            label = line.get_label()
            if label in ("SC", "SPI"):
                colours.setdefault(label, set()).add(line.get_color())
    spi_bounds = [ln for ln in figs["coverage"].axes[0].get_lines() if ln.get_drawstyle() == "steps-post"]
    assert len(spi_bounds) == 2 and {ln.get_color() for ln in spi_bounds} == {reports.method_color("SPI")}
    for ln in spi_bounds:  # the step function takes the exact bound at every evaluated alpha
        x, y = ln.get_xdata(), ln.get_ydata()
        lo, hi = coverage_bounds(10, 400 // 3, np.array(alphas), BETA)
        got = np.array([y[np.flatnonzero(np.isclose(x, a))[0]] for a in alphas])
        assert np.allclose(got, lo) or np.allclose(got, hi)
    for ax in figs["conditional_coverage_alpha0.2"].axes:
        assert "alpha=0.2" in ax.get_title() and "all" not in ax.get_title()
        for c in ax.containers:
            if isinstance(c, BarContainer):
                colours.setdefault(c.get_label(), set()).update(p.get_facecolor()[:3] for p in c.patches)

    for m in ("SC", "SPI"):
        assert {mc.to_hex(c) for c in colours[m]} == {reports.method_color(m)}, m  # one colour per method
    assert reports.method_color("SPI") != reports.method_color("SC")
    assert reports.method_color("some new method") == reports.method_color("some new method")


# ------------------------------------------------------------------------------ findings
def test_difference_inside_the_noise_is_not_called_smaller():
    # the reported case: alpha=0.1 SPI 2.145 vs SC 2.172, inside one SE, was "smaller at every setting"
    df = _sppi_frame([0.1], _const(lambda a: 2.172, lambda a: 2.145, 0.5), _const(lambda a: 0.9, lambda a: 0.9, 0.01))
    text = "\n".join(reports.sppi_checks(df, []))
    assert "at every" not in text and "within noise" in text and "smaller than SC's by more than 3 SE at 0 of 1" in text
    sig = _sppi_frame([0.1, 0.2], _const(lambda a: 2.5, lambda a: 2.0, 0.05),
                      _const(lambda a: 1 - a, lambda a: 1 - a, 0.01))
    text = "\n".join(reports.sppi_checks(sig, []))
    assert "**Yes: SPPI's sets/intervals were smaller than SC's (real only) by more than 3 SE at every " \
           "non-trivial setting** (2 of 2)" in text
    assert re.search(r"SPI smaller than SC by 0\.(49|50)\d ± 0\.01\d \(\d+\.\d SE, paired over 40 trials", text)
    big = _sppi_frame([0.1], _const(lambda a: 2.0, lambda a: 2.5, 0.05), _const(lambda a: 0.9, lambda a: 0.9, 0.01))
    assert re.search(r"SPI larger than SC by 0\.[45]\d\d ± 0\.01\d", "\n".join(reports.sppi_checks(big, [])))


def test_paired_se_is_used():
    # SC = SPI + 0.02 on every trial, with large shared noise: unpaired SEs would hide a sure difference
    def length(m, a, rng, n):
        base = 2.0 + np.random.default_rng(7).standard_normal(n)
        return base + (0.02 if m == "SC" else 0.0) + 0.001 * rng.standard_normal(n)
    df = _sppi_frame([0.1], length, _const(lambda a: 0.9, lambda a: 0.9, 0.01))
    assert "more than 3 SE at every non-trivial setting" in "\n".join(reports.sppi_checks(df, []))


def test_trivial_split_conformal_is_named_not_counted():
    alphas = [0.05, 0.0625, 0.1]  # n=15: SC is the full set for alpha < 1/16 = 0.0625
    df = _sppi_frame(alphas, _const(lambda a: 5.0 if a < 1 / 16 else 2.0, lambda a: 1.4, 0.05),
                     _const(lambda a: 1.0 if a < 1 / 16 else 1 - a, lambda a: 0.95, 0.01))
    lines = reports.sppi_checks(df, [])
    text = "\n".join(lines)
    assert "At 1 setting(s) SC is trivially the full set" in text
    assert "alpha=0.05: SC is the full set by construction (alpha < 1/(n+1) = 0.062 with n=15)" in text
    assert "at 2 of 2 non-trivial settings" in text or "every non-trivial setting** (2 of 2)" in text
    # class-conditional: n per class = n_cal // classes = 10, so alpha=0.05 < 1/11 is trivial per class
    cc = _sppi_frame([0.05, 0.2], _const(lambda a: 5.0 if a < 1 / 11 else 2.0, lambda a: 1.5, 0.05),
                     _const(lambda a: 0.95, lambda a: 0.95, 0.01), n_cal=50, classes=5)
    assert "with n=10 per class" in "\n".join(reports.sppi_checks(cc, []))


def test_coverage_within_3se_of_bounds_is_consistent_not_no():
    lo, hi = coverage_bounds(N_CAL, N_MAJ, 0.1, BETA)

    def cov(offset):  # SPI mean coverage = hi + offset SE (T = 40 trials, sd 0.02 -> SE ~ 0.0032)
        def f(m, a, rng, n):
            x = rng.standard_normal(n)
            x = (x - x.mean()) / x.std(ddof=1) * 0.02
            return x + (hi + offset * 0.02 / np.sqrt(n) if m == "SPI" else 0.9)
        return f
    near = "\n".join(reports.sppi_checks(_sppi_frame([0.1], _const(lambda a: 2, lambda a: 2, 0.1), cov(2.0)), []))
    assert "No:" not in near and "**Yes: every SPPI mean coverage is consistent" in near
    assert "1 outside by less than 3 SE, i.e. within trial noise" in near
    far = "\n".join(reports.sppi_checks(_sppi_frame([0.1], _const(lambda a: 2, lambda a: 2, 0.1), cov(5.0)), []))
    assert "**No: 1 of 1 SPPI mean coverages lie outside their worst-case bounds by more than 3 SE**" in far
    inside = "\n".join(reports.sppi_checks(_sppi_frame([0.1], _const(lambda a: 2, lambda a: 2, 0.1),
                                                       _const(lambda a: 0.9, lambda a: (lo + hi) / 2, 0.01)), []))
    assert "(1 of 1 inside; the bounds hold" in inside
