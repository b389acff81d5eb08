"""Metrics (§6), dataset tool (§7), networks/training (§2) and the CLI."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from synthperf.flows import InflationSchedule, make_toy
from synthperf.flows.cli import app
from synthperf.flows.dataset_tool import ImageZipDataset, make_dataset_zip
from synthperf.flows.metrics import (alpha_shape_contains, chi2_coverage, frechet_distance,
                                     frechet_distance_from_features, frechet_distance_with_extractor,
                                     load_local_feature_extractor, residual_cross_correlations, roundtrip_mse)
from synthperf.flows.networks import IFsPrecond, SmallUNet, ToyMLP
from synthperf.flows.training import TrainConfig, ifs_loss, load_checkpoint, load_network, train


def test_roundtrip_mse_float_and_uint8_wrap():
    a = np.zeros((1, 4))
    b = np.array([[0.0, 10 / 127.5, 20 / 127.5, -20 / 127.5]])
    # pixels: 128 vs [128, 138, 148, 108] -> deltas 0, -10, -20, 20
    assert roundtrip_mse(a, b) == pytest.approx((0 + 100 + 400 + 400) / 4)
    # uint8: 400 wraps to 144 (mod 256); 100 stays
    assert roundtrip_mse(a, b, uint8_wrap=True) == pytest.approx((0 + 100 + 144 + 144) / 4)


def test_frechet_distance_exact():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(3, 3))
    s1, s2 = A @ A.T + np.eye(3), np.diag([1.0, 2.0, 3.0])
    m1, m2 = np.array([1.0, 0, 0]), np.zeros(3)
    # commuting case: diag covariances give sum (sqrt a - sqrt b)^2
    d1, d2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    assert frechet_distance(m2, d1, m2, d2) == pytest.approx(1 + 0 + 4)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(m1, s1, m2, s2) > 1.0
    f = rng.normal(size=(400, 4))
    assert frechet_distance_from_features(f, f) == pytest.approx(0.0, abs=1e-8)
    ext = torch.nn.Flatten()
    assert frechet_distance_with_extractor(ext, f.reshape(400, 2, 2), f.reshape(400, 2, 2) + 1.0, batch=64) == pytest.approx(4.0)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_local_feature_extractor("/nonexistent/inception.pt")


def test_alpha_shape_contains_and_chi2_reference():
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]], float)
    inside = alpha_shape_contains(sq, np.array([[0.2, 0.3], [1.5, 0.5], [-0.1, 0.2]]), 0.005)
    assert inside.tolist() == [True, False, False]
    cube = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    assert alpha_shape_contains(cube, np.array([[0.5, 0.5, 0.5], [2, 0, 0]]), 0.1).tolist() == [True, False]
    np.testing.assert_allclose(100 * chi2_coverage(np.linspace(0.5, 3.5, 7), 2),
                               [11.75, 39.35, 67.53, 86.47, 95.61, 98.89, 99.78], atol=0.01)
    np.testing.assert_allclose(100 * chi2_coverage(np.linspace(0.5, 3.5, 7), 3),
                               [3.09, 19.87, 47.78, 73.85, 89.99, 97.07, 99.34], atol=0.01)


def test_residual_cross_correlations():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5000, 2)) * [1.0, 3.0]
    R = residual_cross_correlations(a, a)
    np.testing.assert_allclose(np.diag(R), 1.0, atol=1e-12)
    Rq = residual_cross_correlations(a, a, upstream_normalization=True)
    sd = a.std(0)
    assert Rq[1, 0] == pytest.approx(R[1, 0] * sd[1] / sd[0], rel=1e-9)  # column-only sigma quirk


def _png_zip(tmp_path, members):
    p = tmp_path / "bad.zip"
    with zipfile.ZipFile(p, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return p


def test_dataset_tool_digits_roundtrip(tmp_path):
    dest = tmp_path / "digits.zip"
    assert make_dataset_zip("digits", dest, max_images=30) == 30
    with zipfile.ZipFile(dest) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        meta = json.loads(zf.read("dataset.json"))
    assert meta["labels"][0][0] == "00000/img00000000.png"
    with ImageZipDataset(dest) as ds:
        img, label = ds[3]
        assert img.shape == (1, 8, 8) and img.dtype == np.uint8 and label == 3
        arr = ds.array()
        assert arr.shape == (30, 1, 8, 8) and arr.min() >= -1 and arr.max() <= 1


def test_dataset_reader_rejects_traversal_and_corruption(tmp_path):
    with pytest.raises(ValueError, match="traversal"):
        ImageZipDataset(_png_zip(tmp_path, {"../evil.png": b"x"}))
    with pytest.raises(ValueError, match="not a valid PNG"):
        ImageZipDataset(_png_zip(tmp_path, {"00000/img00000000.png": b"not a png"}))
    (tmp_path / "junk.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable ZIP"):
        ImageZipDataset(tmp_path / "junk.zip")


def test_precond_coefficients_and_ideal_gaussian():
    """For Gaussian data N(0, diag xi) the ideal denoiser is c_skip u, i.e. F = 0 (§2.1)."""
    sch = InflationSchedule(data_dim=2, dims_to_keep=1, xi=(2.0, 0.5))
    net = IFsPrecond(ToyMLP(2), sch, np.eye(2))
    t = torch.tensor([0.0, 1.0, 3.0])
    c = net.coefficients(t)
    gamma = torch.tensor(sch.gamma(t.numpy()), dtype=torch.float32)
    xi = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(c["c_skip"], xi / (xi + gamma))
    torch.testing.assert_close(c["c_out"] ** 2, xi * gamma / (xi + gamma))
    torch.testing.assert_close(c["c_noise"], 999 * t)
    D, w = net(torch.ones(3, 2), t)
    torch.testing.assert_close(D, c["c_skip"], atol=1e-4, rtol=1e-3)  # output layer starts ~0
    torch.testing.assert_close(w, 1 / c["c_out"])


def test_image_space_unet_shapes():
    sch = InflationSchedule(data_dim=64, dims_to_keep=64, xi=tuple(np.linspace(2, 0.1, 64)))
    W = np.linalg.qr(np.random.default_rng(0).normal(size=(64, 64)))[0]
    net = IFsPrecond(SmallUNet(1, 8, channels=8), sch, W, space="IS", image_shape=(1, 8, 8))
    D, w = net(torch.randn(5, 64), torch.rand(5))
    assert D.shape == (5, 64) and w.shape == (5, 64)
    unet32 = SmallUNet(3, 32, channels=8, mults=(1, 2, 2))
    assert unet32(torch.randn(2, 3, 32, 32), torch.rand(2)).shape == (2, 3, 32, 32)


def test_train_checkpoint_resume_is_deterministic(tmp_path):
    x = make_toy("moons", 5000, seed=0)
    sch, W = InflationSchedule.from_data(x, rho=2.0)
    sample = lambda b, rng: make_toy("moons", b, seed=int(rng.integers(1 << 31))) @ W  # noqa: E731
    cfg = TrainConfig(steps=6, batch=64, t_max=3.0, seed=1)

    def fresh():
        torch.manual_seed(0)
        return IFsPrecond(ToyMLP(2, width=32, depth=1), sch, W)

    full = train(fresh(), sample, cfg)
    train(fresh(), sample, TrainConfig(**{**cfg.__dict__, "steps": 3}), checkpoint_dir=tmp_path)
    resumed = train(fresh(), sample, cfg, resume=tmp_path / "network")
    assert resumed.step == 6
    assert all(np.isfinite(resumed.losses))
    net = load_network(tmp_path / "network")
    assert isinstance(net.backbone, ToyMLP) and net.schedule == sch
    # the checkpoint holds exactly the state of a deterministic 3-step run:
    st = train(fresh(), sample, TrainConfig(**{**cfg.__dict__, "steps": 3}))
    for p1, p2 in zip(st.net.parameters(), load_network(tmp_path / "network", use_ema=False).parameters()):
        torch.testing.assert_close(p1, p2)
    assert full.step == 6
    (tmp_path / "network.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        load_network(tmp_path / "network")


def test_loss_is_finite_and_positive():
    sch = InflationSchedule(data_dim=2, dims_to_keep=2, xi=(1.0, 1.0))
    net = IFsPrecond(ToyMLP(2, width=16, depth=1), sch, np.eye(2))
    loss = ifs_loss(net, torch.randn(32, 2), 1e-7, 7.0, torch.Generator().manual_seed(0))
    assert loss.shape == (32,) and torch.isfinite(loss).all() and (loss > 0).all()


def test_cli_dataset_tool_and_simulate(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["dataset-tool", "--source", "digits", "--dest", str(tmp_path / "d.zip"), "--max-images", "12"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["simulate", "--save-dir", str(tmp_path / "sim"), "--data-name", "sine2", "--dims-to-keep", "1",
                              "--steps", "21", "--h", "0.35", "--total-samples", "40", "--backend", "cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sim" / "sine2_PRRto1D_gen_results.npz").is_file()
    a, b = np.random.default_rng(0).normal(size=(2, 50, 3))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    res = runner.invoke(app, ["fid", "--features-a", str(tmp_path / "a.npy"), "--features-b", str(tmp_path / "b.npy")])
    assert res.exit_code == 0 and float(res.output) == pytest.approx(frechet_distance_from_features(a, b), rel=1e-5)


def test_coverage_experiment_small():
    """§6 experiment end to end (small): latent coverage matches chi2 within binomial error and the
    transported shells give data-space coverages that increase with the radius."""
    from synthperf.flows import DiscreteFlow
    from synthperf.flows.metrics import coverage_experiment

    x = make_toy("circles", 300, seed=0)
    sch, W = InflationSchedule.from_data(x, rho=2.0)
    res = coverage_experiment(DiscreteFlow(x @ W, backend="cpu"), sch, W, radii=[1.0, 2.0], n_test=600,
                              n_boundary=80, steps=101, h=0.07, seed=1)
    p = res["ideal"] / 100
    assert np.all(np.abs(res["latent"] - res["ideal"]) < 100 * (4 * np.sqrt(p * (1 - p) / 600)) + 2.0)
    assert res["data"][1] > res["data"][0] and np.all(np.isfinite(res["latent_roundtrip"]))


def test_cli_image_train_and_roundtrip_mse(tmp_path):
    runner = CliRunner()
    z = str(tmp_path / "d.zip")
    assert runner.invoke(app, ["dataset-tool", "--source", "digits", "--dest", z, "--max-images", "40"]).exit_code == 0
    res = runner.invoke(app, ["train", "--outdir", str(tmp_path / "ck"), "--data", z, "--steps", "2", "--batch", "8",
                              "--rho", "2", "--width", "32"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "mse.json"
    res = runner.invoke(app, ["roundtrip-mse", "--network", str(tmp_path / "ck" / "network"), "--data", z, "--out", str(out),
                              "--total-samples", "4", "--n-iters", "4"])
    assert res.exit_code == 0, res.output
    mse = json.loads(out.read_text())["mse"]
    assert np.isfinite(mse) and mse >= 0
