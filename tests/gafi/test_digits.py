"""Shared digits demo contract of synthperf.gafi.digits (issue 13 item 4), at a plumbing-only size."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import synthperf.gafi.digits as gd


@pytest.fixture
def tiny_budget(monkeypatch):
    real = gd.digits_gan_configs

    def small(budget="demo"):
        gan, gtrain, cls, knobs = real(budget)
        return (replace(gan, g_conv_dim=4, d_conv_dim=4, latent_dim=8, shared_dim=4),
                replace(gtrain, epochs=1, g_ema_start=2), replace(cls, width=2, epochs=1, lr_milestones=(1,)), knobs)

    monkeypatch.setattr(gd, "digits_gan_configs", small)


def _data(n=200):
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images.reshape(-1, 64)[:n] / 16).astype(np.float32), d.target[:n].astype(np.int64)


@pytest.mark.parametrize("method", ["unfiltered", "gafi", "multigan"])
def test_contract_shapes_balance_determinism_and_reuse(tmp_path, tiny_budget, method):
    x, y = _data()
    a = gd.make_digits_synthetic(x, y, 7, out_dir=tmp_path, seed=3, method=method)
    b = gd.make_digits_synthetic(x, y, 7, out_dir=tmp_path, seed=3, method=method)  # reuses the checkpoints
    x01, y01, info = a
    assert x01.dtype == np.float32 and x01.shape == (70, 64) and y01.dtype == np.int64
    assert 0.0 <= x01.min() and x01.max() <= 1.0
    assert np.array_equal(np.bincount(y01, minlength=10), np.full(10, 7))
    assert np.array_equal(x01, b[0]) and np.array_equal(y01, b[1])
    assert b[2]["train_seconds"] < a[2]["train_seconds"]
    for key in ("acceptance_rate", "acceptance_min", "train_seconds", "sample_seconds", "preset", "tau", "sigma"):
        assert np.isscalar(info[key]), key
    assert info["n_gans"] == (2 if method == "multigan" else 1)
    if method == "unfiltered":
        assert info["acceptance_rate"] == 1.0 and info["tau"] == 0.0


def test_filter_fn_is_used(tmp_path, tiny_budget):
    x, y = _data()
    calls = []

    def says_zero(imgs):  # always class 0 with certainty: classes 1..9 hit the attempt cap
        calls.append(imgs.shape)
        out = torch.full((imgs.shape[0], 10), -20.0)
        out[:, 0] = 20.0
        return out

    _, y01, info = gd.make_digits_synthetic(x, y, 5, out_dir=tmp_path, method="gafi", filter_fn=says_zero)
    assert calls and calls[0][1:] == (1, 8, 8)
    assert info["filter"] == "filter_fn" and info["capped_classes"] == 9 and info["acceptance_min"] == 0.0
    assert np.array_equal(np.bincount(y01, minlength=10), np.full(10, 5))


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"x_train": [[0.0] * 64]}, TypeError, "x_train"),
    ({"x_train": np.zeros((10, 63), np.float32)}, ValueError, "x_train"),
    ({"x_train": np.full((200, 64), 2.0, np.float32)}, ValueError, "x_train"),
    ({"y_train": np.zeros(200, np.int64)}, ValueError, "y_train"),
    ({"per_class": 0}, ValueError, "per_class"),
    ({"seed": -1}, ValueError, "seed"),
    ({"method": "vae"}, ValueError, "method"),
    ({"budget": "huge"}, ValueError, "budget"),
    ({"filter_fn": 3}, TypeError, "filter_fn"),
])
def test_bad_arguments_name_themselves(tmp_path, kwargs, exc, word):
    x, y = _data()
    args = {"x_train": x, "y_train": y, "per_class": 5, "out_dir": tmp_path, **kwargs}
    with pytest.raises(exc, match=word):
        gd.make_digits_synthetic(args.pop("x_train"), args.pop("y_train"), args.pop("per_class"), **args)
