"""discrete_score / integrate_discrete: every backend vs a float64 torch reference (spec §3)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthperf.flows.solvers import pfode_discrete_step, save_steps
from synthperf.ops.discrete_score import discrete_score, discrete_score_reference, integrate_discrete

BACKENDS = ["cpu", "triton"]


def _ref(x, y, g, mode):
    d, s = discrete_score_reference(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64)),
                                    torch.as_tensor(np.asarray(g, dtype=np.float64)), mode=mode)
    return s.numpy(), d.numpy()


def _rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(np.abs(b).max(), 1e-300))


def _brute_force(x, y, g, mode):
    """Independent numpy float64 formula (no chunking, no torch)."""
    logit = -0.5 * (((x[:, None, :] - y[None, :, :]) ** 2) / g).sum(-1)
    if mode == "clamp":
        w = np.maximum(np.exp(logit), 1e-30)
    else:
        w = np.exp(logit - logit.max(1, keepdims=True))
    pi = w / w.sum(1, keepdims=True)
    D = pi @ y
    return (D - x) / g, D


@pytest.mark.parametrize("d", [2, 3, 16, 64])
@pytest.mark.parametrize("mode", ["stable", "clamp"])
def test_reference_matches_brute_force(d, mode):
    rng = np.random.default_rng(d)
    x, y, g = rng.normal(size=(13, d)), rng.normal(size=(29, d)), rng.uniform(0.2, 2.0, d)
    s_ref, d_ref = _ref(x, y, g, mode)
    s_bf, d_bf = _brute_force(x, y, g, mode)
    assert _rel(s_ref, s_bf) < 1e-12 and _rel(d_ref, d_bf) < 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("d", [2, 3, 16, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["stable", "clamp"])
def test_backend_matches_reference(backend, d, dtype, mode):
    rng = np.random.default_rng(1000 + d)
    M, N = (37, 533) if d <= 3 else (19, 77)  # odd sizes: tail tiles in M and N
    x = rng.normal(size=(M, d)).astype(dtype)
    y = rng.normal(size=(N, d)).astype(dtype)
    g = rng.uniform(0.05, 0.6, d) * d  # logits of order 1-10
    s_ref, d_ref = _ref(x, y, g, mode)
    score, den = discrete_score(x, y, g, mode=mode, backend=backend, return_denoiser=True)
    assert score.dtype == dtype and score.shape == (M, d)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert _rel(score, s_ref) < tol, (backend, d, dtype, mode, _rel(score, s_ref))
    assert _rel(den, d_ref) < tol


# Known defect (README "Known issues", issue 14 item 8): the *compiled* Triton kernel is wrong
# for far-away queries on an H100 (float32 denoiser off by up to ~12 %, float64 by 2e-10);
# the interpreter twin used on CPU machines is exact, so only the compiled case is xfail.
_FAR_AWAY_BACKENDS = [
    "cpu",
    pytest.param("triton", marks=pytest.mark.xfail(
        torch.cuda.is_available(), strict=False,
        reason="issue 14 item 8: compiled Triton discrete score is wrong for far-away queries "
               "(logits ~ -1e6) on the H100; the interpreter is exact")),
]


@pytest.mark.parametrize("backend", _FAR_AWAY_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_away_queries_underflow(backend, dtype):
    """Every weight underflows: stable stays exact (nearest point), clamp gives mean(Y)."""
    rng = np.random.default_rng(7)
    y = rng.normal(size=(101, 3)).astype(dtype)
    x = (rng.normal(size=(9, 3)) * 0.1 + 30.0).astype(dtype)
    g = np.full(3, 1e-3)
    s_ref, d_ref = _ref(x, y, g, "stable")
    s, D = discrete_score(x, y, g, mode="stable", backend=backend, return_denoiser=True)
    assert _rel(s, s_ref) < (1e-4 if dtype == np.float32 else 1e-10)
    nearest = y[np.argmin(((x[:, None] - y[None]) ** 2).sum(-1), axis=1)]
    np.testing.assert_allclose(D, nearest, rtol=1e-4, atol=1e-4)
    _, Dc = discrete_score(x, y, g, mode="clamp", backend=backend, return_denoiser=True)
    # D = u + acc cancels (|u| ~ 30, |D| ~ 0.2): the float32 floor scales with |u|
    np.testing.assert_allclose(Dc, np.broadcast_to(y.astype(np.float64).mean(0), Dc.shape), rtol=1e-4,
                               atol=1e-5 * np.abs(x).max())


def test_scalar_gamma_and_torch_roundtrip():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(8, 2))
    a = discrete_score(x, y, 0.5, backend="cpu")
    b = discrete_score(torch.from_numpy(x), torch.from_numpy(y), np.array([0.5, 0.5]), backend="cpu")
    assert isinstance(b, torch.Tensor)
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-12)


def test_melt_start_self_term_dominates():
    """At t ~ 0 during melt the queries equal the references: D ~ u."""
    y = np.random.default_rng(0).normal(size=(50, 2)) * 10.0  # nearest neighbours >> sqrt(5e-4) apart
    _, D = discrete_score(y, y, 5e-4, backend="cpu", return_denoiser=True)
    np.testing.assert_allclose(D, y, atol=1e-6)


@pytest.mark.parametrize("bad, match", [
    (dict(gamma=-1.0), "gamma"), (dict(gamma=[1.0, 0.0]), "gamma"), (dict(gamma=[1.0, 1.0, 1.0]), "gamma"),
    (dict(data=np.zeros((4, 3))), "dimension mismatch"), (dict(mode="fast"), "mode"),
    (dict(x=np.full((2, 2), np.nan)), "NaN"), (dict(data=np.zeros((0, 2))), "empty"),
])
def test_bad_input(bad, match):
    args = dict(x=np.zeros((3, 2)), data=np.ones((4, 2)), gamma=1.0, mode="stable")
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        discrete_score(args["x"], args["data"], args["gamma"], mode=args["mode"], backend="cpu")


def _tables(n, d, rng):
    return {"s": rng.uniform(0.5, 1.0, (n, d)), "r": rng.uniform(-0.3, 0.0, (n, d)),
            "a": rng.uniform(0.2, 0.8, (n, d)), "gamma": rng.uniform(0.05, 0.5, (n, d))}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integrate_matches_reference(backend, solver, dtype):
    rng = np.random.default_rng(11)
    d, n = 3, 7
    z0 = rng.normal(size=(21, d)).astype(dtype)
    y = rng.normal(size=(45, d)).astype(dtype)
    tabs = _tables(n, d, rng)
    times = np.linspace(0.0, 0.6, n)
    ref = integrate_discrete(z0.astype(np.float64), y.astype(np.float64), tabs, times, solver=solver,
                             backend="reference", save_every=2)
    out = integrate_discrete(z0, y, tabs, times, solver=solver, backend=backend, save_every=2)
    assert out["z"].shape == (1 + 4, 21, d) and out["dz"].shape == (4, 21, d)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for key in ("z", "denoiser", "score", "dz"):
        assert _rel(out[key], ref[key]) < tol, (key, _rel(out[key], ref[key]))


def test_step_equals_one_step_integration():
    rng = np.random.default_rng(2)
    z, y = rng.normal(size=(6, 2)), rng.normal(size=(9, 2))
    tabs = _tables(2, 2, rng)
    coef = {k: v[0] for k, v in tabs.items()}
    coef_next = {k: v[1] for k, v in tabs.items()}
    a = pfode_discrete_step(z, y, coef, coef_next, 0.1, solver="heun", backend="cpu")
    b = integrate_discrete(z, y, tabs, np.array([0.0, 0.1]), solver="heun", backend="reference")["z"][-1]
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_save_steps_matches_upstream_count():
    slots = save_steps(700, 10)  # 701 time points -> 71 saved steps, 72 states (spec §5.1)
    assert (slots >= 0).sum() == 71 and slots[0] == 0 and slots[-1] == 70


def test_integrate_bad_tables():
    z, y = np.zeros((2, 2)), np.ones((3, 2))
    tabs = _tables(3, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="keys"):
        integrate_discrete(z, y, {**tabs, "bogus": tabs["s"]}, np.arange(3.0))
    with pytest.raises(ValueError, match="shape"):
        integrate_discrete(z, y, tabs, np.arange(4.0))
    with pytest.raises(ValueError, match="solver"):
        integrate_discrete(z, y, tabs, np.arange(3.0), solver="rk4")


@pytest.mark.parametrize("isa", ["base", "avx2"])
def test_cpu_isa_variants_match_reference(isa):
    """The C++ hot loop is compiled per ISA and picked at load; force each variant in a subprocess."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, torch\n"
        "from synthperf.ops.discrete_score import discrete_score, discrete_score_reference\n"
        "rng = np.random.default_rng(5)\n"
        "worst = 0.0\n"
        "for d in (2, 3, 16):\n"
        "    for dt in (np.float32, np.float64):\n"
        "        for mode in ('stable', 'clamp'):\n"
        "            x = rng.normal(size=(23, d)).astype(dt); y = rng.normal(size=(601, d)).astype(dt)\n"
        "            g = rng.uniform(0.05, 0.5, d) * d\n"
        "            _, s = discrete_score_reference(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y.astype(np.float64)), torch.from_numpy(g), mode=mode)\n"
        "            out = discrete_score(x, y, g, mode=mode, backend='cpu')\n"
        "            worst = max(worst, float(np.abs(out - s.numpy()).max() / np.abs(s.numpy()).max()))\n"
        "print(worst)\n")
    env = {**os.environ, "SYNTHPERF_FLOWS_ISA": isa}
    worst = float(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                 text=True).stdout)
    assert worst < 1e-4


def test_float32_gamma_that_underflows_is_rejected():
    """Issue 17: gamma = 1e-50 passes a float64 check but is 0 in float32 (NaN scores)."""
    import numpy as np
    import pytest

    from synthperf.ops import discrete_score, integrate_discrete

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2)).astype(np.float32)
    data = rng.standard_normal((6, 2)).astype(np.float32)
    for backend in ("reference", "cpu"):
        with pytest.raises(ValueError, match="gamma.*float32"):
            discrete_score(x, data, 1e-50, backend=backend)
        with pytest.raises(ValueError, match="gamma.*float32"):
            discrete_score(x, data, [1.0, 1e300], backend=backend)
        assert np.isfinite(discrete_score(x.astype(np.float64), data, 1e-50, backend=backend)).all()
        tabs = {"s": np.ones((2, 2)), "r": np.zeros((2, 2)), "a": np.ones((2, 2)), "gamma": np.full((2, 2), 1e-50)}
        with pytest.raises(ValueError, match=r"tables\['gamma'\]"):
            integrate_discrete(x, data, tabs, [0.0, 0.1], backend=backend)


@pytest.mark.parametrize("backend", ["reference", "cpu", "triton"])
@pytest.mark.parametrize("solver", ["euler", "heun"])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_integrate_does_not_write_into_callers_z0(backend, solver, as_tensor):
    """The triton integrator ping-pongs two state buffers; it used to take the caller's z0 as
    one of them (to_torch returns the same memory for a CPU tensor under the interpreter, a
    CUDA tensor, or a numpy array via from_numpy) and overwrite it. 4 steps: both parities."""
    rng = np.random.default_rng(5)
    d, n = 3, 5
    z0_np = rng.normal(size=(17, d))
    y = rng.normal(size=(30, d))
    tabs = _tables(n, d, rng)
    times = np.linspace(0.0, 0.5, n)
    z0 = torch.from_numpy(z0_np.copy()) if as_tensor else z0_np.copy()
    out = integrate_discrete(z0, y, tabs, times, solver=solver, backend=backend)
    after = z0.numpy() if as_tensor else z0
    np.testing.assert_array_equal(after, z0_np)  # bit for bit: never written
    assert not np.array_equal(np.asarray(out["z"][-1]), z0_np)  # the state did move
    np.testing.assert_array_equal(np.asarray(out["z"][0]), z0_np)
