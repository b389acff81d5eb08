"""Flows solver policy vs ops kernels (issue 14 item 2), device preservation of the discrete
score (item 6: CUDA tensors stay on the device) and its torch.library custom ops (item 6:
torch.compile can trace them). Spec specs/inflationary_flows.md §1.4, §3, §5.1."""
from __future__ import annotations

from importlib import import_module

import numpy as np
import pytest
import torch

from synthperf.flows import pfode, solvers
from synthperf.ops import discrete_score, integrate_discrete, pfode_step

ds = import_module("synthperf.ops.discrete_score")  # the module (the package attribute is the function)


def _case(rng, M=11, N=23, d=3, dtype=np.float64):
    return rng.normal(size=(M, d)).astype(dtype), rng.normal(size=(N, d)).astype(dtype), rng.uniform(0.2, 1.0, d)


def _tables(n, d, rng):
    return {"s": rng.uniform(0.8, 1.2, (n, d)), "r": rng.normal(0, 0.1, (n, d)), "a": rng.uniform(0.1, 0.5, (n, d)),
            "gamma": rng.uniform(0.3, 1.0, (n, d))}


# ----------------------------------------------------------------------------- policy in flows
def test_solver_policy_lives_in_flows_not_ops():
    for name in ("SOLVERS", "save_steps", "pfode_discrete_step"):
        assert not hasattr(ds, name), f"ops.discrete_score still defines the flows policy name {name}"
    assert solvers.SOLVERS == ("euler", "heun") and set(solvers.SOLVERS) <= set(ds.UPDATE_RULES)
    assert pfode.SOLVERS is solvers.SOLVERS and pfode.time_grid is solvers.time_grid  # re-exported
    with pytest.raises(ValueError, match="unknown solver 'rk4'"):
        solvers.check_solver("rk4")
    with pytest.raises(ValueError, match="unknown solver"):
        solvers.pfode_discrete_step(np.zeros((2, 2)), np.ones((3, 2)), {}, {}, 0.1, solver="rk4")
    np.testing.assert_array_equal(solvers.save_steps(700, 10), ds.snapshot_slots(700, 10))
    with pytest.raises(ValueError, match="save_every must be >= 1"):
        solvers.save_steps(5, 0)


@pytest.mark.parametrize("solver", solvers.SOLVERS)
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_one_step_equals_the_integrator(solver, backend, as_tensor):
    rng = np.random.default_rng(1)
    z, y, _ = _case(rng)
    tabs = _tables(2, 3, rng)
    coef, coef_next = ({k: v[i] for k, v in tabs.items()} for i in (0, 1))
    want = integrate_discrete(z, y, tabs, np.array([0.0, 0.1]), solver=solver, backend="reference")["z"][-1]
    zin = torch.from_numpy(z) if as_tensor else z
    got = solvers.pfode_discrete_step(zin, y, coef, coef_next, 0.1, solver=solver, backend=backend)
    assert isinstance(got, torch.Tensor) == as_tensor
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="dt"):
        pfode_step(zin, y, coef, coef_next, float("nan"), backend=backend)
    with pytest.raises(ValueError, match=r"coef\['s'\] has 2 entries"):
        pfode_step(zin, y, {**coef, "s": np.ones(2)}, coef_next, 0.1, backend=backend)


# ----------------------------------------------------------------------------- device preservation
def _check_device_roundtrip(device: str, backends):
    """The body shared by the CPU test and its GPU twin: tensor in, tensor out on the same
    device, promoted dtype, the numpy answer; numpy in, numpy out."""
    rng = np.random.default_rng(2)
    x, y, g = _case(rng, dtype=np.float32)
    want = discrete_score(x.astype(np.float64), y.astype(np.float64), g, backend="reference")
    tabs = _tables(4, 3, rng)
    times = np.linspace(0.0, 0.3, 4)
    want_z = integrate_discrete(x.astype(np.float64), y.astype(np.float64), tabs, times, backend="reference",
                                save_every=2)
    for backend in backends:
        for x_dtype, y_dtype, out_dtype in ((torch.float32, torch.float32, torch.float32),
                                            (torch.float64, torch.float32, torch.float64)):
            xt = torch.from_numpy(x).to(device=device, dtype=x_dtype)
            yt = torch.from_numpy(y).to(device=device, dtype=y_dtype)
            gt = torch.from_numpy(g).to(device)
            score, den = discrete_score(xt, yt, gt, backend=backend, return_denoiser=True)
            for out in (score, den):
                assert isinstance(out, torch.Tensor) and out.device == xt.device and out.dtype == out_dtype, backend
            tol = 2e-4 if out_dtype == torch.float32 else 1e-10
            np.testing.assert_allclose(score.cpu().numpy(), want, rtol=tol, atol=tol)
            res = integrate_discrete(xt, yt, tabs, times, backend=backend, save_every=2)
            for key, val in res.items():
                assert val.device == xt.device and val.dtype == out_dtype, (backend, key)
                np.testing.assert_allclose(val.cpu().numpy(), want_z[key], rtol=10 * tol, atol=10 * tol)
            step = pfode_step(xt, yt, {k: v[0] for k, v in tabs.items()}, {k: v[1] for k, v in tabs.items()},
                              float(times[1]), backend=backend)
            assert step.device == xt.device and step.dtype == out_dtype
            np.testing.assert_allclose(step.cpu().numpy(), want_z["z"][1], rtol=10 * tol, atol=10 * tol)
    out_np = discrete_score(x, y, g, backend=backends[0])
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32


def test_tensors_keep_device_and_dtype_on_cpu():
    _check_device_roundtrip("cpu", ["reference", "cpu", "triton"])


@pytest.mark.gpu
def test_cuda_tensors_stay_on_the_device():
    """GPU twin of test_tensors_keep_device_and_dtype_on_cpu; on the last CUDA device so the
    device guard (the tensor's device, not the current one) is exercised on multi-GPU hosts."""
    dev = f"cuda:{torch.cuda.device_count() - 1}"
    _check_device_roundtrip(dev, ["triton", "reference", "auto"])


def test_the_device_path_never_converts_tensor_inputs_on_the_host(monkeypatch):
    """The reference backend on a tensor (and triton on CUDA) validates from metadata and on the
    device: float_array / to_numpy (the host converters) never see the big tensor inputs."""
    real = ds.float_array

    def host_only(v, name, **kw):
        if isinstance(v, torch.Tensor) and name in ("x", "z0", "z", "data", "gamma"):
            raise AssertionError(f"{name} was converted on the host")
        return real(v, name, **kw)

    monkeypatch.setattr(ds, "float_array", host_only)
    rng = np.random.default_rng(3)
    x, y, g = (torch.from_numpy(a) for a in _case(rng))
    out = discrete_score(x, y, g, backend="reference")
    assert isinstance(out, torch.Tensor)
    tabs = _tables(3, 3, rng)
    assert isinstance(integrate_discrete(x, y, tabs, [0.0, 0.1, 0.2], backend="reference")["z"], torch.Tensor)
    with pytest.raises(AssertionError, match="converted on the host"):  # the probe fires on the host path
        integrate_discrete(x, y, tabs, [0.0, 0.1, 0.2], backend="cpu")


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_device_path_errors_match_the_host_path(backend):
    rng = np.random.default_rng(4)
    x, y, g = _case(rng)
    bad_nan = x.copy()
    bad_nan[0, 0] = np.nan
    bad_inf = y.copy()
    bad_inf[1, 1] = np.inf
    for xs, ys, gs, msg in ((bad_nan, y, g, "x contains NaN"), (x, bad_inf, g, "data must be finite"),
                            (x, y[:, :2], g, "dimension mismatch"), (x, y, -g, "gamma must be finite and > 0"),
                            (x, y, g[:2], "gamma has 2 entries")):
        for conv in (lambda a: a, torch.from_numpy):
            with pytest.raises(ValueError, match=msg):
                discrete_score(conv(xs), conv(ys), conv(np.asarray(gs)), backend=backend)
    with pytest.raises(ValueError, match="gamma.*float32"):
        discrete_score(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32)),
                       torch.tensor(1e-50, dtype=torch.float64), backend=backend)


# ----------------------------------------------------------------------------- torch.library custom ops
def _op_inputs(dtype, M=7):
    rng = np.random.default_rng(5)
    x, y, g = _case(rng, M=M)
    tabs = _tables(2, 3, rng)
    c0, c1 = (torch.tensor(np.stack([tabs[k][i] for k in ds.TABLE_KEYS]), dtype=dtype) for i in (0, 1))
    as_t = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    return as_t(x), as_t(y), as_t(g), c0, c1, tabs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_custom_ops_pass_opcheck(dtype):
    ds._torch_ops()
    x, y, g, c0, c1, _ = _op_inputs(dtype)
    for clamp in (False, True):
        torch.library.opcheck(torch.ops.synthperf.discrete_score.default, (x, y, g, clamp))
        for heun in (False, True):
            torch.library.opcheck(torch.ops.synthperf.pfode_step.default, (x, y, c0, c1, 0.05, heun, clamp))
    xe = x[:0]
    torch.library.opcheck(torch.ops.synthperf.discrete_score.default, (xe, y, g, False))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_custom_ops_equal_the_entry_points_and_compile_without_graph_breaks(dtype):
    ds._torch_ops()
    x, y, g, c0, c1, tabs = _op_inputs(dtype)
    dbar, score = torch.ops.synthperf.discrete_score(x, y, g, False)
    want_s, want_d = discrete_score(x.numpy(), y.numpy(), g.numpy(), backend="reference", return_denoiser=True)
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(score.numpy(), want_s, rtol=tol, atol=tol)
    np.testing.assert_allclose(dbar.numpy(), want_d, rtol=tol, atol=tol)
    z1, d0, s0 = torch.ops.synthperf.pfode_step(x, y, c0, c1, 0.05, True, False)
    ref = integrate_discrete(x.numpy(), y.numpy(), tabs, np.array([0.0, 0.05]), solver="heun", backend="reference")
    np.testing.assert_allclose(z1.numpy(), ref["z"][-1], rtol=tol, atol=tol)
    np.testing.assert_allclose(s0.numpy(), ref["score"][0], rtol=tol, atol=tol)

    def two_euler_steps(z):
        z, _, _ = torch.ops.synthperf.pfode_step(z, y, c0, c1, 0.05, False, False)
        _, s = torch.ops.synthperf.discrete_score(z * 2.0, y, g, False)
        return s.sum()

    compiled = torch.compile(two_euler_steps, backend="aot_eager", fullgraph=True)  # traced through the fake impls
    assert torch.allclose(compiled(x), two_euler_steps(x), rtol=tol, atol=tol)


def test_custom_ops_check_metadata():
    ds._torch_ops()
    x, y, g, c0, c1, _ = _op_inputs(torch.float64)
    with pytest.raises(ValueError, match="same d"):
        torch.ops.synthperf.discrete_score(x, y[:, :2], g, False)
    with pytest.raises(TypeError, match="one float32/float64 dtype"):
        torch.ops.synthperf.discrete_score(x, y.float(), g, False)
    with pytest.raises(ValueError, match=r"coef must be \[4, d\]"):
        torch.ops.synthperf.pfode_step(x, y, c0[:3], c1, 0.1, False, False)
