"""Triton kernel: batched order statistics by bitwise selection on order-preserving keys.

Same algorithm as kernels/cuda/order_stats.cu and the shared C++ device math
(csrc/include/synthperf/device_math.h): the k-th smallest key is the largest t with
#{key < t} < k, found one key bit at a time from the top. One program per row;
each bit is one masked counting pass over the row in BLOCK-sized tiles, all of the
row's ranks at once ([A_BLOCK, BLOCK] compares).

Runs on CUDA tensors, or on CPU tensors under ``TRITON_INTERPRET=1`` (set before import).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _ordered_key(x, IS_F64: tl.constexpr):
    # Floats -> unsigned keys with the same order: negatives flip all bits, others the sign bit.
    if IS_F64:
        bits = x.to(tl.uint64, bitcast=True)
        neg = (bits >> 63) != 0
        return tl.where(neg, ~bits, bits ^ 0x8000000000000000)
    else:
        bits = x.to(tl.uint32, bitcast=True)
        neg = (bits >> 31) != 0
        return tl.where(neg, ~bits, bits ^ 0x80000000)


@triton.jit
def order_statistics_kernel(
    x_ptr,        # [B, ld] values, row-major
    lengths_ptr,  # [B] int64 valid entries per row
    ranks_ptr,    # [R, A] int64 1-based ranks, R in {1, B}
    out_ptr,      # [B, A] output, x's dtype
    ld, A, rank_row_stride,  # rank_row_stride = A when R == B, 0 when shared
    IS_F64: tl.constexpr,
    NBITS: tl.constexpr,
    BLOCK: tl.constexpr,     # row tile
    A_BLOCK: tl.constexpr,   # all ranks of a row in one program (power of two >= A)
    SINGLE_TILE: tl.constexpr,  # BLOCK >= ld: the row stays in registers across all bits
):
    b = tl.program_id(0)
    length = tl.load(lengths_ptr + b)
    a_offs = tl.arange(0, A_BLOCK)
    a_mask = a_offs < A
    k = tl.load(ranks_ptr + b * rank_row_stride + a_offs, mask=a_mask, other=1)
    row = x_ptr + b * ld
    offs = tl.arange(0, BLOCK)
    if IS_F64:
        ans = tl.zeros((A_BLOCK,), dtype=tl.uint64)
        step = tl.full((), 0x8000000000000000, dtype=tl.uint64)
    else:
        ans = tl.zeros((A_BLOCK,), dtype=tl.uint32)
        step = tl.full((), 0x80000000, dtype=tl.uint32)
    # Bitwise selection for every rank at once: t[a] = ans[a] | step; keep it when
    # #{key < t[a]} < k[a]. Counting is a [A_BLOCK, BLOCK] compare + row sum per tile.
    if SINGLE_TILE:  # the whole row fits one tile: load its keys once, count from registers
        mask1 = offs < length
        key1 = _ordered_key(tl.load(row + offs, mask=mask1, other=0.0), IS_F64)
        for _ in range(NBITS):
            t = ans | step
            below = mask1[None, :] & (key1[None, :] < t[:, None])
            count = tl.sum(below.to(tl.int32), axis=1)
            ans = tl.where(count < k, t, ans)
            step = step >> 1
    else:
        for _ in range(NBITS):
            t = ans | step
            count = tl.zeros((A_BLOCK,), dtype=tl.int64)
            for start in range(0, length, BLOCK):
                idx = start + offs
                mask = idx < length
                v = tl.load(row + idx, mask=mask, other=0.0)
                key = _ordered_key(v, IS_F64)
                below = mask[None, :] & (key[None, :] < t[:, None])
                count += tl.sum(below.to(tl.int64), axis=1)
            ans = tl.where(count < k, t, ans)
            step = step >> 1
    # Back from key to float bits: non-negative values have the top bit set in key space.
    if IS_F64:
        bits = tl.where((ans >> 63) != 0, ans ^ 0x8000000000000000, ~ans)
        value = bits.to(tl.float64, bitcast=True)
    else:
        bits = tl.where((ans >> 31) != 0, ans ^ 0x80000000, ~ans)
        value = bits.to(tl.float32, bitcast=True)
    tl.store(out_ptr + b * A + a_offs, value, mask=a_mask)


def order_statistics_triton(x: torch.Tensor, lengths: torch.Tensor, ranks: torch.Tensor,
                            out: torch.Tensor, block: int = 256, single_tile_elems: int = 16384) -> torch.Tensor:
    """Launch the kernel, one program per row. All tensors contiguous on one device and
    already validated: x [B, ld] float32/float64, lengths [B] int64, ranks [R, A] int64
    (R = 1 or B), out [B, A] with x's dtype. Returns ``out``. Rows up to
    ``single_tile_elems / A_BLOCK`` entries are loaded once and kept in registers; longer rows
    are streamed in ``block``-sized tiles on every bit.
    """
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64 for the Triton kernel, got {x.dtype}")
    B, ld = x.shape
    A = ranks.shape[1]
    a_block = triton.next_power_of_2(max(int(A), 1))
    row_block = triton.next_power_of_2(max(int(ld), 16))
    # Keep the row in registers when the [A_BLOCK, BLOCK] compare tile stays small.
    single = row_block * a_block <= single_tile_elems
    block = row_block if single else min(block, row_block)
    is_f64 = x.dtype == torch.float64
    order_statistics_kernel[(B,)](
        x, lengths, ranks, out, ld, A, A if ranks.shape[0] == B else 0,
        IS_F64=is_f64, NBITS=64 if is_f64 else 32, BLOCK=block, A_BLOCK=a_block, SINGLE_TILE=single,
        num_warps=8 if block >= 2048 else 4,
    )
    return out
