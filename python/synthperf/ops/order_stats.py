"""Batched order statistics: ``out[b, a]`` = the ``ranks[a]``-th smallest value of row ``b``.

This is the primitive under every conformal quantile in synthperf (split conformal picks
rank ceil((1-alpha)(n+1)); SPPI needs synthetic rank K+1 and two real ranks).

Conventions
-----------
x : float32 or float64, shape [B, n]. Row ``b`` has ``lengths[b]`` valid entries
    ``x[b, :lengths[b]]``; anything after them is padding and is never read (NaN padding
    is fine). Other real dtypes are converted to float64.
ranks : integer, shape [A] (shared by all rows) or [B, A]. **1-based**: rank 1 is the
    minimum, rank ``lengths[b]`` the maximum.
lengths : integer, shape [B], optional (default: every row has all ``n`` entries).
Returns the selected values, shape [B, A], in ``x``'s dtype and array type (numpy in,
numpy out; torch in, torch out on the same device).

Backends: ``reference`` (numpy, a sort per row), ``cpu`` (C++ histogram bucket selection,
OpenMP over rows; AVX-512 passes when the CPU has them, and rows of width <= 32 sorted a block
of rows at a time by a vector sorting network), ``cuda`` (radix-digit selection, one block
per row, row cached in shared memory) and ``triton`` (bitwise selection, one program per
row), both on order-preserving integer keys (``csrc/include/synthperf/device_math.h``).
CUDA tensors stay on the device: shapes are checked from metadata and NaN by one device
reduction. Every backend
returns the same values; for ties among equal values any of them is "the" order
statistic, and ``-0.0``/``0.0`` compare equal.
"""
from __future__ import annotations


import numpy as np

from .._typing import ArrayOrTensor
from .. import _native
from .._arrays import array_kind, like_input, to_torch
from .._validation import first_nan_row, float_array, float_tensor, int_array
from ..backend import resolve_backend

SUPPORTED_BACKENDS = ("reference", "cpu", "cuda", "triton")


def _validate_ranks_lengths(ranks: ArrayOrTensor, lengths: ArrayOrTensor, B: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """ranks [A] or [B, A] and lengths [B] as host int64 arrays (ranks as [R, A])."""
    r_np = int_array(ranks, "ranks", ndim=(1, 2))
    if r_np.ndim == 2 and r_np.shape[0] != B:
        raise ValueError(f"ranks has shape {r_np.shape}: a 2-D ranks array must be [B, A] with B = x.shape[0] = {B}")
    r_np = r_np.reshape(1, -1) if r_np.ndim == 1 else r_np
    if lengths is None:
        l_np = np.full(B, n, dtype=np.int64)
    else:
        l_np = int_array(lengths, "lengths", ndim=1)
        if l_np.shape[0] != B:
            raise ValueError(f"lengths has {l_np.shape[0]} entries but x has {B} rows")
        bad = (l_np < 1) | (l_np > n)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _length_error(i, int(l_np[i]), n)
    return np.ascontiguousarray(r_np), np.ascontiguousarray(l_np)


def _validate(x: ArrayOrTensor, ranks: ArrayOrTensor, lengths: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes and dtypes (cheap). NaN and rank ranges are checked by each backend's pass."""
    x_np = float_array(x, "x", ndim=2, allow_nan=True, allow_empty=True)
    B, n = x_np.shape
    if n == 0:
        raise ValueError(f"x has no columns (shape {x_np.shape}); each row needs at least one value")
    r_np, l_np = _validate_ranks_lengths(ranks, lengths, B, n)
    return x_np, r_np, l_np


# One message per data error, shared by the host checks and the C++ core's status codes.
def _nan_error(row: int) -> ValueError:
    return ValueError(f"x contains NaN in row {row} (within its valid length); "
                      "remove or impute NaN scores before selecting order statistics")


def _rank_error(row: int, rank: int) -> ValueError:
    return ValueError(f"ranks out of range for row {row}: got rank {rank}, "
                      "ranks are 1-based and must lie in [1, length of the row]")


def _length_error(row: int, length: int, n: int | None = None) -> ValueError:
    width = "x.shape[1]" if n is None else f"x.shape[1] = {n}"
    return ValueError(f"lengths[{row}] = {length} is invalid: each row needs between 1 and {width} valid entries")


def _check_ranks_host(ranks: np.ndarray, lengths: np.ndarray) -> None:
    bad = (ranks < 1) | (ranks > lengths[:, None])
    if bad.any():
        b, a = np.argwhere(bad)[0]
        raise _rank_error(int(b), int(ranks[b, a]))


def _check_values_host(x: np.ndarray, ranks: np.ndarray, lengths: np.ndarray) -> None:
    """NaN inside valid parts and ranks outside [1, length] raise ValueError."""
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    nan_rows = np.flatnonzero((np.isnan(x) & valid).any(axis=1))
    if nan_rows.size:
        raise _nan_error(int(nan_rows[0]))
    _check_ranks_host(ranks, lengths)


def _order_statistics_device(x: ArrayOrTensor, ranks: ArrayOrTensor, lengths: ArrayOrTensor, backend: str, *, check_nan: bool = True) -> ArrayOrTensor:
    """cuda/triton on a CUDA tensor: validated from metadata and on the device (one NaN
    reduction), never copied to the host. Returns a tensor on x's device. Callers that
    already checked NaN on the same data (the threshold functions) pass ``check_nan=False``."""
    x_t = float_tensor(x, "x", ndim=2, allow_empty=True)
    B, n = x_t.shape
    if n == 0:
        raise ValueError(f"x has no columns (shape {tuple(x_t.shape)}); each row needs at least one value")
    r_np, l_np = _validate_ranks_lengths(ranks, lengths, B, n)
    if B == 0 or r_np.shape[1] == 0:
        return x_t.new_empty((B, r_np.shape[1]))
    _check_ranks_host(r_np, l_np)
    row = first_nan_row(x_t, l_np) if check_nan else -1
    if row >= 0:
        raise _nan_error(row)
    return _run_gpu(x_t, r_np, l_np, backend)


def order_statistics_reference(x: np.ndarray, ranks: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Readable ground truth: sort each row's valid part and pick the 1-based ranks."""
    B, A = x.shape[0], ranks.shape[1]
    out = np.empty((B, A), dtype=x.dtype)
    for b in range(B):
        row_sorted = np.sort(x[b, : lengths[b]])
        out[b] = row_sorted[ranks[b if ranks.shape[0] == B else 0] - 1]
    return out


def _run_cpu(x: np.ndarray, ranks: np.ndarray, lengths: np.ndarray, bitwise: bool = False,
             zero_rank_value: float | None = None) -> np.ndarray:
    """The C++ core on validated host arrays: x [B, n], ranks [R, A] int64, lengths [B] int64.
    ``zero_rank_value``: when given, rank 0 is allowed and yields it (split conformal's top)."""
    x_c = np.ascontiguousarray(x)
    out = np.empty((x_c.shape[0], ranks.shape[1]), dtype=x_c.dtype)
    suffix = "f32" if x_c.dtype == np.float32 else "f64"
    if bitwise:
        status = getattr(_native, "order_statistics_bitwise_" + suffix)(x_c, lengths, ranks, out)
    else:
        status = getattr(_native, "order_statistics_" + suffix)(x_c, lengths, ranks, out, True, zero_rank_value)
    _raise_select_status(status)
    return out


def _raise_select_status(status: tuple[int, int, int]) -> None:
    """Turn the C++ core's (status, row, value) (csrc/include/synthperf/order_stats.h) into
    the ValueError the other backends raise; status 0 is success."""
    code, row, value = (int(v) for v in status)
    if code == 0:
        return
    errors = {1: lambda: _nan_error(row), 2: lambda: _rank_error(row, value), 3: lambda: _length_error(row, value)}
    if code in errors:
        raise errors[code]()
    raise RuntimeError(f"order statistics failed with status {code}")


def _check_gpu_arguments(x_t: ArrayOrTensor, l_t: ArrayOrTensor, r_t: ArrayOrTensor, out: ArrayOrTensor) -> None:
    """What the CUDA binding relies on, checked before any pointer crosses (the binding checks
    again): one device, contiguous rows (stride ``(n, 1)``), int64 index arrays, matching
    shapes. Raises ValueError/TypeError naming the argument."""
    import torch

    B, n = x_t.shape
    if x_t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64 on the GPU path, got {x_t.dtype}")
    for name, t in (("lengths", l_t), ("ranks", r_t)):
        if t.dtype != torch.int64:
            raise TypeError(f"{name} must be int64 on the GPU path, got {t.dtype}")
    for name, t in (("x", x_t), ("lengths", l_t), ("ranks", r_t), ("out", out)):
        if t.device != x_t.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x_t.device}; all arrays must share one device")
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous (row stride = width) on the GPU path, strides {t.stride()}")
    if x_t.stride() != (n, 1) and B > 1:
        raise ValueError(f"x must have strides ({n}, 1), got {x_t.stride()}")
    if tuple(l_t.shape) != (B,):
        raise ValueError(f"lengths has shape {tuple(l_t.shape)}, expected [B] = [{B}]")
    if r_t.ndim != 2 or r_t.shape[0] not in (1, B):
        raise ValueError(f"ranks has shape {tuple(r_t.shape)}, expected [1, A] or [B, A] with B = {B}")
    if tuple(out.shape) != (B, r_t.shape[1]):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected [B, A] = {(B, r_t.shape[1])}")


def _run_gpu(x: ArrayOrTensor, ranks: np.ndarray, lengths: np.ndarray, backend: str) -> ArrayOrTensor:
    """cuda/triton: data goes to the CUDA device (or stays on CPU under the Triton interpreter).

    A CUDA tensor is computed on its own device (not the current one): the launch happens
    under a device guard for ``x.device``."""
    import torch

    from ..backend import cuda_device_count, native_cuda_module

    if array_kind(x).is_torch and x.device.type == "cuda":
        device = x.device
    else:
        device = torch.device("cuda", torch.cuda.current_device()) if cuda_device_count() > 0 else torch.device("cpu")
    x_t = to_torch(x, device)
    if x_t.dtype not in (torch.float32, torch.float64):
        x_t = x_t.to(torch.float64)
    l_t = to_torch(lengths, device)
    r_t = to_torch(ranks, device)
    out = torch.empty((x_t.shape[0], r_t.shape[1]), dtype=x_t.dtype, device=device)
    if out.numel() == 0:
        return out
    _check_gpu_arguments(x_t, l_t, r_t, out)
    if backend == "cuda":
        mod = native_cuda_module()
        if mod is None or device.type != "cuda":
            raise RuntimeError("the cuda backend needs a CUDA tensor and the CUDA module")
        fn = mod.order_statistics_f32 if x_t.dtype == torch.float32 else mod.order_statistics_f64
        index = device.index if device.index is not None else torch.cuda.current_device()
        stream = torch.cuda.current_stream(device).cuda_stream
        fn(x_t.data_ptr(), x_t.shape[0], x_t.shape[1], l_t.data_ptr(), r_t.data_ptr(),
           r_t.shape[0], r_t.shape[1], out.data_ptr(), stream, index)
    else:
        from synthperf.kernels.triton.order_stats import order_statistics_triton

        if device.type == "cuda":
            with torch.cuda.device(device):  # Triton launches on the current device
                order_statistics_triton(x_t, l_t, r_t, out)
        else:
            order_statistics_triton(x_t, l_t, r_t, out)
    return out


def order_statistics_device(x: ArrayOrTensor, ranks: ArrayOrTensor, lengths: ArrayOrTensor, backend: str, *, check_nan: bool = True) -> ArrayOrTensor:
    """Order statistics of a CUDA tensor ``x`` [B, n] on a concrete GPU ``backend`` (``"cuda"``
    or ``"triton"``), validated from metadata and one device reduction (skipped with
    ``check_nan=False`` when the caller already checked NaN). Returns a tensor [B, A] on
    x's device. For layers that resolved the backend themselves (the conformal thresholds)."""
    if backend not in ("cuda", "triton"):
        raise ValueError(f"order_statistics_device needs backend 'cuda' or 'triton', got {backend!r}")
    return _order_statistics_device(x, ranks, lengths, backend, check_nan=check_nan)


def order_statistics_cpu(x: np.ndarray, ranks: np.ndarray, lengths: np.ndarray, *,
                         zero_rank_value: float | None = None) -> np.ndarray:
    """The C++ core on validated host arrays, for layers that validated them already (the
    conformal thresholds): x float32/float64 [B, n], ranks int64 [A], [1, A] or [B, A],
    lengths int64 [B] in [1, n]. Only O(1) metadata checks here (TypeError/ValueError); NaN
    and rank ranges are checked by the core (ValueError). With ``zero_rank_value``, rank 0
    is allowed and yields it (split conformal's ``top``)."""
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64) or x.ndim != 2:
        raise TypeError("x must be a 2-D float32/float64 numpy array")
    for name, arr, ndim in (("ranks", ranks, (1, 2)), ("lengths", lengths, (1,))):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.int64 or arr.ndim not in ndim:
            raise TypeError(f"{name} must be an int64 numpy array with ndim in {ndim}")
    r = ranks.reshape(1, -1) if ranks.ndim == 1 else ranks
    if r.shape[0] not in (1, x.shape[0]) or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"ranks {ranks.shape} / lengths {lengths.shape} do not match x {x.shape}: "
                         "ranks must be [A], [1, A] or [B, A] and lengths [B]")
    if x.shape[0] == 0 or r.shape[1] == 0:
        return np.empty((x.shape[0], r.shape[1]), dtype=x.dtype)
    return _run_cpu(x, np.ascontiguousarray(r), np.ascontiguousarray(lengths), zero_rank_value=zero_rank_value)


def order_statistics(x: ArrayOrTensor, ranks: ArrayOrTensor, lengths: ArrayOrTensor | None = None, *, backend: str | None = None) -> ArrayOrTensor:
    """Select 1-based order statistics from every row of a batch.

    Parameters
    ----------
    x : array [B, n], float32/float64 (numpy or torch, CPU or CUDA)
    ranks : int array [A] or [B, A], 1-based ranks, each in [1, lengths[b]]
    lengths : int array [B], optional; valid entries per row (ragged batches)
    backend : "auto" | "reference" | "cpu" | "cuda" | "triton" | None

    Returns
    -------
    array [B, A] in x's dtype and array type.

    Raises
    ------
    ValueError for a wrong ndim, no columns, NaN in a valid entry, a rank out of range,
    a bad length or an unknown backend; TypeError for non-numeric dtypes;
    BackendUnavailableError for an explicit backend that cannot run here.
    """
    kind = array_kind(x)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="order_statistics", data=x)
    if kind.is_torch and x.device.type == "cuda" and name in ("cuda", "triton"):
        return _order_statistics_device(x, ranks, lengths, name)
    x_np, r_np, l_np = _validate(x, ranks, lengths)
    if x_np.shape[0] == 0 or r_np.shape[1] == 0:
        return like_input(np.empty((x_np.shape[0], r_np.shape[1]), dtype=x_np.dtype), kind)
    if name == "reference":
        _check_values_host(x_np, r_np, l_np)
        return like_input(order_statistics_reference(x_np, r_np, l_np), kind)
    if name == "cpu":
        return like_input(_run_cpu(x_np, r_np, l_np), kind)
    _check_values_host(x_np, r_np, l_np)
    source = x if kind.is_torch else x_np
    return like_input(_run_gpu(source, r_np, l_np, name), kind)
