"""Exact streaming k-NN on torch: blocked GEMM screening + certified float64 re-ranking (issue 15 item 3).

Spec ``seapig.md`` §2 (KNN back end) and §8 (performance anchor); issue 17 (float64 input, stale indexes).

Algorithm, for a query block of ``bq`` rows against reference blocks of ``nb`` rows:

1. **Screening space.** x' = (x - mu) / s with mu the reference mean (``metric="l2"``; 0 for
   ``"ip"``) and s the reference spread, both computed in float64. Centring removes a common
   offset (1e8 in issue 17) and scaling brings tiny embeddings (1e-30) into the normal range
   of float32 before anything is rounded.
2. **Blocked GEMM + streaming top-k'.** key = ||r'||² - 2 q'·r' (l2) or -q'·r' (ip) by
   ``torch.addmm`` in the screening dtype (float32 by default: MKL SGEMM on CPU, cuBLAS on CUDA),
   one reference block at a time; a running top-k' (k' = k + ``margin``) per row is merged with
   each block's top-k'. The full (M, N) matrix is never formed: memory is bq x nb.
3. **Exact re-ranking.** The k' candidates' distances are recomputed in float64 from the
   original data by direct differences (no cancellation), sorted by (distance, index).
4. **Certificate.** A rigorous bound E_i of the screening error (input rounding, GEMM
   accumulation gamma_D = D u / (1 - D u), Cauchy-Schwarz) gives, for every non-candidate j,
   true d'²_j >= ||q'||² + A_i - E_i where A_i is the k'-th screening key. When that exceeds the
   exact k-th candidate distance the top-k is proven exact; otherwise the row is recomputed by
   a float64 direct-difference brute force (``fallback_rows_`` counts them).

Leave-one-out (``exclude_self``) masks each row's own column by identity (duplicates stay
neighbours at distance 0). Missing neighbours (k > available) get index -1 and distance +inf.
The same code runs on CUDA tensors (``device="cuda"``); TF32 or a reduced
``torch.get_float32_matmul_precision()`` is accounted for in the bound (unit roundoff 2^-11
resp. 2^-8). :class:`ShardedReference` streams memory-mapped ``.npy`` shards through the same
loop (opt-in, for references larger than memory).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .._threads import recommended_threads

__all__ = ["ExactKNN", "ShardedReference", "data_fingerprint", "screen_unit_roundoff"]

U64 = 2.0 ** -53
PRECISIONS = ("auto", "float32", "float64")


def data_fingerprint(x: Any) -> str:
    """SHA-256 (hex) over shape, dtype and every byte of the array/tensor ``x`` (issue 17:
    a saved index is only reused for the data it was built from)."""
    a = x.detach().cpu().contiguous().numpy() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(f"{tuple(a.shape)}|{a.dtype.str}|".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def screen_unit_roundoff(dtype: torch.dtype, device: torch.device) -> float:
    """Unit roundoff of a GEMM in ``dtype`` on ``device``, TF32/bf16 matmul modes included."""
    if dtype == torch.float64:
        return U64
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return 2.0 ** -11
    prec = torch.get_float32_matmul_precision()
    return 2.0 ** -24 if prec == "highest" else (2.0 ** -11 if prec == "high" else 2.0 ** -8)


class ShardedReference:
    """A reference matrix stored as ``.npy`` shards (each (n_i, D), float32 or float64), read
    through ``np.load(mmap_mode="r")`` one block at a time. Rows are numbered across shards in
    the given order. ``len()`` is the total row count; ``dim`` the dimension."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        if isinstance(paths, (str, Path)) or not paths:
            raise ValueError("paths must be a non-empty sequence of .npy shard paths")
        self.paths = [Path(p) for p in paths]
        self._arrays = []
        for p in self.paths:
            if not p.is_file():
                raise FileNotFoundError(f"no reference shard at {p}")
            a = np.load(p, mmap_mode="r", allow_pickle=False)
            if a.ndim != 2 or a.dtype not in (np.float32, np.float64) or a.shape[0] == 0:
                raise ValueError(f"reference shard {p} must be a non-empty 2-D float32/float64 array, "
                                 f"got shape {a.shape} dtype {a.dtype}")
            self._arrays.append(a)
        dims = {a.shape[1] for a in self._arrays}
        if len(dims) != 1:
            raise ValueError(f"reference shards disagree on the dimension: {sorted(dims)}")
        self.dim = dims.pop()
        self.offsets = np.cumsum([0] + [a.shape[0] for a in self._arrays])
        self.dtype = torch.float64 if any(a.dtype == np.float64 for a in self._arrays) else torch.float32

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def blocks(self, nb: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(global start row, float64-or-float32 CPU tensor (<= nb, D)) over all shards."""
        for a, off in zip(self._arrays, self.offsets[:-1]):
            for s in range(0, a.shape[0], nb):
                yield int(off) + s, torch.from_numpy(np.array(a[s:s + nb]))

    def rows(self, idx: np.ndarray) -> torch.Tensor:
        """Rows ``idx`` (any shape of int64 in [0, len)) as float64, shape idx.shape + (D,)."""
        flat = idx.reshape(-1)
        out = np.empty((flat.size, self.dim), dtype=np.float64)
        shard = np.searchsorted(self.offsets, flat, side="right") - 1
        for si in np.unique(shard):
            sel = shard == si
            out[sel] = self._arrays[si][flat[sel] - self.offsets[si]]
        return torch.from_numpy(out.reshape(*idx.shape, self.dim))


class ExactKNN:
    """Exact k-NN (module notes). Keyword-only parameters:

    metric : ``"l2"`` (squared Euclidean distances, ascending) or ``"ip"`` (inner products, descending).
    margin : extra screening candidates per row (k' = k + margin, default 8).
    precision : screening GEMM dtype: ``"float32"``, ``"float64"`` or ``"auto"`` (float32 unless
        the scaled data could overflow it).
    block_elems : bq x nb elements of one screening block (default 2**25, 128 MiB float32: fewer,
        larger GEMM + top-k calls measured 1.4x faster than 2**23 on the shared 2-core box).
    device : where the screening runs (None: the reference's device).
    threads : torch threads during build/search (None: ``_threads.recommended_threads()``, the
        user's SYNTHPERF_NUM_THREADS/OMP_NUM_THREADS or the free cores).

    Fitted: ``ntotal_``, ``d_``, ``dtype_`` (float64 iff the reference is float64), ``mu_`` (D,),
    ``scale_``, ``fallback_rows_`` (rows of the last search that needed the brute force).
    """

    def __init__(self, *, metric: str = "l2", margin: int = 8, precision: str = "auto", block_elems: int = 1 << 25,
                 device: torch.device | str | None = None, threads: int | None = None) -> None:
        if metric not in ("l2", "ip"):
            raise ValueError(f"metric must be 'l2' or 'ip', got {metric!r}")
        if isinstance(margin, bool) or not isinstance(margin, int) or margin < 0:
            raise ValueError(f"margin must be an integer >= 0, got {margin!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if isinstance(block_elems, bool) or not isinstance(block_elems, int) or block_elems < 1024:
            raise ValueError(f"block_elems must be an integer >= 1024, got {block_elems!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        self.metric, self.margin, self.precision, self.block_elems = metric, margin, precision, block_elems
        self.device = torch.device(device) if device is not None else None
        self.threads = threads
        self.ntotal_ = 0
        self.d_ = 0
        self.fallback_rows_ = 0
        self._ref: torch.Tensor | None = None
        self._shards: ShardedReference | None = None

    # -- building ---------------------------------------------------------------------------
    def _run_threads(self):
        n = self.threads if self.threads is not None else self._threads_
        return _TorchThreads(n)

    def build(self, ref: torch.Tensor | ShardedReference) -> "ExactKNN":
        """Index ``ref``: a finite (N, D) float32/float64 tensor (validated by the caller) or a
        :class:`ShardedReference`. Returns self."""
        self._threads_ = self.threads if self.threads is not None else recommended_threads(sample_s=0.05)
        if isinstance(ref, ShardedReference):
            self._shards, self._ref = ref, None
            self.ntotal_, self.d_, self.dtype_ = len(ref), ref.dim, ref.dtype
            self._dev = self.device or torch.device("cpu")
            s1 = torch.zeros(ref.dim, dtype=torch.float64)
            for _, blk in ref.blocks(65536):
                s1 += blk.double().sum(0)
            self.mu_ = s1 / len(ref) if self.metric == "l2" else torch.zeros_like(s1)
            ss, absmax, nmax = 0.0, 0.0, 0.0
            for _, blk in ref.blocks(65536):
                b = blk.double()
                ss += float(((b - self.mu_) ** 2).sum())
                absmax = max(absmax, float(b.abs().max()))
            self._set_scale(ss, absmax)
            for _, blk in ref.blocks(65536):
                nmax = max(nmax, float(((blk.double() - self.mu_) / self.scale_).norm(dim=1).max()))
            self._rmax = nmax
            self._sdtype = self._choose_dtype()
            return self
        self._shards = None
        dev = self.device or ref.device
        self._dev = dev
        self.ntotal_, self.d_ = ref.shape
        self.dtype_ = torch.float64 if ref.dtype == torch.float64 else torch.float32
        self._ref = ref.to(dev)
        with self._run_threads():  # few full passes, no (N, D) temporaries beyond c
            c = self._ref.to(torch.float64, copy=True)  # a copy even for float64 data: c is scaled in place
            lo, hi = torch.aminmax(c)
            absmax = max(-float(lo), float(hi))
            self.mu_ = c.mean(0) if self.metric == "l2" else torch.zeros(self.d_, dtype=torch.float64, device=dev)
            c -= self.mu_
            self._set_scale(float(torch.linalg.vector_norm(c)) ** 2, absmax)
            c /= self.scale_
            norms = torch.linalg.vector_norm(c, dim=1)
            self._rmax = float(norms.max())
            self._sdtype = self._choose_dtype()
            self._set_screen_data(c, norms)
        return self

    def _set_screen_data(self, c: torch.Tensor, norms: torch.Tensor) -> None:
        """Keep the screening copy of the scaled reference ``c`` (N, D) float64 and its row norms."""
        self._rt = c.to(self._sdtype).T.contiguous()          # (D, N) screening copy
        self._rn = (norms * norms).to(self._sdtype)            # (N,)

    def _set_scale(self, ss: float, absmax: float) -> None:
        spread = math.sqrt(ss / max(1, self.ntotal_ * self.d_))
        self.scale_ = spread if spread > 0 and math.isfinite(spread) else (absmax if absmax > 0 else 1.0)
        self._absmax = absmax
        self._mu_norm = float(self.mu_.norm())

    def _choose_dtype(self) -> torch.dtype:
        if self.precision == "float64":
            return torch.float64
        if self.precision == "float32" or self._rmax < 1e15:
            return torch.float32
        return torch.float64

    # -- searching --------------------------------------------------------------------------
    def _ref_blocks(self, nb: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """(start, screening block (D, nb), ||r'||² (nb,)) in the screening dtype on the device."""
        if self._shards is None:
            for s in range(0, self.ntotal_, nb):
                yield s, self._rt[:, s:s + nb], self._rn[s:s + nb]
            return
        for s, blk in self._shards.blocks(nb):
            c = (blk.to(self._dev).double() - self.mu_.to(self._dev)) / self.scale_
            yield s, c.to(self._sdtype).T.contiguous(), (c * c).sum(1).to(self._sdtype)

    def _rows64(self, idx: torch.Tensor) -> torch.Tensor:
        """Original reference rows ``idx`` (any shape, valid indices) in float64 on the device."""
        if self._shards is None:
            return self._ref[idx].double()
        return self._shards.rows(idx.cpu().numpy()).to(self._dev)

    def _exact(self, q64: torch.Tensor, rows: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
        """Exact key per candidate: squared distance (l2) or -inner product (ip), float64.
        ``inplace``: ``rows`` (b, c, D) is a fresh tensor the caller gives up (no temporaries)."""
        if not inplace:
            rows = rows.clone()
        if self.metric == "l2":
            return rows.sub_(q64[:, None, :]).square_().sum(-1)
        return rows.mul_(q64[:, None, :]).sum(-1).neg_()

    def _error_bound(self, qs: torch.Tensor, q64: torch.Tensor) -> torch.Tensor:
        """E_i (bq,) bounding |screening key - exact key| in the scaled space (module notes)."""
        u = screen_unit_roundoff(self._sdtype, self._dev)
        d = self.d_
        gamma = d * u / (1 - d * u)
        qn = qs.double().norm(dim=1)
        scale_err = 4 * U64 / self.scale_
        eta_q = u * qn + scale_err * (q64.norm(dim=1) + self._mu_norm)
        R = self._rmax
        H = u * R + scale_err * (self._absmax * math.sqrt(d) + self._mu_norm)
        qq, RR = qn + eta_q, R + H
        e = 2 * (qn * H + R * eta_q + eta_q * H + gamma * qq * RR) + u * (2 * R * R + 2 * qq * RR + qn * qn)
        return 1.25 * e + 1e-300

    def search(self, query: torch.Tensor, k: int, *, exclude_self: bool = False,
               row_offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """k nearest reference rows of ``query`` (M, D) (validated by the caller).

        ``exclude_self``: query row i is reference row ``row_offset + i`` and is excluded.
        Returns (keys float64 (M, k): squared distances for l2, inner products for ip;
        indices int64 (M, k), -1 where fewer than k neighbours exist), on the engine's device.
        """
        if self.ntotal_ == 0:
            raise RuntimeError("the KNN index is empty: call build(ref) before searching")
        q_all = query.to(self._dev)
        m = q_all.shape[0]
        kp = min(k + self.margin, self.ntotal_)
        bq = max(1, min(m, 1024))
        nb = max(kp, (self.block_elems // bq) // GROUP * GROUP)
        out_k = torch.empty((m, k), dtype=torch.float64, device=self._dev)
        out_i = torch.empty((m, k), dtype=torch.int64, device=self._dev)
        self.fallback_rows_ = 0
        with self._run_threads():
            for s in range(0, m, bq):
                e = min(s + bq, m)
                keys, idx = self._search_block(q_all[s:e], k, kp, nb, row_offset + s if exclude_self else None)
                out_k[s:e], out_i[s:e] = keys, idx
        if self.metric == "ip":
            out_k = -out_k
        return out_k, out_i

    def _screen(self, qs: torch.Tensor, kp: int, nb: int, self_start: int | None):
        best_v = best_i = None
        b = qs.shape[0]
        ar = torch.arange(b, device=self._dev)
        flat = torch.empty(b * nb, dtype=qs.dtype, device=self._dev)  # one reused block buffer
        for start, rt, rn in self._ref_blocks(nb):
            K = flat[:b * rt.shape[1]].view(b, rt.shape[1])
            if self.metric == "l2":
                torch.addmm(rn, qs, rt, alpha=-2.0, out=K)
            else:
                torch.mm(qs, rt, out=K).neg_()
            if self_start is not None:  # leave-one-out by identity
                cols = self_start + ar - start
                ok = (cols >= 0) & (cols < K.shape[1])
                K[ar[ok], cols[ok]] = float("inf")
            v, i = _block_topk(K, kp)
            i += start
            if best_v is None:
                best_v, best_i = v, i
            else:
                v, j = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                best_v, pos = v.topk(min(kp, v.shape[1]), dim=1, largest=False, sorted=False)
                best_i = j.gather(1, pos)
        return best_v, best_i

    def _finish(self, q64: torch.Tensor, cand: torch.Tensor, valid: torch.Tensor, k: int):
        """Exact keys of the candidates, sorted by (key, index); first k columns."""
        safe = torch.where(valid, cand, torch.zeros_like(cand))
        ex = self._exact(q64, self._rows64(safe), inplace=True)  # _rows64 returns a fresh tensor
        ex = torch.where(valid, ex, torch.full_like(ex, float("inf")))
        o = safe.argsort(dim=1, stable=True)
        ex, cand = ex.gather(1, o), torch.where(valid, cand, -1).gather(1, o)
        o = ex.argsort(dim=1, stable=True)
        ex, cand = ex.gather(1, o), cand.gather(1, o)
        if ex.shape[1] < k:
            pad = k - ex.shape[1]
            ex = torch.cat([ex, ex.new_full((ex.shape[0], pad), float("inf"))], 1)
            cand = torch.cat([cand, cand.new_full((cand.shape[0], pad), -1)], 1)
        ex, cand = ex[:, :k], cand[:, :k]
        cand[torch.isinf(ex)] = -1
        return ex, cand

    def _search_block(self, q: torch.Tensor, k: int, kp: int, nb: int, self_start: int | None):
        q64 = q.double()
        q64s = (q64 - self.mu_) / self.scale_
        qs = q64s.to(self._sdtype)
        v, cand = self._screen(qs, kp, nb, self_start)
        valid = torch.isfinite(v)
        ex, idx = self._finish(q64, cand, valid, k)
        n_avail = self.ntotal_ - (1 if self_start is not None else 0)
        if kp >= n_avail:  # every neighbour was a candidate: exact by construction
            return ex, idx
        A = v.double().amax(dim=1)
        E = self._error_bound(qs, q64)
        s2 = self.scale_ ** 2
        if self.metric == "l2":
            lower = (q64s * q64s).sum(1) + A - E
            kth = ex[:, k - 1] / s2
            slack = 1e-12 * (lower.abs() + kth.abs())
        else:
            c = (q64s * (self.mu_ / self.scale_)).sum(1)     # = 0 (mu is 0 for ip)
            lower = A - c - E
            kth = ex[:, k - 1] / s2
            slack = 1e-12 * (lower.abs() + kth.abs() + c.abs())
        bad = ~(lower > kth + slack)
        if bool(bad.any()):
            rows = bad.nonzero().flatten()
            self.fallback_rows_ += int(rows.numel())
            fk, fi = self._brute(q64[rows], k, None if self_start is None else self_start + rows)
            ex[rows], idx[rows] = fk, fi
        return ex, idx

    def _brute(self, q64: torch.Tensor, k: int, self_rows: torch.Tensor | None):
        """Float64 direct-difference brute force for the uncertified rows."""
        b = q64.shape[0]
        nb = max(k, (1 << 22) // max(1, b * self.d_))
        best_v = best_i = None
        ar = torch.arange(b, device=self._dev)
        for start in range(0, self.ntotal_, nb):
            end = min(start + nb, self.ntotal_)
            idx = torch.arange(start, end, device=self._dev)
            ex = self._exact(q64, self._rows64(idx)[None].expand(b, -1, -1))
            if self_rows is not None:
                cols = self_rows - start
                ok = (cols >= 0) & (cols < ex.shape[1])
                ex[ar[ok], cols[ok]] = float("inf")
            v, i = ex.topk(min(k, ex.shape[1]), dim=1, largest=False, sorted=False)
            i += start
            if best_v is None:
                best_v, best_i = v, i
            else:
                v, j = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                best_v, pos = v.topk(min(k, v.shape[1]), dim=1, largest=False, sorted=False)
                best_i = j.gather(1, pos)
        valid = torch.isfinite(best_v)
        return self._finish(q64, best_i, valid, k)


GROUP = 8


def _block_topk(K: torch.Tensor, kp: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kp smallest entries per row of K (b, n) and their columns (unsorted).

    For wide blocks the columns are split into ``GROUP`` strided groups of width W = n/GROUP
    (column c + W·g); the kp smallest entries lie in the kp columns-of-groups whose minimum
    over g is smallest (each of them has a distinct column-group minimum at most its value),
    so one ``amin`` pass (a single parallel op: on a loaded machine many small ops cost a barrier each) and a top-k over W minima replace most of the top-k work.
    """
    b, n = K.shape
    if n % GROUP or n < GROUP * kp * 4:
        return K.topk(min(kp, n), dim=1, largest=False, sorted=False)
    W = n // GROUP
    _, gi = K.view(b, GROUP, W).amin(1).topk(kp, dim=1, largest=False, sorted=False)
    cols = (gi[:, None, :] + W * torch.arange(GROUP, device=K.device)[None, :, None]).reshape(b, -1)
    v, p = K.gather(1, cols).topk(kp, dim=1, largest=False, sorted=False)
    return v, cols.gather(1, p)


class _TorchThreads:
    """Set torch's intra-op threads for a block and restore them."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        if self.n != self.old:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if torch.get_num_threads() != self.old:
            torch.set_num_threads(self.old)
