"""Issue 13/14 (flows): library train()/simulate(), class-conditional denoisers, the melt-matched
PRR latent (eps) fix, the digits demo contract and the trajectories figure.

All trainings here are tiny (tens of steps): they check plumbing, shapes, determinism and
caching, not quality (quality numbers come from ``evaluate_digits`` runs, see the report).
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from synthperf import flows
from synthperf.flows import digits as fd
from synthperf.flows.networks import IFsPrecond, SmallUNet, ToyMLP
from synthperf.flows.training import load_network

pytestmark = pytest.mark.filterwarnings("ignore:.*the latent will not be Gaussian:RuntimeWarning")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_budget(monkeypatch):
    monkeypatch.setitem(fd.BUDGETS, "demo", {"steps": 12, "batch": 32, "width": 32, "depth": 1, "lr": 2e-3,
                                             "n_iters": 6, "solver": "heun"})


def _digits_subset(n_per_class: int = 6):
    x, y, _, _ = fd.digits_split()
    idx = np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in range(10)])
    return x[idx], y[idx]


# ----------------------------------------------------------------------------- eps (PRR latent)
def test_prr_latent_matches_melt_and_warns_for_exploding_eps():
    x = flows.make_toy("circles", 500, seed=0)
    sch, _ = flows.InflationSchedule.from_data(x, dims_to_keep=1, rho=2.0)
    T = 4.02
    matched = sch.melt_latent_var(T)
    std = sch.generation_latent_std(None, T)
    assert std[0] == pytest.approx(sch.end_vars) and std[1] == pytest.approx(np.sqrt(matched[1]))
    assert matched[1] < 1e-3  # compressed: tiny; upstream's eps = 1 is >1000x too large
    with pytest.warns(RuntimeWarning, match="PRR generation with eps = 1"):
        flows.sample_latent(sch, 10, eps=1.0, t_end=T)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        flows.sample_latent(sch, 10, eps=float(matched[1]), t_end=T)  # matched: silent
    with pytest.raises(ValueError, match="t_end"):
        flows.sample_latent(sch, 10, eps=None)


def test_prr_generation_default_does_not_explode():
    """Regression: PRR generation with upstream's eps = 1 blew up (gen std 47 vs data std 1 here,
    838 in the report) silently; the default is now the melt-matched latent."""
    kw = dict(data_name="circles", dims_to_keep=1, rho=2.0, steps=201, h=0.02, total_samples=200, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no warning for the default
        warnings.filterwarnings("ignore", message=".*the latent will not be Gaussian")
        default = flows.simulate(None, **kw)
    assert 0.5 < default.final("gen").std() / default.x.std() < 2.0
    with pytest.warns(RuntimeWarning, match="blow up"):
        upstream = flows.simulate(None, eps=1.0, **kw)
    assert upstream.final("gen").std() > 10 * default.x.std()


# ----------------------------------------------------------------------------- conditional nets
def test_conditional_backbones_validate_labels_and_use_them():
    x, y = _digits_subset(3)
    sch, W = flows.InflationSchedule.from_data(2.0 * x - 1.0)
    torch.manual_seed(0)
    for bb, kw in ((ToyMLP(64, width=16, depth=1, fourier_features=0, num_classes=10), {}),
                   (SmallUNet(1, 8, channels=8, num_classes=10), {"space": "IS", "image_shape": (1, 8, 8)})):
        for p in bb.parameters():  # zero-initialised output layers would hide the label
            torch.nn.init.normal_(p, std=0.1)
        net = IFsPrecond(bb, sch, W, xi_min=1e-3, **kw)
        u, t = torch.randn(4, 64), torch.full((4,), 0.5)
        d0 = net.denoise(u, t, torch.zeros(4, dtype=torch.long))
        d1 = net.denoise(u, t, torch.ones(4, dtype=torch.long))
        assert d0.shape == (4, 64) and not torch.allclose(d0, d1)
        with pytest.raises(ValueError, match="class-conditional"):
            net.denoise(u, t)
        with pytest.raises(ValueError, match=r"\[0, 10\)"):
            net.denoise(u, t, torch.full((4,), 10))
        with pytest.raises(TypeError, match="integer"):
            net.denoise(u, t, torch.zeros(4))
        with pytest.raises(ValueError, match="batch size"):
            net.denoise(u, t, torch.zeros(3, dtype=torch.long))
    plain = IFsPrecond(ToyMLP(64, width=8, depth=1), sch, W)
    with pytest.raises(ValueError, match="unconditional"):
        plain.denoise(torch.randn(2, 64), torch.full((2,), 0.5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(TypeError, match="num_classes"):
        ToyMLP(4, num_classes=2.5)


def test_train_simulate_images_conditional_centred(tmp_path):
    x, y = _digits_subset(4)
    kw = dict(images=2.0 * x - 1.0, labels=y, tmax=15.01, steps=8, batch=16, width=16, depth=1,
              class_conditional=True, center=True, seed=3)
    a = flows.train(tmp_path / "a", **kw)
    b = flows.train(tmp_path / "b", **kw)
    assert a.steps == 8 and a.checkpoint.is_file() and a.checkpoint.with_suffix(".safetensors").is_file()
    meta = json.loads(a.checkpoint.read_text())
    assert meta["backbone"]["config"]["num_classes"] == 10 and len(meta["data_mean"]) == 64
    np.testing.assert_allclose(meta["data_mean"], (2.0 * x - 1.0).mean(0), atol=1e-12)
    net = load_network(a.checkpoint)
    assert net.num_classes == 10
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):  # deterministic for a fixed seed
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    res = flows.simulate(tmp_path / "sims", images=2.0 * x - 1.0, labels=y, network=a.checkpoint, grid="vp_ode",
                         steps=6, solver="heun", total_samples=25, save_freq=1, seed=1)
    assert res.x.shape == (25, 64) and res.labels.shape == (25,)
    for key in ("melt", "rdtrp", "gen"):
        assert np.isfinite(res.trajectories[key].xs).all()
    direct = np.mean((res.trajectories["rdtrp"].tilde_xs[-1] + res.data_mean - res.x) ** 2)
    assert res.roundtrip_mse == pytest.approx(direct)
    assert sorted(p.name for p in (tmp_path / "sims").glob("*.npz")) == [
        "images_PRP_net_gen_results.npz", "images_PRP_net_melt_results.npz", "images_PRP_net_rdtrp_results.npz"]
    with pytest.raises(ValueError, match="label"):
        flows.simulate(None, images=2.0 * x - 1.0, network=a.checkpoint, total_samples=5, steps=3)
    with pytest.raises(ValueError, match="exactly one data source"):
        flows.train(tmp_path / "c", data_name="circles", images=x, steps=1)


def test_cli_train_and_simulate_on_digits_zip(tmp_path):
    from typer.testing import CliRunner

    from synthperf.flows.cli import app

    run = CliRunner()
    z = tmp_path / "digits.zip"
    assert run.invoke(app, ["dataset-tool", "--source", "digits", "--dest", str(z), "--max-images", "60"]).exit_code == 0
    for extra in ([], ["--dims-to-keep", "13", "--g-type", "constant_inflation_gap", "--inflation-gap", "0.02"]):
        out = tmp_path / f"net{len(extra)}"
        r = run.invoke(app, ["train", "--outdir", str(out), "--data", str(z), "--steps", "4", "--batch", "16",
                             "--width", "16", "--tmax", "15.01", "--class-conditional", "--center", *extra],
                       catch_exceptions=False)
        assert r.exit_code == 0, r.output
        r = run.invoke(app, ["simulate", "--save-dir", str(tmp_path / f"sim{len(extra)}"), "--data", str(z),
                             "--network", str(out / "network.json"), "--grid", "vp_ode", "--steps", "5",
                             "--solver", "heun", "--total-samples", "20"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "roundtrip MSE" in r.output and ("PRRto13D" in r.output) == bool(extra)


# ----------------------------------------------------------------------------- digits contract
def test_make_digits_synthetic_contract_determinism_and_reuse(tmp_path, tiny_budget):
    x, y = _digits_subset(6)
    xs, ys, info = fd.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "a", seed=1)
    assert xs.dtype == np.float32 and xs.shape == (30, 64) and ys.dtype == np.int64
    assert (np.bincount(ys, minlength=10) == 3).all() and xs.min() >= 0 and xs.max() <= 1
    assert info["schedule"] == "PRP" and info["reused_model"] == 0 and info["reused_samples"] == 0
    assert all(isinstance(v, (int, float, str)) for v in info.values())
    xs2, ys2, _ = fd.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "b", seed=1)
    np.testing.assert_array_equal(xs, xs2)  # deterministic on CPU for a fixed seed
    np.testing.assert_array_equal(ys, ys2)
    xs3, _, info3 = fd.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "a", seed=1)
    assert info3["reused_model"] == 1 and info3["reused_samples"] == 1 and info3["train_seconds"] == 0.0
    np.testing.assert_array_equal(xs, xs3)
    xp, yp, ip = fd.make_digits_synthetic(x, y, 2, out_dir=tmp_path / "a", seed=1, schedule="PRR")
    assert ip["schedule"] == "PRRto13D" and xp.shape == (20, 64) and np.isfinite(xp).all()
    bad = [((x * 16, y, 3), ValueError, "x_train"), ((x.astype(int), y, 3), TypeError, "x_train"),
           ((x, y.astype(float), 3), TypeError, "y_train"), ((x, y[:-1], 3), ValueError, "y_train"),
           ((x, y, 0), ValueError, "per_class")]
    for args, exc, name in bad:
        with pytest.raises(exc, match=name):
            fd.make_digits_synthetic(*args, out_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="budget"):
        fd.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "c", budget="huge")
    with pytest.raises(ValueError, match="schedule"):
        fd.make_digits_synthetic(x, y, 3, out_dir=tmp_path / "c", schedule="PRX")


def test_plot_digits_trajectories_writes_png_pdf(tmp_path, tiny_budget):
    x, y = _digits_subset(4)
    _, _, info = fd.make_digits_synthetic(x, y, 1, out_dir=tmp_path, seed=0, schedule="PRR")
    paths = fd.plot_digits_trajectories(info["model_dir"], tmp_path / "fig" / "traj", x01=x[:20], y=y[:20],
                                        n_iters=5, n_frames=4)
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    from synthperf.flows.plots import participation_ratio

    rng = np.random.default_rng(0)
    assert participation_ratio(rng.normal(size=(20000, 4)) * [1, 1, 1, 1]) == pytest.approx(4.0, rel=0.02)
    assert participation_ratio(rng.normal(size=(20000, 4)) * [1, 0, 0, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="x01"):
        fd.plot_digits_trajectories(info["model_dir"], tmp_path / "bad", x01=x[:, :10], y=y)
    with pytest.raises(ValueError, match="model_or_dir"):
        fd.plot_digits_trajectories(tmp_path / "nothing", tmp_path / "bad")


def test_cas_protocol_real_reference():
    """The shared CAS protocol on the real train half: ~0.97 (binomial SE on 899 test images ~0.006)."""
    x_tr, y_tr, x_te, y_te = fd.digits_split()
    assert x_tr.shape == (898, 64) and x_te.shape == (899, 64)
    assert fd.cas_score(x_tr, y_tr, x_te, y_te, 0) > 0.95
