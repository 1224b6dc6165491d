"""Forward kernels of TaLK: a blocked prefix scan, then a two-boundary gather.

``talk_scan_kernel``: one program per (batch row, BLOCK_C channels) walks T in
blocks of SCAN_L positions. Per block it writes the block-local exclusive
prefix (float32, ``local``) and the float64 sum of all earlier blocks
(``carry``, one row per block), carrying the running total in float64. Rows
are read along C, the contiguous dimension.

``talk_fwd_kernel``: one program per (BLOCK_T positions, BLOCK_H heads x
BLOCK_R channels, batch row) computes the window ends once per (position,
head) and reads, for each end, ``local`` and ``x`` at its cell and ``carry``
at its block: the window sum is carry[ke] - carry[ks] (float64, exactly 0
within one block) plus a difference of block-local float32 values. See :mod:`lightconv_kernels.talk.reference` for
why this keeps float32 precision at any T, and for the boundary encoding.

The work and memory traffic are O(B * T * C) whatever max_left/max_right.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..conv.triton_conv import _head_split, conv_grid
from ..triton_common import cdiv
from .reference import SCAN_BLOCK

SCAN_L = SCAN_BLOCK


@triton.jit
def split_position(t, shift, T):
    """t + shift clamped to [0, T - 1] as (cell, fraction, not clamped); as in the reference."""
    whole = tl.floor(shift)
    frac = shift - whole
    pos = t + whole.to(tl.int32)
    clamped = (pos < 0) | (pos > T - 1) | ((pos == T - 1) & (frac > 0.0))
    cell = tl.minimum(tl.maximum(pos, 0), T - 1)
    return cell, tl.where(clamped, 0.0, frac), ~clamped


@triton.jit
def window_start(t, offset_left, max_left, T):
    """(cell, fraction, not clamped) of a_l = t - offset_left * max_left."""
    return split_position(t, -(offset_left * max_left), T)


@triton.jit
def window_end(t, offset_right, max_right, T):
    """(cell, fraction, not clamped) of a_r + 1, with a_r + 1 = T kept as (T - 1, 1)."""
    cell, frac, live = split_position(t, offset_right * max_right, T)
    last = cell == T - 1
    return tl.where(last, cell, cell + 1), tl.where(last, 1.0, frac), live


@triton.jit
def load_window(left_ptr, right_ptr, head, mask, t, max_left, max_right, T, HAS_RIGHT: tl.constexpr):
    """Both ends of the windows at offsets ``head`` of the (B, T, H) offset tensors.

    Returns (js, fs, live_l, je, fe, live_r); without offset_right the window
    ends at t + 1.
    """
    left = tl.load(left_ptr + head, mask=mask, other=0.0).to(tl.float32)
    js, fs, live_l = window_start(t, left, max_left, T)
    if HAS_RIGHT:
        right = tl.load(right_ptr + head, mask=mask, other=0.0).to(tl.float32)
    else:
        right = tl.zeros_like(left)
    je, fe, live_r = window_end(t, right, max_right, T)
    return js, fs, live_l, je, fe, live_r


def scan_grid(meta):
    return (cdiv(meta["C"], meta["BLOCK_C"]), meta["B"])


SCAN_CONFIGS = [
    triton.Config({"BLOCK_C": 32}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_C": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_C": 128}, num_warps=8, num_stages=2),
]


@triton.autotune(configs=SCAN_CONFIGS, key=["T", "C"])
@triton.jit
def talk_scan_kernel(
    x_ptr,  # (B, T, C) input
    local_ptr,  # (B, T, C) float32: exclusive prefix inside each SCAN_L block
    carry_ptr,  # (B, NB, C) float64: sum of all blocks before block k
    B,
    T,
    C,
    NB,
    SCAN_L: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    b = tl.program_id(1)
    c = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    rows = tl.arange(0, SCAN_L)
    carry = tl.zeros((BLOCK_C,), tl.float64)
    carry_row = carry_ptr + b.to(tl.int64) * NB * C
    for k in range(0, NB):
        t = k * SCAN_L + rows
        mask = (t < T)[:, None] & c_ok[None, :]
        tile = (b.to(tl.int64) * T + k * SCAN_L) * C  # 64-bit tile origin, 32-bit offsets inside
        inside = rows[:, None] * C + c[None, :]
        v = tl.load(x_ptr + tile + inside, mask=mask, other=0.0).to(tl.float32)
        tl.store(local_ptr + tile + inside, tl.cumsum(v, axis=0) - v, mask=mask)
        tl.store(carry_row + k * C + c, carry, mask=c_ok)
        carry += tl.sum(v, axis=0).to(tl.float64)


def fwd_heuristics(args):
    block_h, block_r = _head_split(args["R"], args["H"], args["BLOCK_C"])
    return {"BLOCK_H": block_h, "BLOCK_R": block_r}


# Same tiling as the convolution kernel: (positions, heads x channels of a head, batch).
fwd_grid = conv_grid


FWD_CONFIGS = [
    triton.Config({"BLOCK_T": 16, "BLOCK_C": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 32, "BLOCK_C": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 32, "BLOCK_C": 128}, num_warps=8, num_stages=2),
]


@triton.jit
def prefix_at(x_row, local_row, carry_row, cell, frac, chan, mask, C, SCAN_L: tl.constexpr):
    """(carry float64, block-local float32 part) of P~ at boundaries (cell, frac) of (t, h) tiles."""
    at = cell[:, :, None] * C + chan[None, :, :]
    x = tl.load(x_row + at, mask=mask, other=0.0).to(tl.float32)
    local = tl.load(local_row + at, mask=mask, other=0.0) + frac[:, :, None] * x
    carry = tl.load(carry_row + (cell // SCAN_L)[:, :, None] * C + chan[None, :, :], mask=mask, other=0.0)
    return carry, local


# Each head's R channels are contiguous at any cell, so with whole head
# slices in the tile the gathers are wide loads.
@triton.autotune(configs=FWD_CONFIGS, key=["T", "H", "R", "HAS_RIGHT"])
@triton.heuristics({"BLOCK_H": lambda a: fwd_heuristics(a)["BLOCK_H"], "BLOCK_R": lambda a: fwd_heuristics(a)["BLOCK_R"]})
@triton.jit
def talk_fwd_kernel(
    x_ptr,  # (B, T, C) input
    local_ptr,  # (B, T, C) float32, from talk_scan_kernel
    carry_ptr,  # (B, NB, C) float64, from talk_scan_kernel
    left_ptr,  # (B, T, H) offset_left
    right_ptr,  # (B, T, H) offset_right; read only when HAS_RIGHT
    out_ptr,  # (B, T, C), dtype of x
    B,
    T,
    C,
    H,
    R,
    NB,
    max_left,
    max_right,
    norm,  # float(max_left + max_right + 1)
    HAS_RIGHT: tl.constexpr,
    SCAN_L: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    b = tl.program_id(2)
    blocks_r = tl.cdiv(R, BLOCK_R)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    h = (tl.program_id(1) // blocks_r) * BLOCK_H + tl.arange(0, BLOCK_H)
    r = (tl.program_id(1) % blocks_r) * BLOCK_R + tl.arange(0, BLOCK_R)
    th_ok = (t < T)[:, None] & (h < H)[None, :]
    chan = h[:, None] * R + r[None, :]
    mask = th_ok[:, :, None] & (r < R)[None, None, :]
    head = (b.to(tl.int64) * T + t)[:, None] * H + h[None, :]
    ts = t[:, None]
    js, fs, _, je, fe, _ = load_window(left_ptr, right_ptr, head, th_ok, ts, max_left, max_right, T, HAS_RIGHT)

    row = b.to(tl.int64) * T * C
    carry_row = carry_ptr + b.to(tl.int64) * NB * C
    cs, ls = prefix_at(x_ptr + row, local_ptr + row, carry_row, js, fs, chan, mask, C, SCAN_L)
    ce, le = prefix_at(x_ptr + row, local_ptr + row, carry_row, je, fe, chan, mask, C, SCAN_L)
    out = ((ce - cs).to(tl.float32) + (le - ls)) / norm
    at = ts[:, :, None] * C + chan[None, :, :]
    tl.store(out_ptr + row + at, out.to(out_ptr.dtype.element_ty), mask=mask)
