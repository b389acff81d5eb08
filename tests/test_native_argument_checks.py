"""C++ cores re-check, cheaply and before indexing, what the Python layer validates first
(issue 14 item 6, issue 17: unchecked lengths and offsets in sppi.cpp), and no OpenMP region
calls a libm function with hidden global state (lgamma writes signgam)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from synthperf import _native
from synthperf.ops.sppi import check_group_sizes, check_window_tables, sppi_thresholds_cpu

ROOT = Path(__file__).resolve().parents[1]


def _case(B=3, n=5, N=9):
    rng = np.random.default_rng(0)
    real = rng.random((B, n))
    synth = rng.random((B, N))
    real_len = np.full(B, n, dtype=np.int64)
    synth_len = np.full(B, N, dtype=np.int64)
    L = np.arange(n + 1, dtype=np.int64)        # one window table of n + 1 entries, shared
    U = np.arange(n + 1, dtype=np.int64) + 2
    off = np.zeros(B, dtype=np.int64)
    alphas = np.array([0.1, 0.3])
    return dict(real=real, real_len=real_len, synth=synth, synth_len=synth_len, alphas=alphas,
                L_flat=L, U_flat=U, win_offset=off)


def _native_call(**kw):
    c = _case()
    c.update(kw)
    out = np.empty((c["real"].shape[0], c["alphas"].shape[0]))
    return _native.sppi_thresholds_f64(c["real"], c["real_len"], c["synth"], c["synth_len"], c["alphas"],
                                       c["L_flat"], c["U_flat"], c["win_offset"], np.inf, out)


def test_native_call_with_consistent_arguments_succeeds():
    status = _native_call()
    assert status[0] == 0


@pytest.mark.parametrize("change,match", [
    (dict(real_len=np.array([5, 6, 5])), r"real_len\[1\] = 6 must lie in \[1, 5\]"),
    (dict(real_len=np.array([5, 0, 5])), r"real_len\[1\] = 0"),
    (dict(synth_len=np.array([9, 9, 10])), r"synth_len\[2\] = 10"),
    (dict(synth_len=np.array([6, 9, 9])), r"synth_len\[0\] = 6"),
    (dict(win_offset=np.array([0, 1, 0])), r"win_offset\[1\] = 1"),
    (dict(win_offset=np.array([0, 0, -1])), r"win_offset\[2\] = -1"),
    (dict(U_flat=np.arange(5, dtype=np.int64)), "same length"),
    (dict(alphas=np.array([0.1, 1.0])), "alphas must lie in"),
    (dict(real_len=np.array([5, 5])), "inconsistent batch shapes"),
])
def test_sppi_native_rejects_out_of_range_indices(change, match):
    with pytest.raises(ValueError, match=match):
        _native_call(**change)


def test_sppi_native_rejects_wrong_ndim():
    c = _case()
    out = np.empty((3, 2))
    with pytest.raises(ValueError, match="must be 2-D"):
        _native.sppi_thresholds_f64(c["real"][0], c["real_len"], c["synth"], c["synth_len"], c["alphas"],
                                    c["L_flat"], c["U_flat"], c["win_offset"], np.inf, out)


def test_python_checks_come_first_and_name_the_argument():
    c = _case()
    args = (c["real"], c["real_len"], c["synth"], c["synth_len"], c["alphas"], c["L_flat"], c["U_flat"])
    with pytest.raises(ValueError, match=r"offsets\[1\] = 3: the window table of group 1"):
        sppi_thresholds_cpu(*args, np.array([0, 3, 0], dtype=np.int64), np.inf)
    with pytest.raises(ValueError, match=r"real_lengths\[0\] = 7 must lie in \[1, 5\]"):
        check_group_sizes(np.array([7, 5, 5]), c["synth_len"], 5, 9)
    with pytest.raises(ValueError, match=r"synth_lengths\[2\] = 6 must lie in"):
        check_group_sizes(c["real_len"], np.array([9, 9, 6]), 5, 9)
    with pytest.raises(TypeError, match="offsets must be a 1-D int64"):
        check_window_tables(c["real_len"], c["L_flat"], c["U_flat"], np.zeros(3))
    # consistent arguments give the reference thresholds
    from synthperf.conformal.thresholds import sppi_thresholds

    rng = np.random.default_rng(1)
    R, S = rng.random((4, 6)), rng.random((4, 20))
    np.testing.assert_array_equal(sppi_thresholds(R, S, [0.1, 0.25], backend="cpu"),
                                  sppi_thresholds(R, S, [0.1, 0.25], backend="reference"))


def test_no_lgamma_with_global_sign_in_native_code():
    """lgamma()/lgammaf() set the global signgam: a data race under OpenMP. The native code
    must use lgamma_r (or precomputed tables); today it needs neither."""
    pattern = re.compile(r"\blgamma[fl]?\s*\(")
    offenders = []
    for path in list((ROOT / "csrc").rglob("*.[ch]*")) + list((ROOT / "kernels" / "cuda").rglob("*.cu*")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("//")[0]):
                offenders.append(f"{path.relative_to(ROOT)}:{i}")
    assert offenders == []
    assert pattern.search("x = std::lgamma(a);") and not pattern.search("lgamma_r(a, &s)")  # the probe works
