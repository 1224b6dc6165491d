"""The forward convolution kernel, and the tap-by-tap sweep the backward kernels reuse.

One program computes a (BLOCK_T positions) x (BLOCK_H heads) x (BLOCK_R
channels per head) tile of the output of one batch row. Grouping channels by
head lets every tap weight be normalised once per (position, head) and then
broadcast over the R channels of the head, instead of once per channel.
Channel c = h * R + r is the contiguous dimension, so the x tile is read along
it (128-bit loads when R and C are multiples of 16 elements).

The K taps re-read overlapping shifted rows of x; consecutive taps hit the
same lines, which the L1 cache serves, so DRAM sees the x window of the tile
about once. Triton has no user-managed shared memory to stage the window
explicitly. With BAND > 0 in its configuration the kernel instead holds one
head per program and multiplies a band matrix of taps on the tensor cores
(:mod:`.triton_band`); the autotuner chooses between the two per shape.

The sweep :func:`taps_conv` (and ``band_conv``) also runs transposed, for
grad_x inside the fused backward kernels of :mod:`.triton_backward`:
``grad_x[j] = sum_k w[j - k + pad, k] * grad_out[j - k + pad]``, the same sweep
with the shift reversed and the (dynamic) weight taken at the source row,
whose softmax statistics then come from ``lse_tile`` (one float per position
and head) so that no tap is normalised K times. The forward kernel writes
those statistics when the caller will need a backward (``STATS``): it has
them anyway, and the backward would otherwise read every weight row once
more, in a kernel launch of its own, to compute them again.
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl

from ..triton_common import cdiv, dropconnect_keep, next_pow2
from .triton_band import band_conv, keep_requested_body


@triton.jit
def row_logsumexp_by_tap(w_rows_ptr, rows, row_mask, K):
    """log(sum_k exp(logit[row, k])) for a block of weight rows, one tap at a time.

    Loading a (rows x K-chunk) tile instead would be fewer loads, but leaves the
    result in the register layout of that tile, and the tap loop then converts
    each tap through shared memory: 236 instead of 80 registers for the dynamic
    forward kernel in the kernel report.
    """
    m = tl.full(rows.shape, float("-inf"), tl.float32)
    s = tl.zeros(rows.shape, tl.float32)
    for k in range(0, K):
        logit = tl.load(w_rows_ptr + rows * K + k, mask=row_mask, other=0.0).to(tl.float32)
        m_new = tl.maximum(m, logit)
        s = s * tl.exp(m - m_new) + tl.exp(logit - m_new)
        m = m_new
    return m + tl.log(s)


def conv_grid(meta):
    blocks_c = cdiv(meta["H"], meta["BLOCK_H"]) * cdiv(meta["R"], meta["BLOCK_R"])
    return (cdiv(meta["T"], meta["BLOCK_T"]), blocks_c, meta["B"])


# BAND = 0: tap by tap on the CUDA cores; BAND > 0: band matrix in chunks of
# BAND source rows on the tensor cores (tl.dot needs every side >= 16).
CONV_CONFIGS = [
    triton.Config({"BLOCK_T": 32, "BLOCK_C": 64, "BAND": 0}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 64, "BLOCK_C": 64, "BAND": 0}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_T": 64, "BLOCK_C": 128, "BAND": 0}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_T": 64, "BLOCK_C": 64, "BAND": 16}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_T": 64, "BLOCK_C": 32, "BAND": 32}, num_warps=4, num_stages=2),
]


@functools.lru_cache(maxsize=None)
def _head_split(R: int, H: int, block_c: int):
    """(BLOCK_H, BLOCK_R) for a tile of about ``block_c`` channels (cached: it runs at every launch)."""
    block_r = min(next_pow2(R), block_c)
    block_h = max(1, min(next_pow2(H), block_c // block_r))
    return block_h, block_r


@functools.lru_cache(maxsize=None)
def _blocks(R: int, H: int, BLOCK_C: int, BAND: int) -> dict:
    if BAND:
        # One head per program; at least 16 channels for the dot, masked beyond R.
        return {"BLOCK_H": 1, "BLOCK_R": min(max(16, next_pow2(R)), BLOCK_C)}
    block_h, block_r = _head_split(R, H, BLOCK_C)
    return {"BLOCK_H": block_h, "BLOCK_R": block_r}


def conv_heuristics(args):
    return _blocks(args["R"], args["H"], args["BLOCK_C"], args["BAND"])


@triton.autotune(
    configs=CONV_CONFIGS,
    key=["T_BUCKET", "H", "R", "K", "DYNAMIC", "SOFTMAX", "DROPOUT"],
    prune_configs_by={"early_config_prune": keep_requested_body},
)
@triton.heuristics(
    {
        "BLOCK_H": lambda a: conv_heuristics(a)["BLOCK_H"],
        "BLOCK_R": lambda a: conv_heuristics(a)["BLOCK_R"],
    }
)
@triton.jit
def conv_taps_kernel(
    x_ptr,  # (B, T, C)
    w_ptr,  # (H, K) or (B, T, H, K) logits (or taps without SOFTMAX)
    seed_ptr,  # (1,) int64; read only with DROPOUT
    out_ptr,  # (B, T, C), dtype of the result
    lse_ptr,  # (B, T, H) float32 log-sum-exp of every weight row; written only with STATS
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
    DYNAMIC: tl.constexpr,
    SOFTMAX: tl.constexpr,
    DROPOUT: tl.constexpr,
    STATS: tl.constexpr,  # only with DYNAMIC and SOFTMAX
    BLOCK_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BAND: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    pid_t = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = tl.program_id(2)
    blocks_r = tl.cdiv(R, BLOCK_R)
    t0 = pid_t * BLOCK_T
    t = t0 + tl.arange(0, BLOCK_T)
    h_first = (pid_c // blocks_r) * BLOCK_H
    h = h_first + tl.arange(0, BLOCK_H)
    r = (pid_c % blocks_r) * BLOCK_R + tl.arange(0, BLOCK_R)
    t_ok = t < T
    h_ok = h < H
    chan = h[:, None] * R + r[None, :]
    chan_ok = h_ok[:, None] & (r < R)[None, :]

    # 64-bit tile origins; offsets inside a tile stay 32-bit.
    tile = (b.to(tl.int64) * T + t0) * C
    x_tile = x_ptr + tile
    if DYNAMIC:
        w_first = (b.to(tl.int64) * T + t0) * H  # flat row of (b, t0, head 0)
        w_tile = w_ptr + w_first * K
        own_rows = (t - t0)[:, None] * H + h[None, :]  # (BLOCK_T, BLOCK_H)
        own_ok = t_ok[:, None] & h_ok[None, :]
    else:
        w_first = 0
        w_tile = w_ptr
        own_rows = h[None, :]  # (1, BLOCK_H): one kernel for all positions
        own_ok = h_ok[None, :]

    lse = tl.zeros(own_rows.shape, tl.float32)
    if SOFTMAX:
        lse = row_logsumexp_by_tap(w_tile, own_rows, own_ok, K)
    if STATS:
        # The programs of the heads' other channel blocks hold the same values.
        first_of_heads = pid_c % blocks_r == 0
        tl.store(lse_ptr + w_first + own_rows, lse, mask=own_ok & first_of_heads)
    seed = 0
    if DROPOUT:
        seed = tl.load(seed_ptr)

    if BAND > 0:
        acc = band_conv(
            x_tile, w_tile, w_tile, lse, seed, t, t0, t_ok, T, C, H, h, h_first * R + r, r < R, K, padding_l,
            dropout_p, keep_scale, w_first,
            DYNAMIC, False, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BAND,
        )[:, None, :]  # fmt: skip
    else:
        acc = taps_conv(
            x_tile, w_tile, w_tile, lse, seed, t, t0, t_ok, T, C, H, h, h_ok, chan, chan_ok, own_rows, own_ok,
            K, padding_l, dropout_p, keep_scale, w_first, DYNAMIC, False, SOFTMAX, DROPOUT,
            BLOCK_T, BLOCK_H, BLOCK_R,
        )  # fmt: skip

    t_rows = (t - t0)[:, None, None] * C + chan[None, :, :]
    tl.store(out_ptr + tile + t_rows, acc.to(out_ptr.dtype.element_ty), mask=t_ok[:, None, None] & chan_ok[None, :, :])


@triton.jit
def taps_conv(
    x_tile, w_tile, lse_tile, lse, seed, t, t0, t_ok, T, C, H, h, h_ok, chan, chan_ok, own_rows, own_ok, K,
    padding_l, dropout_p, keep_scale, w_first,
    DYNAMIC: tl.constexpr, TRANSPOSED: tl.constexpr, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_R: tl.constexpr,
):  # fmt: skip
    """(BLOCK_T, BLOCK_H, BLOCK_R) float32 output tile, one tap at a time."""
    acc = tl.zeros((BLOCK_T, BLOCK_H, BLOCK_R), tl.float32)
    for k in range(0, K):
        if TRANSPOSED:
            src = t - k + padding_l
        else:
            src = t + k - padding_l
        src_ok = (src >= 0) & (src < T)
        vals = tl.load(
            x_tile + (src - t0)[:, None, None] * C + chan[None, :, :],
            mask=src_ok[:, None, None] & chan_ok[None, :, :],
            other=0.0,
        ).to(tl.float32)

        rows = own_rows
        rows_ok = own_ok
        row_lse = lse
        if DYNAMIC:
            if TRANSPOSED:
                rows = (src - t0)[:, None] * H + h[None, :]
                rows_ok = src_ok[:, None] & h_ok[None, :]
                if SOFTMAX:
                    row_lse = tl.load(lse_tile + rows, mask=rows_ok, other=0.0)
        tap = tl.load(w_tile + rows * K + k, mask=rows_ok, other=0.0).to(tl.float32)
        if SOFTMAX:
            tap = tl.exp(tap - row_lse)
        if DROPOUT:
            keep = dropconnect_keep(seed, (w_first + rows) * K + k, dropout_p)
            tap = tl.where(keep, tap * keep_scale, 0.0)
        acc += tap[:, :, None] * vals
    return acc
