"""Backward kernels of TaLK: offset gradients, then grad_x from sorted boundaries.

With g = grad_out / N (N = max_left + max_right + 1), every window scatters
into grad_x: +g to the cells below its end boundary, -g to the cells below its
start boundary, and the boundary cells get the fractions. For a target cell u:

    grad_x[u] = sum over boundaries (t, kind) with cell > u of sign * g[t]
              + sum over boundaries with cell == u of sign * frac * g[t]

(sign = +1 for an end, -1 for a start). Boundaries are not monotone in t, so
scattering them in parallel would need atomics (non-deterministic in float).
Instead:

1. ``talk_bwd_offsets_kernel`` (one program per BLOCK_T positions x head x
   batch row) reduces the offset gradients over the R channels of the head
   and writes, per (b, h), the 2T boundaries as integer keys (their cells)
   and fractions: starts at [0, T), ends at [T, 2T).
2. The host sorts each (b, h) row of keys with a stable sort (a device radix
   sort; no host sync) and finds with ``searchsorted`` where each cell's
   boundaries begin: first[u] = number of boundaries with cell < u.
3. ``talk_bwd_x_kernel`` (one program per (b, h) and BLOCK_C channels of the
   head) walks the cells from the end in tiles of BLOCK_T. The boundaries of
   a tile are the contiguous sorted range [first[u0], first[u0 + BLOCK_T]);
   it reads them in chunks of BLOCK_S, gathers their g rows, takes reverse
   cumulative sums inside the chunk and picks, for each cell u of the tile,
   the sums from first[u + 1] (cells above u) and between first[u] and
   first[u + 1] (the cell itself) with ``tl.gather``. Boundaries of later
   tiles enter through a float64 carry. The order of every sum is fixed by
   the (stable) sort and the tiling, so grad_x is bitwise reproducible.

Cost: the sort is over B * H * 2T integers; the kernels then touch each
boundary once per channel and each cell once, O(B * T * C) in total,
independent of max_left/max_right. A gather formulation (every cell visiting
the sources whose windows can cover it) would be O(B * T * C * window).
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_common import cdiv, next_pow2
from .triton_fwd import load_window


def _head_block(R: int, block: int) -> int:
    """Channels per program: BLOCK of the config, capped at the head size (>= 16 for tl ops)."""
    return max(16, min(next_pow2(R), block))


def offsets_grid(meta):
    return (cdiv(meta["T"], meta["BLOCK_T"]), meta["H"], meta["B"])


OFFSETS_CONFIGS = [
    triton.Config({"BLOCK_T": 32, "BLOCK_R": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 64, "BLOCK_R": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 32, "BLOCK_R": 128}, num_warps=8, num_stages=2),
]


def offsets_heuristics(args):
    return {"BLOCK_RH": _head_block(args["R"], args["BLOCK_R"])}


@triton.autotune(configs=OFFSETS_CONFIGS, key=["T", "H", "R", "HAS_RIGHT"])
@triton.heuristics({"BLOCK_RH": lambda a: offsets_heuristics(a)["BLOCK_RH"]})
@triton.jit
def talk_bwd_offsets_kernel(
    x_ptr,  # (B, T, C) input
    g_ptr,  # (B, T, C) grad_out
    left_ptr,  # (B, T, H) offset_left
    right_ptr,  # (B, T, H) offset_right; read only when HAS_RIGHT
    grad_left_ptr,  # (B, T, H), dtype of offset_left
    grad_right_ptr,  # (B, T, H), dtype of offset_right; written only when HAS_RIGHT
    key_ptr,  # (B, H, 2T) int32 boundary cells: starts, then ends
    frac_ptr,  # (B, H, 2T) float32 boundary fractions, same order
    B,
    T,
    C,
    H,
    R,
    max_left,
    max_right,
    norm,  # float(max_left + max_right + 1)
    HAS_RIGHT: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_RH: tl.constexpr,
):
    h = tl.program_id(1)
    b = tl.program_id(2)
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < T
    head = (b.to(tl.int64) * T + t) * H + h
    js, fs, live_l, je, fe, live_r = load_window(left_ptr, right_ptr, head, t_ok, t, max_left, max_right, T, HAS_RIGHT)

    events = (b.to(tl.int64) * H + h) * 2 * T
    tl.store(key_ptr + events + t, js, mask=t_ok)
    tl.store(key_ptr + events + T + t, je, mask=t_ok)
    tl.store(frac_ptr + events + t, fs, mask=t_ok)
    tl.store(frac_ptr + events + T + t, fe, mask=t_ok)

    row = b.to(tl.int64) * T * C
    acc_l = tl.zeros((BLOCK_T,), tl.float32)
    acc_r = tl.zeros((BLOCK_T,), tl.float32)
    for r0 in range(0, R, BLOCK_RH):
        c = h * R + r0 + tl.arange(0, BLOCK_RH)
        mask = t_ok[:, None] & ((r0 + tl.arange(0, BLOCK_RH)) < R)[None, :]
        g = tl.load(g_ptr + row + t[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
        xs = tl.load(x_ptr + row + js[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
        acc_l += tl.sum(g * xs, axis=1)
        if HAS_RIGHT:
            xe = tl.load(x_ptr + row + je[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
            acc_r += tl.sum(g * xe, axis=1)
    # d out / d a_l = -x[js] / N and d a_l / d offset_left = -max_left: the signs cancel.
    grad_left = tl.where(live_l, acc_l * max_left / norm, 0.0)
    tl.store(grad_left_ptr + head, grad_left.to(grad_left_ptr.dtype.element_ty), mask=t_ok)
    if HAS_RIGHT:
        grad_right = tl.where(live_r, acc_r * max_right / norm, 0.0)
        tl.store(grad_right_ptr + head, grad_right.to(grad_right_ptr.dtype.element_ty), mask=t_ok)


def grad_x_grid(meta):
    return (cdiv(meta["R"], meta["BLOCK_CH"]), meta["B"] * meta["H"])


GRAD_X_CONFIGS = [
    triton.Config({"BLOCK_T": 32, "BLOCK_S": 32, "BLOCK_C": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 32, "BLOCK_S": 32, "BLOCK_C": 64}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_T": 64, "BLOCK_S": 32, "BLOCK_C": 64}, num_warps=8, num_stages=2),
]


def grad_x_heuristics(args):
    return {"BLOCK_CH": _head_block(args["R"], args["BLOCK_C"])}


@triton.jit
def suffix_from(reverse_cumsum, start, BLOCK_S: tl.constexpr):
    """reverse_cumsum[start[u]] per cell u (0 where start == BLOCK_S): the chunk's sum from start on."""
    index = tl.broadcast_to(tl.minimum(start, BLOCK_S - 1)[:, None], (start.shape[0], reverse_cumsum.shape[1]))
    return tl.where((start < BLOCK_S)[:, None], tl.gather(reverse_cumsum, index, 0), 0.0)


@triton.autotune(configs=GRAD_X_CONFIGS, key=["T", "H", "R"])
@triton.heuristics({"BLOCK_CH": lambda a: grad_x_heuristics(a)["BLOCK_CH"]})
@triton.jit
def talk_bwd_x_kernel(
    g_ptr,  # (B, T, C) grad_out
    order_ptr,  # (B, H, 2T) int64: boundary ids (t for starts, T + t for ends) sorted by cell
    first_ptr,  # (B, H, T + 1) int32: index in the sorted order of the first boundary of cell u
    frac_ptr,  # (B, H, 2T) float32 boundary fractions, by boundary id
    grad_x_ptr,  # (B, T, C), dtype of x
    B,
    T,
    C,
    H,
    R,
    norm,  # float(max_left + max_right + 1)
    BLOCK_T: tl.constexpr,
    BLOCK_S: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_CH: tl.constexpr,
):
    bh = tl.program_id(1)
    b = bh // H
    r = tl.program_id(0) * BLOCK_CH + tl.arange(0, BLOCK_CH)
    r_ok = r < R
    c = (bh % H) * R + r
    events = bh.to(tl.int64) * 2 * T
    first_row = first_ptr + bh.to(tl.int64) * (T + 1)
    row = b.to(tl.int64) * T * C
    carry = tl.zeros((BLOCK_CH,), tl.float64)  # sum of sign * g over boundaries in later tiles
    n_tiles = tl.cdiv(T, BLOCK_T)
    for i in range(0, n_tiles):
        u0 = (n_tiles - 1 - i) * BLOCK_T
        u = u0 + tl.arange(0, BLOCK_T)
        lo = tl.load(first_row + tl.minimum(u, T))
        hi = tl.load(first_row + tl.minimum(u + 1, T))
        p_end = tl.load(first_row + tl.minimum(u0 + BLOCK_T, T))
        above = tl.zeros((BLOCK_T, BLOCK_CH), tl.float32)
        inside = tl.zeros((BLOCK_T, BLOCK_CH), tl.float32)
        tile_total = tl.zeros((BLOCK_CH,), tl.float64)
        for p0 in range(tl.load(first_row + u0), p_end, BLOCK_S):
            p = p0 + tl.arange(0, BLOCK_S)
            p_ok = p < p_end
            ident = tl.load(order_ptr + events + p, mask=p_ok, other=0).to(tl.int32)
            is_end = ident >= T
            src = tl.where(is_end, ident - T, ident)
            frac = tl.load(frac_ptr + events + ident, mask=p_ok, other=0.0)
            mask = p_ok[:, None] & r_ok[None, :]
            g = tl.load(g_ptr + row + src[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
            signed = tl.where(is_end, 1.0, -1.0)[:, None] * g
            weighted = signed * frac[:, None]
            rev_signed = tl.cumsum(signed, axis=0, reverse=True)
            rev_weighted = tl.cumsum(weighted, axis=0, reverse=True)
            start_hi = tl.minimum(tl.maximum(hi - p0, 0), BLOCK_S)
            start_lo = tl.minimum(tl.maximum(lo - p0, 0), BLOCK_S)
            above += suffix_from(rev_signed, start_hi, BLOCK_S)
            inside += suffix_from(rev_weighted, start_lo, BLOCK_S) - suffix_from(rev_weighted, start_hi, BLOCK_S)
            tile_total += tl.sum(signed.to(tl.float64), axis=0)
        grad = (carry[None, :] + above.to(tl.float64)).to(tl.float32) + inside
        mask = (u < T)[:, None] & r_ok[None, :]
        tl.store(grad_x_ptr + row + u[:, None] * C + c[None, :], (grad / norm).to(grad_x_ptr.dtype.element_ty), mask=mask)
        carry += tile_total
