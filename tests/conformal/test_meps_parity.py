"""Upstream parity (issue acceptance): the four MEPS age-group configs reproduce upstream's
per-trial Coverage exactly and Length to 1e-6 relative, all 1200 (trial, method) rows."""
from __future__ import annotations

import numpy as np
import pandas as pd

from synthperf.conformal.data import load_meps_pair
from synthperf.conformal.trials import run_sppi_trials, trial_seeds

AGES = ("0-20", "20-40", "40-60", "60+")


def test_meps_alpha01_matches_upstream_per_trial(shared_dir):
    root = shared_dir / "data" / "sppi"
    ref = pd.read_csv(root / "reference_outputs" / "meps_alpha0.1_upstream_per_trial.csv")
    frames = []
    for age in AGES:
        real, synth = load_meps_pair(root, alpha=0.1, age_range=age)
        frames.append(run_sppi_trials({
            "real": real, "synth": synth, "alpha": [], "dataset": "MEPS_alpha_0.1", "age_range": age,
            "methods": ["SC", "SC (synth)", "SPI"], "beta": 0.4, "seed": 42, "n_seeds": 100,
            "n_cal": 15, "n_test": 500, "n_cal_maj": 1000, "upstream": True,
        }))
    out = pd.concat(frames, ignore_index=True)
    assert len(out) == len(ref) == 1200
    assert list(out.columns) == list(ref.columns)
    for col in ("trial", "seed", "Method", "age_range", "alpha", "n_cal", "n_cal_maj", "n_test", "dataset", "beta",
                "n_classes", "n_classes_maj", "k", "dist_criterion"):
        assert (out[col].to_numpy() == ref[col].to_numpy()).all(), col
    np.testing.assert_array_equal(out["Coverage"].to_numpy(), ref["Coverage"].to_numpy())
    np.testing.assert_allclose(out["Length"].to_numpy(), ref["Length"].to_numpy(), rtol=1e-6, atol=0)


def test_trial_seeds_match_upstream(shared_dir):
    ref = pd.read_csv(shared_dir / "data" / "sppi" / "reference_outputs" / "trial_seeds_seed42_n100.csv")
    assert trial_seeds(42, 100) == ref["seed"].tolist()


def test_meps_loader_shapes(shared_dir):
    from synthperf.conformal.data import load_meps

    d = load_meps(shared_dir / "data" / "sppi", alpha=0.1, panel=21, age_range="60+")
    assert d.intervals.shape == (2828, 2) and d.y.shape == (2828,) and d.intervals.dtype == np.float32


def test_imagenet_loader_and_class_pools(shared_dir):
    from synthperf.conformal.data import load_imagenet_probs, other_classes

    root = shared_dir / "data" / "sppi"
    d = load_imagenet_probs(root, [392, 26], missing="skip")  # 0026 is absent upstream too (pitfall P7)
    assert d.probs.shape == (969, 1000) and set(d.labels.tolist()) == {392}
    try:
        load_imagenet_probs(root, [392, 26])
    except FileNotFoundError as exc:
        assert "0026" in str(exc)
    else:
        raise AssertionError("a missing class must raise with missing='raise'")
    pool = other_classes(100)
    assert len(pool) == 100 and pool[-1] == 106 and not {13, 15, 16, 17, 18, 20} & set(pool)


def test_loader_errors(tmp_path):
    import pytest

    from synthperf.conformal.data import load_imagenet_probs, load_meps

    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_meps(tmp_path / "nope")
    d = tmp_path / "meps/models/quantile_regression/alpha_0.1/meps_21/ages_0_20"
    d.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="pred.npy"):
        load_meps(tmp_path)
    np.save(d / "pred.npy", np.zeros((4, 1, 2), np.float32))
    np.save(d / "true.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        load_meps(tmp_path)
    (d / "true.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="true.npy"):
        load_meps(tmp_path)
    np.save(d / "true.npy", np.zeros((5, 1), np.float32))
    with pytest.raises(ValueError, match="same n"):
        load_meps(tmp_path)
    with pytest.raises(ValueError, match="age_range"):
        load_meps(tmp_path, age_range="0-100")
    c = tmp_path / "imagenet/models/m/imagenet_train/0001"
    c.mkdir(parents=True)
    np.save(c / "probs.npy", np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="n_images"):
        load_imagenet_probs(tmp_path, [1], model="m")
