"""Schedules, pfODE convergence, simulations and calibrated coverage (spec §1, §5, §6)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from synthperf.flows import (DiscreteFlow, InflationSchedule, TOY_DATASETS, from_latent, g_vector, ifs_times,
                             make_toy, melt, pca_eigenbasis, run_simulations, time_grid, vp_ode_times)
from synthperf.flows.calibration import latent_coverage


def test_g_vectors():
    np.testing.assert_array_equal(g_vector(2, 2), [0, 0])
    np.testing.assert_array_equal(g_vector(2, 1), [1, -1])
    np.testing.assert_array_equal(g_vector(3, 2), [1, 1, -2])
    assert abs((1 - g_vector(3072, 62).min()) - 1.0206) < 1e-3  # IG = d/(d-k)
    np.testing.assert_allclose(g_vector(4, 1, g_type="constant_inflation_gap", inflation_gap=0.02), [1, -.02, -.02, -.02])
    np.testing.assert_allclose(g_vector(2, 1, g_rescaling=2.0), [2, -2])


def test_schedule_formulas_and_derivatives():
    sch = InflationSchedule(data_dim=3, dims_to_keep=2, xi=(2.0, 1.0, 0.5), rho=1.5, end_vars=1.3)
    t = np.array([0.0, 0.7, 2.0])
    g = np.array([1, 1, -2.0])
    np.testing.assert_allclose(sch.gamma(t), 5e-4 * np.exp(1.5 * (1 + g)[None] * t[:, None]))
    gs = 5e-4 * np.exp(1.5 * 2 * t)
    np.testing.assert_allclose(sch.s(t)[:, 0], 1.3 / np.sqrt(2.0 + gs))
    h = 1e-6
    for f, fd in ((sch.gamma, sch.gamma_dot), (sch.s, sch.s_dot)):
        np.testing.assert_allclose(fd(t), (f(t + h) - f(t - h)) / (2 * h), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(sch.half_rate(t), 0.5 * sch.gamma_dot(t) / sch.gamma(t))
    paper = InflationSchedule(data_dim=2, dims_to_keep=2, xi=(2.0, 0.5), form="paper")
    tt = np.array([0.3, 1.0])
    np.testing.assert_allclose(paper.gamma(tt), np.array([2.0, 0.5])[None] * np.expm1(tt)[:, None])
    for f, fd in ((paper.gamma, paper.gamma_dot), (paper.s, paper.s_dot)):
        np.testing.assert_allclose(fd(tt), (f(tt + h) - f(tt - h)) / (2 * h), rtol=1e-6)
    assert InflationSchedule.from_dict(json.loads(sch.to_json())) == sch


def test_pca_eigenbasis():
    x = np.random.default_rng(0).normal(size=(500, 3)) * [3.0, 1.0, 0.3]
    W, xi, _ = pca_eigenbasis(x)
    np.testing.assert_allclose(W.T @ W, np.eye(3), atol=1e-12)
    assert np.all(np.diff(xi) <= 0)
    np.testing.assert_allclose(np.var(x @ W, axis=0, ddof=1), xi, rtol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    (dict(data_dim=2, dims_to_keep=3, xi=(1, 1)), "dims_to_keep"),
    (dict(data_dim=2, dims_to_keep=2, xi=(1, 1), gamma0=-1.0), "gamma0"),
    (dict(data_dim=2, dims_to_keep=2, xi=(1, 1, 1)), "xi"),
    (dict(data_dim=2, dims_to_keep=1, xi=(1, 1), g_type="weird"), "g_type"),
    (dict(data_dim=2, dims_to_keep=1, xi=(1, 1), form="paper"), "paper"),
])
def test_schedule_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InflationSchedule(**kwargs)


def test_unreachable_gaussian_warns():
    sch = InflationSchedule(data_dim=2, dims_to_keep=2, xi=(1.0, 1.0))
    with pytest.warns(RuntimeWarning, match="not >>"):
        assert not sch.check_reaches_gaussian(7.01)  # gamma(T) ~ 0.55 (spec §2.3 caveat)
    assert InflationSchedule(data_dim=2, dims_to_keep=1, xi=(1.0, 1.0)).check_reaches_gaussian(7.01)


def test_time_grids():
    t = ifs_times(701, 1e-2)
    assert t[0] == 0 and abs(t[-1] - 7.01) < 1e-12 and abs(t[1] - 7.01 / 700) < 1e-12
    v = vp_ode_times(256)
    assert abs(v[0] - 15.01) < 1e-12 and abs(v[-1] - 1e-2) < 1e-12
    np.testing.assert_allclose(time_grid("vp_ode", "melt", 256), v[::-1])


def test_toy_data_seeded_and_standardised():
    for name, d in TOY_DATASETS.items():
        a, b = make_toy(name, 300, seed=4), make_toy(name, 300, seed=4)
        assert a.shape == (300, d)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, make_toy(name, 300, seed=5))
        if not name.startswith("alt_"):
            np.testing.assert_allclose(a.std(0), 1.0, rtol=1e-12)
    assert make_toy("alt_swirl", 2000, seed=0)[:, 0].std() > 3  # raw x kept (upstream quirk)
    assert make_toy("circles", 50, augment_to=5).shape == (50, 5)
    with pytest.raises(ValueError, match="unknown toy"):
        make_toy("spiral", 10)


def _order(errs):
    return np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_roundtrip_convergence_order(name):
    """melt then roundtrip returns to the start; one-way error order ~1 (Euler), ~2 (Heun)."""
    x = make_toy(name, 80, seed=0)
    d = x.shape[1]
    T = 1.0
    for k in (d, d - 1):
        sch, W = InflationSchedule.from_data(x, dims_to_keep=k)
        flow = DiscreteFlow(x @ W, backend="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # short T: not Gaussian, fine for convergence
            ref = melt(flow, sch, W, x, ifs_times(641, T / 641), solver="heun").final_es
            for solver, expected in (("euler", 1.0), ("heun", 2.0)):
                one_way, roundtrip = [], []
                for n in (41, 81, 161):
                    t = ifs_times(n, T / n)
                    m = melt(flow, sch, W, x, t, solver=solver)
                    one_way.append(np.abs(m.final_es - ref).max())
                    r = from_latent(flow, sch, W, m.final_es, t[::-1].copy(), solver=solver)
                    roundtrip.append(np.abs(r.tilde_xs[-1] - x).max())
                p = _order(one_way)
                assert np.all(np.abs(p - expected) < 0.35), (name, k, solver, p)
                assert np.all(_order(roundtrip) > expected - 0.35), (name, k, solver, _order(roundtrip))
                assert roundtrip[-1] < (1e-2 if solver == "euler" else 1e-4)


def test_run_simulations_files(tmp_path):
    x = make_toy("circles", 60, seed=1)
    sch, W = InflationSchedule.from_data(x, dims_to_keep=1)
    with pytest.warns(RuntimeWarning, match="not >>"):  # T = 4.1 is too short to Gaussianise
        out = run_simulations(DiscreteFlow(x @ W, backend="cpu"), sch, W, x, data_name="circles", save_dir=tmp_path,
                              steps=41, h=0.1, save_freq=10, eps=0.01, seed=3)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["circles_PRRto1D_gen_results.npz", "circles_PRRto1D_melt_results.npz",
                     "circles_PRRto1D_rdtrp_results.npz", "circles_PRRto1D_sim_params.json"]
    z = np.load(tmp_path / "circles_PRRto1D_melt_results.npz")
    assert z["xs"].shape == (6, 60, 2) and z["dxs"].shape == (5, 60, 2)  # steps 0,10,20,30 and 39
    for key in ("tilde_xs", "tilde_xs_es", "xs", "xs_es", "unscaled_scores", "gt_netout", "dxs", "dxs_es"):
        assert key in z.files
    np.testing.assert_allclose(z["xs"][1] - z["xs"][0], z["dxs"][0], atol=1e-9)  # step 0 is saved
    np.testing.assert_allclose(out["melt"].tilde_xs[0], x, atol=1e-12)
    params = json.loads((tmp_path / "circles_PRRto1D_sim_params.json").read_text())
    assert params["num_steps"] == 41 and params["dims_to_keep"] == 1 and params["total_samples"] == 60


def test_simulation_bad_dims():
    x = make_toy("circles", 30)
    sch, W = InflationSchedule.from_data(x)
    with pytest.raises(ValueError, match="dimension mismatch"):
        melt(DiscreteFlow(x @ W, backend="cpu"), sch, W, np.zeros((5, 3)), ifs_times(5, 0.1))


@pytest.mark.parametrize("dims_to_keep, rho", [(2, 2.0), (1, 1.0)])
def test_calibrated_latent_coverage(dims_to_keep, rho):
    """Held-out draws from the modelled distribution p_N * N(0, gamma0) land in latent credible
    balls at the nominal chi2_k rate, within 4 binomial standard errors (PRP and PRR 2->1)."""
    y = make_toy("circles", 400, seed=0)
    sch, W = InflationSchedule.from_data(y, dims_to_keep=dims_to_keep, rho=rho)
    rng = np.random.default_rng(1)
    n = 1200
    held_es = (y @ W)[rng.integers(0, 400, n)] + rng.normal(size=(n, 2)) * np.sqrt(sch.gamma(0.0)[0])
    times = ifs_times(351, 0.02)  # T = 7.02: gamma*(T) ~ 600 >> xi*
    res = latent_coverage(DiscreteFlow(y @ W, backend="cpu"), sch, W, held_es @ W.T, times)
    assert np.all(np.abs(res["observed"] - res["nominal"]) < 4 * res["stderr"] + 1e-3), res
