"""Issue 17: every kernel entry point gives the contiguous answer for Fortran-order,
transposed and strided (non-contiguous) inputs, on every CPU-side backend (output arrays of
the C++ bindings are ``noconvert``: a converted temporary would be filled and dropped)."""
from __future__ import annotations

import numpy as np
import pytest

from synthperf import _native
from synthperf.conformal import split_conformal_thresholds, sppi_thresholds
from synthperf.ops import discrete_score, integrate_discrete, order_statistics

BACKENDS = ["auto", "reference", "cpu"]


def _layouts(x: np.ndarray):
    """(name, array equal to x) in Fortran order, as a transpose view, and strided."""
    yield "fortran", np.asfortranarray(x)
    yield "transposed", np.ascontiguousarray(x.T).T
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), dtype=x.dtype)
    wide[:, ::2] = x
    yield "strided", wide[:, ::2]
    rev = np.ascontiguousarray(x[::-1])
    yield "reversed", rev[::-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_discrete_score_layouts(backend, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype(dtype)
    data = rng.standard_normal((30, 3)).astype(dtype)
    gamma = np.array([0.5, 1.0, 2.0])
    want = discrete_score(x, data, gamma, backend=backend)
    x_issue = rng.standard_normal((3, 20)).T.astype(dtype)  # the issue's repro
    np.testing.assert_array_equal(discrete_score(x_issue, data, gamma, backend=backend),
                                  discrete_score(x_issue.copy(), data, gamma, backend=backend))
    for name, xl in _layouts(x):
        for dname, dl in [("c", data)] + list(_layouts(data)):
            got = discrete_score(xl, dl, gamma, backend=backend)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} x, {dname} data")
            assert got.flags.c_contiguous


@pytest.mark.parametrize("backend", BACKENDS)
def test_integrate_discrete_layouts(backend):
    rng = np.random.default_rng(1)
    z0 = rng.standard_normal((12, 2))
    data = rng.standard_normal((25, 2))
    t = np.linspace(0.0, 1.0, 4)
    tabs = {"s": np.ones((4, 2)), "r": np.zeros((4, 2)), "a": np.full((4, 2), 0.5), "gamma": np.full((4, 2), 0.3)}
    want = integrate_discrete(z0, data, tabs, t, backend=backend)
    for name, zl in _layouts(z0):
        ftabs = {k: np.asfortranarray(v) for k, v in tabs.items()}
        got = integrate_discrete(zl, np.asfortranarray(data), ftabs, t[::-1][::-1], backend=backend)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{name} {key}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_order_statistics_layouts(backend, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((9, 40)).astype(dtype)
    ranks = np.tile(np.array([1, 7, 40]), (9, 1))
    want = order_statistics(x, ranks, backend=backend)
    for name, xl in _layouts(x):
        np.testing.assert_array_equal(order_statistics(xl, np.asfortranarray(ranks), backend=backend), want,
                                      err_msg=name)
        np.testing.assert_array_equal(order_statistics(xl, ranks[0], np.full(9, 40)[::-1], backend=backend), want,
                                      err_msg=name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_conformal_thresholds_layouts(backend):
    rng = np.random.default_rng(3)
    R = rng.random((6, 15))
    S = rng.random((6, 300))
    alphas = np.array([0.05, 0.1, 0.2])
    want_sc = split_conformal_thresholds(R, alphas, backend=backend)
    want_sppi = sppi_thresholds(R, S, alphas, 0.4, backend=backend)
    for (name, Rl), (_, Sl) in zip(_layouts(R), _layouts(S)):
        np.testing.assert_array_equal(split_conformal_thresholds(Rl, alphas[::-1][::-1], backend=backend), want_sc,
                                      err_msg=name)
        np.testing.assert_array_equal(sppi_thresholds(Rl, Sl, alphas, 0.4, backend=backend), want_sppi, err_msg=name)


def test_native_outputs_refuse_conversion():
    """A Fortran-order or wrongly typed ``out`` raises instead of being filled as a temporary."""
    x = np.random.default_rng(4).standard_normal((5, 3))
    yT = np.ascontiguousarray(x.T)
    g = np.ones(3)
    for bad in (np.empty((5, 3), order="F"), np.empty((5, 3), np.float32)):
        with pytest.raises(TypeError):
            _native.discrete_score_f64(x, yT, g, False, bad, np.empty((5, 3)))
        with pytest.raises(TypeError):
            _native.discrete_score_f64(x, yT, g, False, np.empty((5, 3)), bad)
    with pytest.raises(TypeError):
        _native.order_statistics_f64(x, np.full(5, 3), np.array([[1]]), np.empty((5, 1), np.float32))
    with pytest.raises(TypeError):
        _native.order_statistics_f64(x, np.full(5, 3), np.array([[1, 2]]), np.empty((2, 5)).T)
