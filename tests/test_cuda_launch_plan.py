"""GPU safety on a CPU machine (issue 14 item 6): the CUDA order-statistics launch plan
(csrc/include/synthperf/cuda_launch.h, the function the CUDA launcher calls, exposed as
_native.cuda_launch_plan) and the argument checks of the CUDA bindings.

The block kernel's static shared memory (a 256-bin histogram, the prefix and the rank) used
to be left out of the budget: rows of about 12.03k-12.29k float32 or 6.01k-6.14k float64
requested static + dynamic > 48 KiB and failed to launch. The GPU test at the end runs the
same widths on a device when one is present.
"""
from __future__ import annotations

import numpy as np
import pytest

from synthperf import _native
from synthperf.backend import native_cuda_built

BUDGET = 48 * 1024
HIST_BYTES = 256 * 4  # unsigned hist[kRadixBins]


def _block_static(key_bytes: int) -> int:
    """sizeof(BlockKernelShared<Key>): hist, Key prefix, long long k (C layout rules)."""
    off = HIST_BYTES + key_bytes          # prefix ends here (hist size is a multiple of 8)
    off = (off + 7) // 8 * 8 + 8          # long long k, 8-aligned
    return (off + 7) // 8 * 8             # struct size rounded to its 8-byte alignment


@pytest.mark.parametrize("key_bytes,widths", [
    (4, range(12000, 12301, 1)),   # float32: the band that used to fail
    (8, range(6000, 6151, 1)),     # float64
])
def test_block_kernel_budget_counts_static_shared_memory(key_bytes, widths):
    static = _block_static(key_bytes)
    cached = uncached = 0
    for ld in widths:
        plan = _native.cuda_launch_plan(7, ld, key_bytes)
        assert plan["kernel"] == "block" and plan["blocks"] == 7 and plan["threads"] == 256
        assert plan["static_smem"] == static
        assert plan["total_smem"] <= BUDGET, (ld, plan)
        base = (static + 15) // 16 * 16
        fits = base + ld * key_bytes <= BUDGET
        assert plan["cache_row"] == fits, (ld, plan)  # cache whenever it fits, never beyond
        assert plan["dynamic_smem"] == (ld * key_bytes if fits else 0)
        assert plan["total_smem"] == base + plan["dynamic_smem"]
        cached += fits
        uncached += not fits
    # the band straddles the threshold, and holds widths the old rule (row bytes alone
    # <= 48 KiB) would have cached: those are exactly the launches that failed
    assert cached > 0 and uncached > 0
    old_rule_cached = sum(ld * key_bytes <= BUDGET for ld in widths)
    assert old_rule_cached > cached


def test_threshold_widths_are_exact():
    # float32: 16-aligned static part 1040 bytes -> (49152 - 1040) / 4 = 12028 keys fit
    assert _native.cuda_launch_plan(1, 12028, 4)["cache_row"]
    assert not _native.cuda_launch_plan(1, 12029, 4)["cache_row"]
    assert _native.cuda_launch_plan(1, 6014, 8)["cache_row"]
    assert not _native.cuda_launch_plan(1, 6015, 8)["cache_row"]


@pytest.mark.parametrize("key_bytes", [4, 8])
def test_warp_kernel_budget(key_bytes):
    """Rows up to 4096 get one warp each, four per block: four cached rows + 4 histograms."""
    for ld in (1, 31, 32, 700, 1000, 2000, 2048, 2800, 3000, 4096):
        plan = _native.cuda_launch_plan(10, ld, key_bytes)
        assert plan["kernel"] == "warp" and plan["threads"] == 128 and plan["blocks"] == 3
        assert plan["static_smem"] == 4 * HIST_BYTES
        assert plan["total_smem"] <= BUDGET
        assert plan["cache_row"] == (4 * HIST_BYTES + 4 * ld * key_bytes <= BUDGET)
    assert _native.cuda_launch_plan(10, 4097, key_bytes)["kernel"] == "block"


def test_compiler_reported_static_size_is_respected():
    """The launcher passes the static size the compiler reports; a larger one shrinks the plan."""
    plain = _native.cuda_launch_plan(1, 12000, 4)
    assert plain["cache_row"]
    bigger = _native.cuda_launch_plan(1, 12000, 4, 2048)
    assert bigger["static_smem"] == 2048 and not bigger["cache_row"] and bigger["total_smem"] <= BUDGET
    assert _native.cuda_launch_plan(1, 12000, 4, 16)["static_smem"] == plain["static_smem"]  # never below the struct


@pytest.mark.parametrize("args,match", [
    ((-1, 10, 4), "B must be >= 0"),
    ((1, 0, 4), "ld must be >= 1"),
    ((1, 10, 2), "key_bytes must be 4"),
])
def test_launch_plan_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        _native.cuda_launch_plan(*args)


# ---- CUDA binding argument checks (these run before any CUDA call, so also without a GPU) ----
needs_cuda_module = pytest.mark.skipif(not native_cuda_built(), reason="built without the CUDA module")


@needs_cuda_module
@pytest.mark.parametrize("fn", ["order_statistics_f32", "order_statistics_f64"])
@pytest.mark.parametrize("args,match", [
    # x, B, ld, lengths, ranks, rank_rows, A, out, stream, device
    ((0, -1, 5, 0, 0, 1, 1, 0, 0, 0), "B and A must be >= 0"),
    ((0, 2, 5, 0, 0, 1, -3, 0, 0, 0), "B and A must be >= 0"),
    ((0, 2, 0, 0, 0, 1, 1, 0, 0, 0), r"ld \(the row stride\) must be >= 1"),
    ((0, 2, 5, 0, 0, 3, 1, 0, 0, 0), "rank_rows must be 1 or B"),
    ((0, 2, 5, 8, 8, 1, 1, 8, 0, 0), "x is a null pointer"),
    ((8, 2, 5, 0, 8, 1, 1, 8, 0, 0), "lengths is a null pointer"),
    ((8, 2, 5, 8, 0, 1, 1, 8, 0, 0), "ranks is a null pointer"),
    ((8, 2, 5, 8, 8, 1, 1, 0, 0, 0), "out is a null pointer"),
    ((2, 2, 5, 8, 8, 1, 1, 8, 0, 0), "x is not aligned"),
    ((8, 2, 5, 12, 8, 1, 1, 8, 0, 0), "lengths is not aligned"),
    ((8, 2, 1 << 61, 8, 8, 1, 1, 8, 0, 0), "overflows"),
])
def test_cuda_binding_checks_arguments(fn, args, match):
    import synthperf._native_cuda as cuda_mod

    with pytest.raises(ValueError, match=match):
        getattr(cuda_mod, fn)(*args)


@needs_cuda_module
def test_cuda_binding_checks_device_index():
    import synthperf._native_cuda as cuda_mod

    n = cuda_mod.device_count()
    with pytest.raises(ValueError, match="out of range"):
        cuda_mod.order_statistics_f32(256, 2, 5, 256, 256, 1, 1, 256, 0, n)  # one past the last device
    with pytest.raises(ValueError, match="out of range"):
        cuda_mod.order_statistics_f32(256, 2, 5, 256, 256, 1, 1, 256, 0, -1)


@needs_cuda_module
def test_cuda_binding_empty_launch_is_a_no_op():
    import synthperf._native_cuda as cuda_mod

    cuda_mod.order_statistics_f64(0, 0, 5, 0, 0, 1, 3, 0, 0, 0)  # B == 0: nothing to read or write
    cuda_mod.order_statistics_f64(0, 4, 5, 0, 0, 1, 0, 0, 0, 0)  # A == 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,widths", [
    (np.float32, [12000, 12028, 12029, 12100, 12288, 12300]),
    (np.float64, [6000, 6014, 6015, 6100, 6144, 6150]),
])
def test_cuda_widths_around_the_shared_memory_budget(dtype, widths):
    import torch

    from synthperf.ops import order_statistics

    rng = np.random.default_rng(0)
    for n in widths:
        x = rng.standard_normal((5, n)).astype(dtype)
        ranks = np.array([1, n // 3, n // 2, n])
        want = order_statistics(x, ranks, backend="cpu")
        got = order_statistics(torch.from_numpy(x).cuda(), ranks, backend="cuda").cpu().numpy()
        np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
def test_cuda_runs_on_the_tensors_device_not_the_current_one():
    import torch

    from synthperf.ops import order_statistics

    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    x = torch.randn(8, 300, device="cuda:1")
    with torch.cuda.device(0):
        got = order_statistics(x, [1, 150, 300], backend="cuda")
    assert got.device == x.device
    np.testing.assert_array_equal(got.cpu().numpy(), order_statistics(x.cpu().numpy(), [1, 150, 300], backend="cpu"))


def test_python_checks_gpu_arguments_before_the_binding():
    """ops.order_stats._check_gpu_arguments: what the binding relies on, raised with the
    argument named (runs on CPU tensors: the checks read metadata only)."""
    import torch

    from synthperf.ops.order_stats import _check_gpu_arguments

    x = torch.zeros(4, 6)
    lengths = torch.full((4,), 6, dtype=torch.int64)
    ranks = torch.ones(1, 2, dtype=torch.int64)
    out = torch.empty(4, 2)
    _check_gpu_arguments(x, lengths, ranks, out)  # consistent: no error
    cases = [
        ((x.to(torch.float16), lengths, ranks, out), TypeError, "x must be float32 or float64"),
        ((x, lengths.to(torch.int32), ranks, out), TypeError, "lengths must be int64"),
        ((x, lengths, ranks.to(torch.int32), out), TypeError, "ranks must be int64"),
        ((torch.zeros(6, 4).T, lengths, ranks, out), ValueError, "x must be contiguous"),
        ((x, lengths[:3], ranks, out), ValueError, r"lengths has shape \(3,\)"),
        ((x, lengths, torch.ones(3, 2, dtype=torch.int64), out), ValueError, "ranks has shape"),
        ((x, lengths, ranks, torch.empty(4, 3)), ValueError, "out has shape"),
        ((x, lengths, ranks, torch.empty(4, 4)[:, :2]), ValueError, "out must be contiguous"),
    ]
    for args, err, match in cases:
        with pytest.raises(err, match=match):
            _check_gpu_arguments(*args)
