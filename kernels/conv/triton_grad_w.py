"""Weight-gradient bodies of the convolution, and the lightweight reduction kernel.

Both ops need, per head h and tap k, dots of grad_out with shifted x:
``d[t, k] = sum_r grad_out[t, h, r] * x[t + k - pad, h, r]``. :func:`tap_dots`
computes a (BLOCK_T, BLOCK_K) block of them from a (BLOCK_T, BLOCK_K, BLOCK_R)
window of x, reading along the contiguous channels of the head.

* Dynamic conv: d is the gradient of the per-position taps directly. The
  bodies here (:func:`taps_grad_w`, :func:`band_grad_w`) give the rows (b, t, h)
  of one program DropConnect and the softmax backward ``p * (dn - sum_k dn * p)``,
  which needs all K taps of a row. K beyond one BLOCK_K chunk takes a first pass
  for ``sum_k dn * p`` and recomputes the other chunks in a second, so registers
  stay bounded for any K.
* Lightweight conv: the taps are shared, so d is summed over b and t too.
  Programs write per-(batch, time-split, head) partial sums to a float32 buffer
  and :func:`light_grad_w_reduce_kernel` adds them up in a fixed order: no
  atomics, so for a given launch configuration the result is bitwise
  reproducible.

The kernels that run these bodies, each together with grad_x, are in
:mod:`.triton_backward`. The dynamic gradient has a second body, chosen by
configurations with BAND > 0: the dots of a block of positions come from
``tl.dot`` (grad_out against the band of source rows, :mod:`.triton_band`)
instead of K products per channel.
"""

from __future__ import annotations

import triton
import triton.language as tl

from ..triton_common import dropconnect_keep, next_pow2
from .triton_band import band_grad_dots, band_window


@triton.jit
def tap_dots(
    x_tile, g_tile, t, t0, t_end, T, C, h, R, K, k0, padding_l, BLOCK_K: tl.constexpr, BLOCK_R: tl.constexpr
):
    """d[t, k0 + j] for the block rows t < t_end of head h (0 elsewhere); tiles start at row t0."""
    kk = k0 + tl.arange(0, BLOCK_K)
    src = t[:, None] + kk[None, :] - padding_l
    t_ok = t < t_end
    src_ok = (src >= 0) & (src < T) & (kk < K)[None, :] & t_ok[:, None]
    acc = tl.zeros((t.shape[0], BLOCK_K), tl.float32)
    for r0 in range(0, R, BLOCK_R):
        chan = h * R + r0 + tl.arange(0, BLOCK_R)
        r_ok = (r0 + tl.arange(0, BLOCK_R)) < R
        g = tl.load(
            g_tile + (t - t0)[:, None] * C + chan[None, :], mask=t_ok[:, None] & r_ok[None, :], other=0.0
        ).to(tl.float32)
        xv = tl.load(
            x_tile + (src - t0)[:, :, None] * C + chan[None, None, :],
            mask=src_ok[:, :, None] & r_ok[None, None, :],
            other=0.0,
        ).to(tl.float32)
        acc += tl.sum(g[:, None, :] * xv, axis=2)
    return acc


@triton.jit
def through_dropconnect(d, seed, flat_index, dropout_p, keep_scale, DROPOUT: tl.constexpr):
    """Gradient w.r.t. the taps before DropConnect, from the gradient after it."""
    if DROPOUT:
        d = tl.where(dropconnect_keep(seed, flat_index, dropout_p), d * keep_scale, 0.0)
    return d


@triton.jit
def taps_grad_w(
    x_tile, g_tile, w_tile, gw_tile, lse, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l, dropout_p, keep_scale,
    w_first, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
):  # fmt: skip
    """Rows t of head h of the logits' gradient, BLOCK_K taps at a time."""
    rows2 = ((t - t0) * H + h)[:, None]  # weight rows relative to w_tile
    dot = tl.zeros((BLOCK_T,), tl.float32)
    if SOFTMAX:
        # sum_k dn * p over all K; chunks after the first only when K > BLOCK_K.
        for k0 in range(BLOCK_K, K, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            idx = rows2 * K + kk[None, :]
            ok = t_ok[:, None] & (kk < K)[None, :]
            d = tap_dots(x_tile, g_tile, t, t0, T, T, C, h, R, K, k0, padding_l, BLOCK_K, BLOCK_R)
            d = through_dropconnect(d, seed, w_first * K + idx, dropout_p, keep_scale, DROPOUT)
            p = tl.exp(tl.load(w_tile + idx, mask=ok, other=float("-inf")).to(tl.float32) - lse[:, None])
            dot += tl.sum(d * p, axis=1)

    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        idx = rows2 * K + kk[None, :]
        ok = t_ok[:, None] & (kk < K)[None, :]
        d = tap_dots(x_tile, g_tile, t, t0, T, T, C, h, R, K, k0, padding_l, BLOCK_K, BLOCK_R)
        d = through_dropconnect(d, seed, w_first * K + idx, dropout_p, keep_scale, DROPOUT)
        if SOFTMAX:
            p = tl.exp(tl.load(w_tile + idx, mask=ok, other=float("-inf")).to(tl.float32) - lse[:, None])
            if k0 == 0:
                dot += tl.sum(d * p, axis=1)
            d = p * (d - dot[:, None])
        tl.store(gw_tile + idx, d.to(gw_tile.dtype.element_ty), mask=ok)


@triton.jit
def band_grad_chunk(
    x_tile, g_tile, w_tile, lse, seed, rows, t, t0, t_ok, s0, T, C, h, R, K, padding_l, dropout_p, keep_scale,
    w_first, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    """(d, p, offsets, ok) for band columns s0 .. s0 + BLOCK_S - 1 of rows t.

    Tap k of row t is column s = t + k - padding_l, so everything is read and
    written along the band (k = s - t + padding_l), masked to it: d is the
    gradient of the taps before DropConnect, p their softmax (0 without it),
    offsets their place in the weight relative to ``w_tile``.
    """
    s = s0 + tl.arange(0, BLOCK_S)
    s_ok = (s >= 0) & (s < T)
    k = s[None, :] - t[:, None] + padding_l
    ok = (k >= 0) & (k < K) & t_ok[:, None]  # taps reading padding have a gradient too
    offsets = rows * K + k
    d = band_grad_dots(x_tile, g_tile, t, t0, t_ok, s, s_ok, T, C, h, R, BLOCK_T, BLOCK_R, BLOCK_S)
    d = through_dropconnect(d, seed, w_first * K + offsets, dropout_p, keep_scale, DROPOUT)
    p = tl.zeros(d.shape, tl.float32)
    if SOFTMAX:
        p = tl.exp(tl.load(w_tile + offsets, mask=ok, other=float("-inf")).to(tl.float32) - lse[:, None])
    return d, p, offsets, ok


@triton.jit
def band_grad_w(
    x_tile, g_tile, w_tile, gw_tile, lse, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l, dropout_p, keep_scale,
    w_first, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    """Rows t of head h of the logits' gradient from band blocks of dots.

    With the softmax, a first sweep sums d * p over each row and a second
    recomputes the dots (tensor-core work) rather than keeping them.
    """
    rows = ((t - t0) * H + h)[:, None]  # weight rows relative to w_tile
    lo, end = band_window(t0, K, padding_l, BLOCK_T, False)
    dot = tl.zeros((BLOCK_T,), tl.float32)
    if SOFTMAX:
        for s0 in range(lo, end, BLOCK_S):
            d, p, _, _ = band_grad_chunk(
                x_tile, g_tile, w_tile, lse, seed, rows, t, t0, t_ok, s0, T, C, h, R, K, padding_l, dropout_p,
                keep_scale, w_first, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BLOCK_S,
            )  # fmt: skip
            dot += tl.sum(d * p, axis=1)
    for s0 in range(lo, end, BLOCK_S):
        d, p, offsets, ok = band_grad_chunk(
            x_tile, g_tile, w_tile, lse, seed, rows, t, t0, t_ok, s0, T, C, h, R, K, padding_l, dropout_p,
            keep_scale, w_first, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BLOCK_S,
        )  # fmt: skip
        if SOFTMAX:
            d = p * (d - dot[:, None])
        tl.store(gw_tile + offsets, d.to(gw_tile.dtype.element_ty), mask=ok)


def light_reduce_heuristics(args):
    block_k = next_pow2(args["K"])
    return {"BLOCK_K": block_k, "BLOCK_P": max(1, min(64, 4096 // block_k))}


@triton.heuristics(
    {
        "BLOCK_K": lambda a: light_reduce_heuristics(a)["BLOCK_K"],
        "BLOCK_P": lambda a: light_reduce_heuristics(a)["BLOCK_P"],
    }
)
@triton.jit
def light_grad_w_reduce_kernel(
    part_ptr,  # (P, H, K) float32 partial sums
    w_ptr,  # (H, K) logits
    seed_ptr,
    gw_ptr,  # (H, K) gradient of the logits
    P,
    H,
    K,
    dropout_p,
    keep_scale,
    SOFTMAX: tl.constexpr,
    DROPOUT: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    h = tl.program_id(0)
    kk = tl.arange(0, BLOCK_K)
    k_ok = kk < K
    acc = tl.zeros((BLOCK_P, BLOCK_K), tl.float32)
    for p0 in range(0, P, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        acc += tl.load(
            part_ptr + (p[:, None] * H + h) * K + kk[None, :], mask=(p < P)[:, None] & k_ok[None, :], other=0.0
        )
    d = tl.sum(acc, axis=0)
    seed = 0
    if DROPOUT:
        seed = tl.load(seed_ptr)
    d = through_dropconnect(d, seed, h * K + kk, dropout_p, keep_scale, DROPOUT)
    if SOFTMAX:
        logits = tl.load(w_ptr + h * K + kk, mask=k_ok, other=float("-inf")).to(tl.float32)
        e = tl.exp(logits - tl.max(logits, axis=0))
        prob = e / tl.sum(e, axis=0)
        d = prob * (d - tl.sum(d * prob, axis=0))
    tl.store(gw_ptr + h * K + kk, d.to(gw_ptr.dtype.element_ty), mask=k_ok)
