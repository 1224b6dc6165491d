"""The backward pass of dynamic conv in one kernel: both gradients from one read of grad_out.

Each program owns BLOCK_T positions of one head of one batch row and writes
their rows of the logits' gradient (the bodies of :mod:`.triton_grad_w`) and
their channels of grad_x (the transposed sweep of :mod:`.triton_conv`, one
BLOCK_R chunk of the head at a time). Both read the same grad_out rows, the
second time from cache.

Why one kernel: run separately, the weight-gradient kernel and the transposed
conv each stream grad_out from memory. At the shapes that matter (B = 8,
T = 8192, C = 1024, K = 3) that is 4 activation-sized tensors of traffic in
the backward where 3 are needed (read grad_out and x, write grad_x), so the
forward + backward could reach at most 82% of the memory-bandwidth roofline
even with both kernels at full bandwidth. Here each is streamed once.

grad_x needs the softmax statistics of source rows owned by neighbouring
programs, so a small kernel first writes the log-sum-exp of every weight row
(one float per position and head, about 1% of the traffic at K = 3).
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl

from ..triton_common import cdiv, next_pow2
from .triton_band import band_conv, keep_requested_body
from .triton_conv import taps_conv
from .triton_grad_w import DYNAMIC_GRAD_W_CONFIGS, band_grad_w, block_heuristics, row_logsumexp, taps_grad_w


@functools.lru_cache(maxsize=None)
def lse_blocks(K: int) -> dict:
    block_k = min(next_pow2(K), 32)
    return {"BLOCK_K": block_k, "BLOCK_ROWS": max(16, 2048 // block_k)}


def lse_grid(meta):
    return (cdiv(meta["ROWS"], meta["BLOCK_ROWS"]),)


@triton.heuristics({n: (lambda a, n=n: lse_blocks(a["K"])[n]) for n in ("BLOCK_K", "BLOCK_ROWS")})
@triton.jit
def row_lse_kernel(w_ptr, lse_ptr, ROWS, K, BLOCK_ROWS: tl.constexpr, BLOCK_K: tl.constexpr):
    """lse[row] = log(sum_k exp(logit[row, k])) for the ROWS = B * T * H weight rows."""
    rows = tl.program_id(0).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    ok = rows < ROWS
    lse = row_logsumexp(w_ptr, rows[:, None], ok[:, None], K, BLOCK_K)
    tl.store(lse_ptr + rows, tl.reshape(lse, (BLOCK_ROWS,)), mask=ok)


def backward_grid(meta):
    return (cdiv(meta["T"], meta["BLOCK_T"]), meta["H"], meta["B"])


@triton.autotune(
    configs=DYNAMIC_GRAD_W_CONFIGS,
    key=["T_BUCKET", "H", "R", "K", "SOFTMAX", "DROPOUT"],
    prune_configs_by={"early_config_prune": keep_requested_body},
)
@block_heuristics(("BLOCK_T", "BLOCK_K", "BLOCK_R"))
@triton.jit
def dynamic_backward_kernel(
    x_ptr,  # (B, T, C)
    g_ptr,  # (B, T, C) grad_out
    w_ptr,  # (B, T, H, K) logits (or taps without SOFTMAX)
    lse_ptr,  # (B, T, H) float32 from row_lse_kernel; read only with SOFTMAX
    seed_ptr,  # (1,) int64; read only with DROPOUT
    gx_ptr,  # (B, T, C) grad_x, dtype of x
    gw_ptr,  # (B, T, H, K) gradient of the logits, dtype of the weight
    B,
    T,
    T_BUCKET,  # autotune key only: next power of two of T
    C,
    H,
    R,
    K,
    padding_l,
    dropout_p,
    keep_scale,
    SOFTMAX: tl.constexpr,
    DROPOUT: tl.constexpr,
    TILE: tl.constexpr,
    MAX_BLOCK_R: tl.constexpr,
    BAND: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    t0 = tl.program_id(0) * BLOCK_T
    h = tl.program_id(1)
    b = tl.program_id(2)
    t = t0 + tl.arange(0, BLOCK_T)
    t_ok = t < T
    tile = (b.to(tl.int64) * T + t0) * C  # 64-bit tile origins; offsets inside stay 32-bit
    x_tile = x_ptr + tile
    g_tile = g_ptr + tile
    w_first = (b.to(tl.int64) * T + t0) * H  # flat row of (b, t0, head 0)
    w_tile = w_ptr + w_first * K
    lse_tile = lse_ptr + w_first
    rows = (t - t0) * H + h
    seed = 0
    if DROPOUT:
        seed = tl.load(seed_ptr)
    lse = tl.zeros((BLOCK_T,), tl.float32)
    if SOFTMAX:
        lse = tl.load(lse_tile + rows, mask=t_ok, other=0.0)

    if BAND > 0:
        band_grad_w(
            x_tile, g_tile, w_tile, gw_ptr + w_first * K, lse, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l,
            dropout_p, keep_scale, w_first, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BAND,
        )  # fmt: skip
    else:
        taps_grad_w(
            x_tile, g_tile, w_tile, gw_ptr + w_first * K, lse, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l,
            dropout_p, keep_scale, w_first, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_K, BLOCK_R,
        )  # fmt: skip

    # grad_x of the same rows; the transposed sweep takes each tap's weight and
    # statistics at its source row, so the own-row arguments below are unused.
    heads = h + tl.arange(0, 1)
    own_rows = rows[:, None]
    own_ok = t_ok[:, None]
    for r0 in range(0, R, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        r_ok = r < R
        chan = h * R + r
        if BAND > 0:
            acc = band_conv(
                g_tile, w_tile, lse_tile, lse, seed, t, t0, t_ok, T, C, H, heads, chan, r_ok, K, padding_l,
                dropout_p, keep_scale, w_first, True, True, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BAND,
            )  # fmt: skip
        else:
            acc = tl.reshape(
                taps_conv(
                    g_tile, w_tile, lse_tile, lse[:, None], seed, t, t0, t_ok, T, C, H, heads, heads == h,
                    chan[None, :], r_ok[None, :], own_rows, own_ok, K, padding_l, dropout_p, keep_scale, w_first,
                    True, True, SOFTMAX, DROPOUT, BLOCK_T, 1, BLOCK_R,
                ),
                (BLOCK_T, BLOCK_R),
            )  # fmt: skip
        tl.store(
            gx_ptr + tile + (t - t0)[:, None] * C + chan[None, :],
            acc.to(gx_ptr.dtype.element_ty),
            mask=t_ok[:, None] & r_ok[None, :],
        )
