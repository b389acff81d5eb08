"""Conformal thresholds: split conformal and SPPI, single group and batched (specs/sppi.md §1c, §3).

Notation (1-based ranks, S_(k) the k-th smallest real score, S~_(k) synthetic):

    split conformal   q = S_(k), k = ceil((1-a)(n+1)); q = top when k > n (alpha < 1/(n+1))
    SPPI              K = ceil((1-a)(N+1))
                      q_syn = S~_(K+1); top if K+1 > N
                      r+ = max{r : U_r <= K},  r- = max{r : L_r <= K}   (windows.py)
                      s+- = S_(r+-) if r+- <= n, top if r+- = n+1, -inf if r+- = 0
                      q = max(min(q_syn, s-), s+)

Every rank comes from one helper, ``conformal_rank_table`` (C++ ``device_math.h``, also
used inside the C++ core): by default the ranks are exact (alpha taken as the binary
rational it is, integer arithmetic). ``upstream=True`` on every function switches to
upstream's double expressions (K = ceil(N (1-a)(1+1/N)), ...), evaluated in upstream's
order; those round up by one for a few (N, alpha) pairs (spec §1d: N=24, alpha=0.2 gives
K=21) and are needed only for bit parity with upstream runs. ``windows.coverage_bounds``
uses the same ranks. Sets are {y : s(x, y) <= q}. ``top`` is +inf for regression and 1
for APS (spec pitfall P3).

Every threshold is an exact order statistic (or top / -inf), so all backends and the
single-group functions return identical values. Result dtype: the scores' dtype
(np.result_type of real and synthetic scores).
"""
from __future__ import annotations

import math

import numpy as np

from .._typing import ArrayLike, ArrayOrTensor
from .. import _native
from .._arrays import array_kind, like_input
from .._validation import first_nan_row, float_array, float_tensor, int_array, open_unit_interval, real_scalar
from ..backend import resolve_backend
from ..ops.order_stats import order_statistics, order_statistics_cpu, order_statistics_device
from ..ops.sppi import sppi_clip_selected, sppi_thresholds_cpu
from .windows import _validate_sizes, transport_windows

SUPPORTED_BACKENDS = ("reference", "cpu", "cuda", "triton")


# ----------------------------------------------------------------------------------------
# Index math (one helper per formula; the C++/CUDA twins live in device_math.h)
# ----------------------------------------------------------------------------------------
_RANK_KINDS = {"split": 0, "sppi_K": 1, "sppi_synth": 2}


def _check_upstream(upstream: object) -> bool:
    if not isinstance(upstream, (bool, np.bool_)):
        raise TypeError(f"upstream must be a bool, got {type(upstream).__name__} {upstream!r}")
    return bool(upstream)


def conformal_rank_table(kind: str, sizes: ArrayLike, alphas: ArrayLike, *, upstream: bool = False) -> np.ndarray:
    """The one conformal rank helper: int64 [P, A] ranks for sizes [P] and levels [A].

    kind "split": split-conformal rank ceil((1-a)(n+1)), 0 (= top) when it exceeds n;
    "sppi_K": K = ceil((1-a)(N+1)); "sppi_synth": K+1, 0 (= top) when it exceeds N.
    Exact integer arithmetic unless ``upstream`` (upstream's double expressions, spec §1c-§1d).
    The C++ core and the GPU host math use the same function (``device_math.h``).
    """
    if kind not in _RANK_KINDS:
        raise ValueError(f"kind must be one of {sorted(_RANK_KINDS)}, got {kind!r}")
    sz = np.ascontiguousarray(np.atleast_1d(sizes), dtype=np.int64)
    lv = np.ascontiguousarray(np.atleast_1d(alphas), dtype=np.float64)
    return _native.conformal_rank_table(_RANK_KINDS[kind], sz, lv, _check_upstream(upstream))


def split_conformal_rank(n: int, alpha: float, *, upstream: bool = False) -> int:
    """1-based rank ceil((1-a)(n+1)) of the split-conformal threshold, 0 for 'top'."""
    return int(conformal_rank_table("split", [n], [alpha], upstream=upstream)[0, 0])


def sppi_K(n_synth: int, alpha: float, *, upstream: bool = False) -> int:
    """SPPI's K = ceil((1-a)(N+1)) (upstream: ceil(N (1-a)(1+1/N)) in double)."""
    return int(conformal_rank_table("sppi_K", [n_synth], [alpha], upstream=upstream)[0, 0])


def sppi_ranks(n_real: int, n_synth: int, alpha: float, L: np.ndarray, U: np.ndarray, *,
               upstream: bool = False) -> tuple[int, int, int]:
    """(synthetic rank or 0 for top, r_plus, r_minus) for one group and one alpha."""
    K = sppi_K(n_synth, alpha, upstream=upstream)
    synth_rank = int(conformal_rank_table("sppi_synth", [n_synth], [alpha], upstream=upstream)[0, 0])
    return synth_rank, _last_rank_at_most(U, K), _last_rank_at_most(L, K)


def sppi_rank_arrays(n: np.ndarray, N: np.ndarray, alphas: np.ndarray, beta: float, *,
                     upstream: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised ``sppi_ranks``: groups with sizes n [B], N [B] at levels [A] ->
    (synthetic rank, r_plus, r_minus), each int64 [B, A]. Used by the GPU host math and the
    coverage bounds, so bounds and thresholds always share their ranks."""
    n = np.asarray(n, dtype=np.int64)
    N = np.asarray(N, dtype=np.int64)
    B, A = n.shape[0], np.shape(alphas)[0]
    r_plus = np.zeros((B, A), dtype=np.int64)
    r_minus = np.zeros((B, A), dtype=np.int64)
    if B == 0:
        return np.zeros((0, A), dtype=np.int64), r_plus, r_minus
    N_values, N_inverse = np.unique(N, return_inverse=True)
    K = conformal_rank_table("sppi_K", N_values, alphas, upstream=upstream)[N_inverse.reshape(-1)]
    synth_rank = conformal_rank_table("sppi_synth", N_values, alphas, upstream=upstream)[N_inverse.reshape(-1)]
    pairs, inverse = _size_pairs(n, N)
    for t, (n_t, N_t) in enumerate(pairs):
        rows = np.flatnonzero(inverse == t)
        L, U = transport_windows(int(n_t), int(N_t), beta)
        r_plus[rows] = _last_ranks_vectorised(U, K[rows])
        r_minus[rows] = _last_ranks_vectorised(L, K[rows])
    return synth_rank, r_plus, r_minus


def _last_rank_at_most(W: np.ndarray, K: int) -> int:
    ok = (W <= K) | (W < 0)
    idx = np.flatnonzero(ok)
    return int(idx[-1]) + 1 if idx.size else 0


# ----------------------------------------------------------------------------------------
# Single group (readable; these are also the reference backend of the batched functions)
# ----------------------------------------------------------------------------------------
def _alpha_levels(alpha: ArrayLike) -> tuple[np.ndarray, bool]:
    levels = open_unit_interval(alpha, "alpha")
    return np.atleast_1d(levels), np.ndim(alpha) == 0


def _scores_1d(x: ArrayLike, name: str) -> np.ndarray:
    return float_array(x, name, ndim=1)


def split_conformal_threshold(scores: ArrayLike, alpha: ArrayLike, top: float = math.inf, *, upstream: bool = False):
    """Split-conformal threshold from n calibration scores (specs/sppi.md §3, method SC).

    scores : [n] float; alpha : float or [A]; top : value of a trivial threshold;
    upstream : upstream's double rank expression instead of the exact rank (module docstring).
    Returns a float for scalar alpha, else a float array [A].
    """
    s = _scores_1d(scores, "scores")
    alphas, scalar = _alpha_levels(alpha)
    top = real_scalar(top, "top")
    sorted_s = np.sort(s)
    n = sorted_s.shape[0]
    out = np.empty(alphas.shape[0], dtype=sorted_s.dtype)
    for i, k in enumerate(conformal_rank_table("split", [n], alphas, upstream=upstream)[0].tolist()):
        out[i] = top if k == 0 else sorted_s[k - 1]
    return float(out[0]) if scalar else out


def _sppi_one_group(real_sorted: np.ndarray, synth_sorted: np.ndarray, alphas: np.ndarray,
                    L: np.ndarray, U: np.ndarray, top: float, dtype, upstream: bool = False) -> np.ndarray:
    n = real_sorted.shape[0]
    out = np.empty(alphas.shape[0], dtype=dtype)
    for i, a in enumerate(alphas):
        synth_rank, r_plus, r_minus = sppi_ranks(n, synth_sorted.shape[0], float(a), L, U, upstream=upstream)
        q_syn = top if synth_rank == 0 else synth_sorted[synth_rank - 1]
        s_plus = -math.inf if r_plus == 0 else (real_sorted[r_plus - 1] if r_plus <= n else top)
        s_minus = -math.inf if r_minus == 0 else (real_sorted[r_minus - 1] if r_minus <= n else top)
        out[i] = max(min(dtype.type(q_syn), dtype.type(s_minus)), dtype.type(s_plus))
    return out


def sppi_threshold(real_scores: ArrayLike, synth_scores: ArrayLike, alpha: ArrayLike, beta: float = 0.4, top: float = math.inf,
                   *, upstream: bool = False):
    """SPPI threshold for one group (specs/sppi.md §1c).

    real_scores : [n] float, n >= 1; synth_scores : [N] float, N >= n + 2;
    alpha : float or [A] in (0, 1); beta : window slack in (0, 1); top : trivial threshold;
    upstream : upstream's double rank expressions instead of the exact ranks.
    Returns a float for scalar alpha, else a float array [A]. Coverage of {s <= q} on a new
    real point lies in ``coverage_bounds(n, N, alpha, beta)`` whatever the synthetic scores
    (with the default exact ranks; the bounds use the same ranks).
    """
    r = _scores_1d(real_scores, "real_scores")
    s = _scores_1d(synth_scores, "synth_scores")
    alphas, scalar = _alpha_levels(alpha)
    top = real_scalar(top, "top")
    _validate_sizes(r.shape[0], s.shape[0], beta)
    L, U = transport_windows(r.shape[0], s.shape[0], beta)
    dtype = np.result_type(r.dtype, s.dtype)
    out = _sppi_one_group(np.sort(r), np.sort(s), alphas, L, U, top, dtype, _check_upstream(upstream))
    return float(out[0]) if scalar else out


# ----------------------------------------------------------------------------------------
# Batched (the hot path)
# ----------------------------------------------------------------------------------------
def _lengths(lengths: ArrayLike, B: int, width: int, name: str, minimum: int) -> np.ndarray:
    if lengths is None:
        return np.full(B, width, dtype=np.int64)
    ln = int_array(lengths, name, ndim=1)
    if ln.shape[0] != B:
        raise ValueError(f"{name} has {ln.shape[0]} entries but the scores have {B} groups")
    bad = (ln < minimum) | (ln > width)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {int(ln[i])} must lie in [{minimum}, {width}] (the padded width)")
    return ln


def _nan_error(name: str, b: int) -> ValueError:
    return ValueError(f"{name} contains NaN in group {b} (within its length); NaN scores are not allowed")


def _check_no_nan(x: ArrayLike, lengths: np.ndarray, name: str) -> None:
    """Host arrays: numpy pass; torch tensors (device path): one reduction on their device."""
    if not isinstance(x, np.ndarray):
        b = first_nan_row(x, lengths)
        if b >= 0:
            raise _nan_error(name, b)
        return
    if x.dtype.kind != "f":
        return
    nan = np.isnan(x)
    if not nan.any():
        return
    bad = nan & (np.arange(x.shape[1])[None, :] < lengths[:, None])
    if bad.any():
        raise _nan_error(name, int(np.flatnonzero(bad.any(axis=1))[0]))


def _on_device(x: ArrayLike, backend: str) -> bool:
    """GPU backends on CUDA tensors keep the data on the device end to end."""
    kind = array_kind(x)
    return kind.is_torch and x.device.type == "cuda" and backend in ("cuda", "triton")


def _device_scores(x: ArrayLike, name: str, device: object) -> ArrayOrTensor:
    """Validated float tensor on ``device`` (numpy or torch input)."""
    import torch

    if array_kind(x).is_torch:
        return float_tensor(x.to(device), name, ndim=2)
    return torch.from_numpy(np.ascontiguousarray(float_array(x, name, ndim=2, allow_nan=True))).to(device)


def split_conformal_thresholds(scores: ArrayLike, alphas: ArrayLike, top: float = math.inf, lengths: ArrayLike | None = None,
                               *, backend: str | None = None, upstream: bool = False):
    """Split-conformal thresholds for B groups at A levels: [B, n] -> [B, A].

    ``lengths`` [B] gives ragged group sizes (entries past a group's length are never read).
    Equal, bit for bit, to ``split_conformal_threshold`` applied group by group (same ``upstream``).
    """
    kind = array_kind(scores)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="split_conformal_thresholds",
                           data=scores)
    on_device = _on_device(scores, name)
    x = float_tensor(scores, "scores", ndim=2) if on_device else float_array(scores, "scores", ndim=2, allow_nan=True)
    lv = np.atleast_1d(open_unit_interval(alphas, "alphas"))
    top = real_scalar(top, "top")
    ln = _lengths(lengths, x.shape[0], x.shape[1], "lengths", 1)
    if name != "cpu":  # the C++ core detects NaN in its min/max pass
        _check_no_nan(x, ln, "scores")
    upstream = _check_upstream(upstream)
    ranks = _split_conformal_ranks(ln, lv, uniform=lengths is None, upstream=upstream)  # [A] or [B, A]
    if on_device:
        import torch

        sel = order_statistics_device(x, np.maximum(ranks, 1), ln, name, check_nan=False)
        trivial = torch.from_numpy(ranks == 0).to(x.device)
        return torch.where(trivial, torch.tensor(top, dtype=x.dtype, device=x.device), sel)
    if name == "reference":
        out = np.stack([split_conformal_threshold(x[b, : ln[b]], lv, top, upstream=upstream)
                        for b in range(x.shape[0])]) \
            if x.shape[0] else np.empty((0, lv.shape[0]), x.dtype)
        return like_input(out.astype(x.dtype, copy=False), kind)
    if name == "cpu":  # validated above: straight to the C++ core, which writes top for rank 0
        return like_input(order_statistics_cpu(x, np.atleast_2d(ranks), ln, zero_rank_value=top), kind)
    source = scores if (kind.is_torch and name in ("cuda", "triton")) else x
    out = like_input(order_statistics(source, np.maximum(ranks, 1), ln, backend=name), array_kind(x))
    np.putmask(out, np.broadcast_to(ranks == 0, out.shape), x.dtype.type(top))  # alpha < 1/(n+1)
    return like_input(out, kind)


def _split_conformal_ranks(ln: np.ndarray, lv: np.ndarray, uniform: bool = False, upstream: bool = False) -> np.ndarray:
    """k = ceil((1 - alpha)(n + 1)), 0 when it exceeds n (the rank helper): [A] when every
    group has the same n (the common case, computed once; ``uniform`` says so without
    looking), else [B, A]."""
    if ln.shape[0] > 0 and (uniform or ln.min() == ln.max()):
        return conformal_rank_table("split", ln[:1], lv, upstream=upstream)[0]
    if ln.shape[0] == 0:
        return np.zeros((0, lv.shape[0]), dtype=np.int64)
    values, inverse = np.unique(ln, return_inverse=True)
    return conformal_rank_table("split", values, lv, upstream=upstream)[inverse.reshape(-1)]


def _size_pairs(n: np.ndarray, N: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (n, N) group sizes [P, 2] and each group's index into them [B]."""
    if n.min() == n.max() and N.min() == N.max():  # the common case: one (n, N) for all groups
        return np.array([[n[0], N[0]]], dtype=np.int64), np.zeros(n.shape[0], dtype=np.int64)
    base = int(N.max()) + 1  # a 1-D key is far faster than np.unique(axis=0)
    keys, inverse = np.unique(n.astype(np.int64) * base + N, return_inverse=True)
    return np.stack([keys // base, keys % base], axis=1), inverse.reshape(-1)


def _window_tables(n: np.ndarray, N: np.ndarray, beta: float):
    """Pack the windows of each distinct (n, N) into flat L/U arrays plus per-group offsets."""
    pairs, inverse = _size_pairs(n, N)
    L_parts, U_parts, starts, pos = [], [], [], 0
    for n_b, N_b in pairs:
        L, U = transport_windows(int(n_b), int(N_b), beta)
        L_parts.append(L)
        U_parts.append(U)
        starts.append(pos)
        pos += L.shape[0]
    offsets = np.asarray(starts, dtype=np.int64)[inverse]
    return np.concatenate(L_parts), np.concatenate(U_parts), offsets


def sppi_thresholds(real: ArrayLike, synth: ArrayLike, alphas: ArrayLike, beta: float = 0.4, top: float = math.inf,
                    real_lengths: ArrayLike | None = None, synth_lengths: ArrayLike | None = None, *, backend: str | None = None,
                    upstream: bool = False):
    """SPPI thresholds for B groups at A levels (specs/sppi.md §1c, §8 step 3).

    Parameters
    ----------
    real : [B, n_max] float real calibration scores; group b uses real[b, :real_lengths[b]].
    synth : [B, N_max] float synthetic scores; group b uses synth[b, :synth_lengths[b]].
    alphas : [A] (or scalar) levels in (0, 1); beta : window slack in (0, 1); top : trivial value.
    real_lengths, synth_lengths : [B] int, optional ragged sizes (need N_b >= n_b + 2).
    backend : "auto" | "reference" | "cpu" | "cuda" | "triton".
    upstream : upstream's double rank expressions instead of the exact ranks (bit parity with
    upstream runs; module docstring). Every backend uses the same rank helper.

    Returns [B, A] thresholds in the scores' dtype and the caller's array type, identical
    bit for bit to ``sppi_threshold`` applied group by group.
    """
    kind = array_kind(real)
    name = resolve_backend(backend, supported=SUPPORTED_BACKENDS, kernel="sppi_thresholds", data=real)
    on_device = _on_device(real, name)
    if on_device:
        R, S = float_tensor(real, "real", ndim=2), _device_scores(synth, "synth", real.device)
    else:
        R = float_array(real, "real", ndim=2, allow_nan=True)
        S = float_array(synth, "synth", ndim=2, allow_nan=True)
    if R.shape[0] != S.shape[0]:
        raise ValueError(f"real and synth must have the same number of groups, got {R.shape[0]} and {S.shape[0]}")
    lv = np.atleast_1d(open_unit_interval(alphas, "alphas"))
    top = real_scalar(top, "top")
    if isinstance(beta, (list, tuple, np.ndarray)):
        raise TypeError(f"beta must be a scalar in (0, 1), got {beta!r}")
    beta = float(open_unit_interval(beta, "beta"))
    upstream = _check_upstream(upstream)
    n = _lengths(real_lengths, R.shape[0], R.shape[1], "real_lengths", 1)
    N = _lengths(synth_lengths, S.shape[0], S.shape[1], "synth_lengths", 1)
    small = N < n + 2
    if small.any():
        b = int(np.flatnonzero(small)[0])
        raise ValueError(f"group {b} has n_synth = {int(N[b])} < n_real + 2 = {int(n[b]) + 2}; SPPI needs more synthetic scores")
    if name != "cpu":  # the C++ core detects NaN in its min/max pass
        _check_no_nan(R, n, "real")
        _check_no_nan(S, N, "synth")
    B, A = R.shape[0], lv.shape[0]
    if on_device:
        import torch

        dtype_t = torch.promote_types(R.dtype, S.dtype)
        if B == 0:
            return R.new_empty((0, A), dtype=dtype_t)
        return _sppi_thresholds_by_selection(R.to(dtype_t), S.to(dtype_t), lv, n, N, beta, top, name, upstream)
    dtype = np.result_type(R.dtype, S.dtype)
    if B == 0:
        return like_input(np.empty((0, A), dtype=dtype), kind)
    if name == "reference":
        out = np.empty((B, A), dtype=dtype)
        for b in range(B):
            L, U = transport_windows(int(n[b]), int(N[b]), beta)
            out[b] = _sppi_one_group(np.sort(R[b, : n[b]]), np.sort(S[b, : N[b]]), lv, L, U, top, dtype, upstream)
        return like_input(out, kind)
    if name == "cpu":
        L_flat, U_flat, offsets = _window_tables(n, N, beta)
        out = sppi_thresholds_cpu(R.astype(dtype, copy=False), n, S.astype(dtype, copy=False), N, lv,
                                  L_flat, U_flat, offsets, top, upstream=upstream)
        return like_input(out, kind)
    return like_input(_sppi_thresholds_by_selection(R.astype(dtype, copy=False), S.astype(dtype, copy=False),
                                                    lv, n, N, beta, top, name, upstream), kind)


def _sppi_thresholds_by_selection(R, S, lv, n, N, beta, top, backend, upstream=False):
    """GPU path: host computes all ranks (``sppi_rank_arrays``, the shared rank helper), then
    ``ops.sppi.sppi_clip_selected`` selects the order statistics on ``backend`` and clips
    where the scores live (numpy arrays, or CUDA tensors that never leave the device)."""
    synth_rank, r_plus, r_minus = sppi_rank_arrays(n, N, lv, beta, upstream=upstream)
    return sppi_clip_selected(R, S, n, N, synth_rank, r_plus, r_minus, top, backend)


def _last_ranks_vectorised(W: np.ndarray, K: np.ndarray) -> np.ndarray:
    """max{r : W[r-1] <= K} elementwise over K (W non-decreasing, then a -1 sentinel suffix)."""
    m = W.shape[0]
    if W[-1] < 0:
        return np.full(K.shape, m, dtype=np.int64)
    return np.searchsorted(W, K, side="right").astype(np.int64)
