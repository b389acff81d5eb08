"""Long-tail top-up experiment at tiny sizes: plumbing, bookkeeping identities, plot files, CLI."""
from __future__ import annotations

import numpy as np
import pytest

import synthperf
from synthperf.guidance.longtail import (ARMS, digits_split, make_longtail, paired_difference, plot_longtail,
                                         run_longtail_experiment, summarize_longtail, topup_counts)

synthperf.disable_progress()
TINY = dict(budget="tiny", classifier_epochs=1, fg_scale=0.05, guidance_freq=1)


def test_longtail_subset_and_topup_rule():
    _, y, _, _ = digits_split()
    idx, minority = make_longtail(y, n_minority_classes=3, n_minority=8, seed=4)
    counts = np.bincount(y[idx], minlength=10)
    assert len(minority) == 3 and (counts[minority] == 8).all()
    majority = np.setdiff1d(np.arange(10), minority)
    assert np.array_equal(counts[majority], np.bincount(y, minlength=10)[majority])
    per = topup_counts(y[idx])
    assert np.array_equal(per, np.maximum(counts.max() - counts, 1))  # spec §5: max(max_count - count, 1)
    idx2, m2 = make_longtail(y, minority_classes=[1, 2], n_minority=5, seed=0)
    assert m2.tolist() == [1, 2] and np.bincount(y[idx2], minlength=10)[1] == 5
    with pytest.raises(ValueError, match="n_minority"):
        make_longtail(y, n_minority=10_000)
    with pytest.raises(ValueError, match="minority_classes"):
        make_longtail(y, minority_classes=[1, 1])


def test_experiment_numbers_are_consistent(tmp_path):
    df = run_longtail_experiment(seeds=(3,), out_dir=tmp_path, **TINY)
    assert list(df["arm"]) == list(ARMS)
    _, y_tr, _, y_te = digits_split()
    idx, minority = make_longtail(y_tr, seed=3)
    n_synth = int(topup_counts(y_tr[idx]).sum())
    assert (df["n_real"] == len(idx)).all()
    assert df.set_index("arm")["n_synth"].to_dict() == {"real": 0, **{a: n_synth for a in ARMS[1:]}}
    n_min = int(np.isin(y_te, minority).sum())
    assert (df["n_test_minority"] == n_min).all() and (df["minority_classes"] == ",".join(map(str, minority))).all()
    # overall accuracy is the test-size-weighted mix of the minority and majority accuracies
    mix = (df["minority_acc"] * n_min + df["majority_acc"] * (len(y_te) - n_min)) / len(y_te)
    assert np.allclose(mix, df["overall_acc"], atol=1e-12)
    for col in ("minority_acc", "majority_acc", "overall_acc"):  # accuracies are multiples of 1/n
        n = {"minority_acc": n_min, "majority_acc": len(y_te) - n_min, "overall_acc": len(y_te)}[col]
        assert np.allclose(df[col] * n, np.round(df[col] * n), atol=1e-9) and df[col].between(0, 1).all()
    guided = df[df.arm.isin(["loss", "entropy", "hardness"])]
    assert np.isfinite(guided["mean_criterion"]).all() and df[df.arm == "real"]["mean_criterion"].isna().all()
    # the arms differ (real-only trains on fewer images; guided samples differ from unguided ones)
    assert df["overall_acc"].nunique() > 1
    # the real-only arm equals a classifier trained independently on the same long-tailed set
    import torch

    from synthperf.guidance.classifiers import _upsample_digits, train_digits_classifier

    x_tr, _, x_te, _ = digits_split()
    m, info = train_digits_classifier(size=16, width=8, epochs=1, seed=3, data=(x_tr[idx], y_tr[idx]), val_fraction=0.0)
    xt, _ = _upsample_digits(x_te, y_te, size=16)
    with torch.no_grad():
        pred = m((xt - info.mean[0]) / info.std[0]).argmax(1).numpy()
    assert df.set_index("arm").loc["real", "overall_acc"] == pytest.approx(float((pred == y_te).mean()), abs=1e-12)
    # a second run reuses the cached diffusion model and reproduces the numbers
    df2 = run_longtail_experiment(seeds=(3,), out_dir=tmp_path, arms=("unguided", "loss"), **TINY)
    assert np.array_equal(df2["overall_acc"].to_numpy(), df.set_index("arm").loc[["unguided", "loss"], "overall_acc"].to_numpy())


def test_summary_paired_difference_and_plot(tmp_path):
    import pandas as pd

    df = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "arm": ["unguided", "loss"] * 3, "generator_data": "longtail",
                       "minority_acc": [0.5, 0.6, 0.4, 0.6, 0.7, 0.7], "majority_acc": 0.9, "overall_acc": 0.8})
    s = summarize_longtail(df).set_index("arm")
    assert s.loc["loss", "minority_acc_mean"] == pytest.approx(0.6333333333)
    assert s.loc["loss", "minority_acc_sem"] == pytest.approx(np.std([0.6, 0.6, 0.7], ddof=1) / np.sqrt(3))
    m, se, n = paired_difference(df, "loss")
    assert n == 3 and m == pytest.approx(0.1) and se == pytest.approx(np.std([0.1, 0.2, 0.0], ddof=1) / np.sqrt(3))
    paths = plot_longtail(df, tmp_path / "plot")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_shared_balanced_generator_is_trained_once(tmp_path):
    """generator_seed: one balanced-data model for all seeds; model_root reuses another run's model."""
    from synthperf.guidance.digits import train_digits_diffusion

    x_tr, y_tr, _, _ = digits_split()
    root = tmp_path / "shared_models"
    _, first = train_digits_diffusion(x_tr, y_tr, out_dir=root, seed=7, budget="tiny")
    assert first["reused"] == 0
    df = run_longtail_experiment(seeds=(0, 1), out_dir=tmp_path / "lt", arms=("real", "unguided"),
                                 generator_data="balanced", generator_seed=7, model_root=root, **TINY)
    assert set(df["generator_seed"]) == {7}
    assert (df["generator_reused"] == 1).all()  # the model trained above, not one per seed
    assert not (tmp_path / "lt" / "models").exists()
    with pytest.raises(ValueError, match="generator_seed"):
        run_longtail_experiment(out_dir=tmp_path, generator_seed=1)  # longtail data change per seed
    with pytest.raises(ValueError, match="generator_seed"):
        run_longtail_experiment(out_dir=tmp_path, generator_data="balanced", generator_seed=-1)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="arms"):
        run_longtail_experiment(out_dir=tmp_path, arms=("gan",))
    with pytest.raises(ValueError, match="generator_data"):
        run_longtail_experiment(out_dir=tmp_path, generator_data="imagenet")
    with pytest.raises(ValueError, match="fg_scale"):
        run_longtail_experiment(out_dir=tmp_path, fg_scale=0.0)
    with pytest.raises(ValueError, match="evaluator"):
        run_longtail_experiment(out_dir=tmp_path, evaluator="svm")


def test_cli_longtail(tmp_path):
    from typer.testing import CliRunner

    from synthperf.guidance.cli import app

    res = CliRunner().invoke(app, ["longtail", "--out", str(tmp_path), "--seeds", "0", "--budget", "tiny",
                                   "--classifier-epochs", "1", "--fg-scale", "0.05"])
    assert res.exit_code == 0, res.output
    assert "unguided" in res.output and "minority accuracy" in res.output
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "longtail.pdf").is_file()
    bad = CliRunner().invoke(app, ["longtail", "--out", str(tmp_path), "--seeds", "x"])
    assert bad.exit_code == 2 and "--seeds" in bad.output
