"""The C++ core's two row-selection paths against the numpy reference.

`cpu` rows go through AVX-512 passes when the CPU has them (csrc/cpu/select_avx512.cpp) and
through the portable histogram selection otherwise (selection.h). Both paths run here on
every machine: ``simd=False`` forces the portable one. Inputs cover each branch of the SIMD
path: counting sort (<= 32), the portable fallback (33..63, > 32 interior ranks, degenerate
ranges), and histogram selection (>= 64) with ties, heavy tails, infinities, sorted rows,
constant rows and clamped end buckets.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthperf import _native


def _select(x, ranks, lengths, simd):
    x = np.ascontiguousarray(x)
    ranks = np.ascontiguousarray(np.atleast_2d(ranks).astype(np.int64))
    out = np.empty((x.shape[0], ranks.shape[1]), dtype=x.dtype)
    fn = _native.order_statistics_f32 if x.dtype == np.float32 else _native.order_statistics_f64
    status = fn(x, np.ascontiguousarray(lengths, dtype=np.int64), ranks, out, simd)
    return out, tuple(int(v) for v in status)


def _expected(x, ranks, lengths):
    r = np.broadcast_to(np.atleast_2d(ranks), (x.shape[0], np.atleast_2d(ranks).shape[1]))
    return np.stack([np.sort(x[b, : lengths[b]])[r[b] - 1] for b in range(x.shape[0])])


def _rows(kind, rng, B, n, dtype):
    if kind == "uniform":
        x = rng.random((B, n))
    elif kind == "ties":
        x = np.round(rng.standard_normal((B, n)) * 2)
    elif kind == "signed_zeros":
        x = np.where(rng.random((B, n)) < 0.5, -0.0, 0.0)
        x[:, ::7] = 1.0
    elif kind == "cauchy":  # heavy tails: outliers far outside the sample range
        x = rng.standard_cauchy((B, n))
    elif kind == "infinities":
        x = rng.standard_normal((B, n))
        x[:, 1::9] = np.inf
        x[:, 4::11] = -np.inf
    elif kind == "sorted":
        x = np.sort(rng.standard_normal((B, n)), axis=1)
        x[1::2] = x[1::2, ::-1]
    elif kind == "constant":
        x = np.full((B, n), 2.5)
    elif kind == "clustered":  # one tight cluster plus a few far points: one huge bucket
        x = rng.random((B, n)) * 1e-9
        far = [-1e6, 1e6, 3e5][:n]
        x[:, : len(far)] = far
    else:
        raise AssertionError(kind)
    return x.astype(dtype)


KINDS = ["uniform", "ties", "signed_zeros", "cauchy", "infinities", "sorted", "constant", "clustered"]


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 15, 32, 33, 63, 64, 65, 100, 1000, 4099])
@pytest.mark.parametrize("kind", KINDS)
def test_paths_match_reference(kind, n, dtype, simd):
    rng = np.random.default_rng([n, KINDS.index(kind), dtype == np.float32])
    x = _rows(kind, rng, 6, n, dtype)
    ranks = np.unique(np.r_[1, n, rng.integers(1, n + 1, 6), (n + 1) // 2])
    lengths = np.full(6, n)
    got, status = _select(x, ranks, lengths, simd)
    assert status[0] == 0
    np.testing.assert_array_equal(got, _expected(x, ranks, lengths))


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ragged_rows_per_row_ranks_and_many_ranks(dtype, simd):
    rng = np.random.default_rng(11)
    B, n = 40, 700
    x = rng.standard_normal((B, n)).astype(dtype)
    lengths = rng.integers(1, n + 1, B)
    for b in range(B):
        x[b, lengths[b]:] = np.nan  # padding is never read
    per_row = np.stack([rng.integers(1, lengths[b] + 1, 5) for b in range(B)])
    got, status = _select(x, per_row, lengths, simd)
    assert status[0] == 0
    np.testing.assert_array_equal(got, _expected(x, per_row, lengths))
    many = np.arange(1, 701, 7)  # 100 ranks: past the SIMD path's 32 interior ranks
    full = np.full(B, n)
    x_full = rng.random((B, n)).astype(dtype)
    got, status = _select(x_full, many, full, simd)
    assert status[0] == 0
    np.testing.assert_array_equal(got, _expected(x_full, many, full))


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 5, 15, 16, 17, 32])
def test_short_row_blocks(width, dtype, simd):
    """Batches of rows no wider than 32 are sorted a block of rows at a time (one row per
    vector lane): ragged lengths, partial last block, shared and per-row ranks, NaN rows."""
    rng = np.random.default_rng([width, dtype == np.float32])
    B = 37  # several blocks of 8 (float64) or 16 (float32) rows and a partial one
    x = np.round(rng.standard_normal((B, width)) * 3).astype(dtype)  # ties
    x[::5, 0] = -0.0
    x[1::5, -1] = np.inf
    lengths = rng.integers(1, width + 1, B)
    for b in range(B):
        x[b, lengths[b]:] = np.nan  # padding is never read
    per_row = np.stack([rng.integers(1, lengths[b] + 1, 4) for b in range(B)])
    got, status = _select(x, per_row, lengths, simd)
    assert status[0] == 0
    np.testing.assert_array_equal(got, _expected(x, per_row, lengths))
    shared = np.array([1, lengths.min()])
    got, status = _select(x, shared, lengths, simd)
    assert status[0] == 0
    np.testing.assert_array_equal(got, _expected(x, shared, lengths))
    x[21, lengths[21] - 1] = np.nan
    x[30, lengths[30] - 1] = np.nan
    _, status = _select(x, shared, lengths, simd)
    assert status[:2] == (1, 21)


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("n", [10, 40, 500])
def test_nan_reported_with_its_row(n, simd):
    x = np.random.default_rng(0).random((5, n))
    x[3, n // 2] = np.nan
    _, status = _select(x, [1, n], np.full(5, n), simd)
    assert status[:2] == (1, 3)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), A=st.integers(1, 8), levels=st.integers(2, 50), seed=st.integers(0, 2**31 - 1),
       f32=st.booleans())
def test_hypothesis_paths_agree(n, A, levels, seed, f32):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    x = rng.integers(0, levels, (3, n)).astype(dtype) / levels  # ties at every density
    ranks = rng.integers(1, n + 1, (3, A))
    lengths = np.full(3, n)
    want = _expected(x, ranks, lengths)
    for simd in (True, False):
        got, status = _select(x, ranks, lengths, simd)
        assert status[0] == 0
        np.testing.assert_array_equal(got, want)


def test_simd_support_is_reported():
    """The AVX-512 probe agrees with the CPU flags the kernel reports (Linux): True exactly
    when avx512f, avx512dq, avx512bw and avx512vl are all present on an x86-64 build."""
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("CPU flags are read from /proc/cpuinfo (Linux)")
    flags: set[str] = set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    x86 = platform.machine() in ("x86_64", "AMD64")
    expected = x86 and {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags
    assert _native.simd_select_supported() is expected


@pytest.mark.parametrize("simd", [True, False])
@pytest.mark.parametrize("width", [15, 200])
def test_zero_rank_yields_fill_value(width, simd):
    """Rank 0 (split conformal's alpha < 1/(n+1)) is allowed only with zero_rank_value, and
    yields it; the other ranks are unaffected. Rank 0 without it is out of range."""
    rng = np.random.default_rng(width)
    B = 21
    x = rng.random((B, width))
    lengths = rng.integers(1, width + 1, B)
    ranks = np.stack([np.r_[0, rng.integers(1, lengths[b] + 1, 3), 0] for b in range(B)]).astype(np.int64)
    out = np.empty((B, 5))
    status = _native.order_statistics_f64(x, lengths.astype(np.int64), ranks, out, simd, 7.5)
    assert status[0] == 0
    want = _expected(x, np.maximum(ranks, 1), lengths)
    want[ranks == 0] = 7.5
    np.testing.assert_array_equal(out, want)
    shared = np.array([[0, 1, 0]], dtype=np.int64)
    status = _native.order_statistics_f64(x, lengths.astype(np.int64), shared, np.empty((B, 3)), simd, np.inf)
    assert status[0] == 0
    status = _native.order_statistics_f64(x, lengths.astype(np.int64), shared, np.empty((B, 3)), simd)
    assert status[0] == 2 and status[2] == 0  # kSelectRankOutOfRange, rank 0
