"""run_sppi_trials (specs/sppi.md §5) against a plain per-trial, per-point re-implementation."""
from __future__ import annotations

import numpy as np
import pytest

from synthperf.conformal.data import ClassificationData, RegressionData, generate_imagenet_like
from synthperf.conformal.subset import sppi_subset_select
from synthperf.conformal.thresholds import split_conformal_threshold, sppi_threshold
from synthperf.conformal.trials import run_sppi_trials, trial_seeds

ALPHAS = [0.05, 0.1, 0.2]


def upstream_aps(p_row, y, eps):
    order = np.argsort(-p_row)
    z = np.round(np.cumsum(p_row[order]), 9)
    rank = int(np.flatnonzero(order == y)[0])
    z[rank] -= eps * p_row[y]
    return np.maximum(z[rank], np.float32(0))


def _data():
    real = generate_imagenet_like(n_classes=4, n_per_class=40, n_labels=60, seed=1, first_class=2)
    synth = generate_imagenet_like(n_classes=4, n_per_class=30, n_labels=60, seed=2, shift=0.5, first_class=2)
    return real, synth


def _stratified(seed_, labels, per):
    out = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        out.append(rows[np.random.default_rng(seed_).permutation(rows.size)[:per]])
    return np.concatenate(out)


def _reference(real, synth, class_conditional, n_cal, n_test, n_maj, methods, n_seeds=3, k=None):
    """Loops over trials, groups, test points and labels, like upstream (slow, readable)."""
    cands = np.unique(real.labels)
    rows = []
    for t, s in enumerate(trial_seeds(42, n_seeds)):
        if class_conditional:
            cal, test = [], []
            for c in cands:
                r = np.flatnonzero(real.labels == c)
                perm = np.random.default_rng(s).permutation(r.size)
                cal.append(r[perm[: n_cal // cands.size]])
                test.append(r[perm[n_cal // cands.size: n_cal // cands.size + n_test // cands.size]])
            cal, test = np.concatenate(cal), np.concatenate(test)
            syn = _stratified(s, synth.labels, n_maj // np.unique(synth.labels).size)
        else:
            rng = np.random.default_rng(s)
            perm = rng.permutation(len(real))
            cal, test = perm[:n_cal], perm[n_cal:n_cal + n_test]
            syn = _stratified(s, synth.labels, n_maj // 4) if k else rng.permutation(len(synth))[:n_maj]
        rng = np.random.default_rng(s)
        e_cal, e_test, e_syn = rng.uniform(size=cal.size), rng.uniform(size=test.size), rng.uniform(size=syn.size)
        rs = np.array([upstream_aps(real.probs[i], real.labels[i], e) for i, e in zip(cal, e_cal)])
        ss = np.array([upstream_aps(synth.probs[i], synth.labels[i], e) for i, e in zip(syn, e_syn)])
        ts = np.array([[upstream_aps(real.probs[i], c, e) for c in cands] for i, e in zip(test, e_test)])
        ty = np.searchsorted(cands, real.labels[test])
        groups = [(cands, np.ones(cal.size, bool), np.ones(syn.size, bool))] if not class_conditional else \
            [([c], real.labels[cal] == c, synth.labels[syn] == c) for c in cands]
        for m in methods:
            for a in ALPHAS:
                q = np.empty(cands.size)
                for cls, rm, sm in groups:
                    r_g, s_g, lab_g = rs[rm], ss[sm], synth.labels[syn][sm]
                    if m == "SC":
                        v = split_conformal_threshold(r_g, a, top=1.0)
                    elif m == "SC (synth)":
                        v = split_conformal_threshold(s_g, a, top=1.0)
                    elif m == "SPI":
                        v = sppi_threshold(r_g, s_g, a, 0.4, top=1.0)
                    else:
                        chosen = sppi_subset_select(r_g, s_g, lab_g, k=k)
                        v = sppi_threshold(r_g, s_g[np.isin(lab_g, chosen)], a, 0.4, top=1.0)
                    q[np.searchsorted(cands, cls)] = v
                sets = ts <= q[None, :]
                rows.append((t, m, a, sets[np.arange(test.size), ty].mean(), sets.sum(1).mean()))
    return rows


@pytest.mark.parametrize("class_conditional", [False, True])
def test_classification_trials_match_reference_loop(class_conditional):
    real, synth = _data()
    n_cal, n_test, n_maj = (20, 60, 80) if class_conditional else (8, 60, 40)
    methods = ["SC", "SC (synth)", "SPI"]
    df = run_sppi_trials(dict(real=real, synth=synth, alpha=ALPHAS, methods=methods, n_seeds=3, n_cal=n_cal,
                              n_test=n_test, n_cal_maj=n_maj, class_conditional=class_conditional, dataset="fake"))
    ref = _reference(real, synth, class_conditional, n_cal, n_test, n_maj, methods)
    marginal = df[df["Class"].isna()] if class_conditional else df
    assert len(marginal) == len(ref) == 3 * len(methods) * len(ALPHAS)
    got = list(zip(marginal.trial, marginal.Method, marginal.alpha, marginal.Coverage, marginal.Length))
    assert got == ref
    if class_conditional:  # each marginal row is followed by its 4 per-class rows
        assert len(df) == len(ref) * 5
        block = df.iloc[1:5]
        assert block["Class"].tolist() == [2, 3, 4, 5] and block["Coverage"].isna().all()
        assert (block["n_cal_cond"] == 5).all() and (block["n_cal_maj_cond"] == 20).all()
        assert np.isclose(np.average(block["Conditional Coverage"]), df.iloc[0]["Coverage"])


def test_subset_trials_match_reference_loop():
    real, synth = _data()
    methods = ["SC", "SPI", "SPI [subset]"]
    df = run_sppi_trials(dict(real=real, synth=synth, alpha=ALPHAS, methods=methods, n_seeds=3, n_cal=8,
                              n_test=60, n_cal_maj=40, only_maj_exact=True, k=2, dataset="fake"))
    ref = _reference(real, synth, False, 8, 60, 40, methods, k=2)
    assert list(zip(df.trial, df.Method, df.alpha, df.Coverage, df.Length)) == ref


def test_deterministic_and_seed_columns():
    real, synth = _data()
    cfg = dict(real=real, synth=synth, alpha=[0.1], n_seeds=2, n_cal=8, n_test=40, n_cal_maj=40, seed=7)
    a, b = run_sppi_trials(cfg), run_sppi_trials(cfg)
    assert a.equals(b)
    assert a["seed"].unique().tolist() == trial_seeds(7, 2)


def _reg():
    rng = np.random.default_rng(0)
    iv = np.sort(rng.normal(size=(60, 2)), axis=1).astype(np.float32)
    return RegressionData(iv, rng.normal(size=60).astype(np.float32))


@pytest.mark.parametrize("update, exc, match", [
    ({"colour": 1}, ValueError, "unknown config keys"),
    ({"alpha": [0.1, 1.5]}, ValueError, "alpha"),
    ({"beta": 0.0}, ValueError, "beta"),
    ({"n_cal_maj": 9}, ValueError, "n_cal_maj"),
    ({"methods": ["SC", "OT"]}, ValueError, "unknown methods"),
    ({"methods": ["SPI [subset]"]}, ValueError, "classification-only"),
    ({"n_cal": 0}, ValueError, "n_cal"),
    ({"synth": ClassificationData(np.full((3, 2), 0.5, np.float32), np.array([0, 1, 1]))}, TypeError, "both"),
])
def test_bad_config(update, exc, match):
    cfg = dict(real=_reg(), synth=_reg(), alpha=[0.1], n_seeds=2, n_cal=8, n_test=20, n_cal_maj=30)
    cfg.update(update)
    with pytest.raises(exc, match=match):
        run_sppi_trials(cfg)


def test_cli_windows_and_bounds():
    from typer.testing import CliRunner

    from synthperf.conformal.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["windows", "15", "1000", "0.4"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[2].split() == ["1", "14", "97"]  # spec §1b example, rank 1
    assert res.output.splitlines()[-1].split() == ["16", "905", "988"]
    res = runner.invoke(app, ["bounds", "15", "1000", "--alpha", "0.1", "--beta", "0.4"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1].split() == ["0.1", "0.812", "0.938"]
    bad = runner.invoke(app, ["windows", "15", "16", "0.4"])
    assert bad.exit_code == 2 and "n_synth" in bad.output
