"""Band-matrix bodies of the convolution kernels: the taps as a matrix, the sum on tensor cores.

For one head, the K taps of BLOCK_T consecutive positions form a band matrix
``A[t, s] = tap[t, s - t + padding_l]`` over the source rows s the tile reads,
so the convolution of the tile is ``A @ x[s, channels]`` and the dots of the
weight gradient are ``grad_out[t, channels] @ x[s, channels]^T`` read along the
band. The source rows are walked in chunks of BLOCK_S columns: each chunk is one
``tl.dot``, and only the chunks the band crosses are visited.

Why: the tap-by-tap kernels spend K loads and K multiply-adds per output
element on the CUDA cores, which at K = 31 made them bound by instructions, not
memory (10% of the H200's bandwidth). Here the CUDA cores only build A, about
(BLOCK_T + K - 1) / R elements of it per output element (a load, an exp and a
select each), and the products go to the tensor cores, which waste the zeros
outside the band at no cost that matters.

Precision: the operands are converted to float32 and multiplied as TF32 for
16-bit inputs (x is exact in TF32; only the normalised taps are rounded, to 11
bits, finer than the output's own rounding) and as three TF32 products
("tf32x3", about 22 bits) for float32 inputs, whose results must stay within
1e-5 of float64. The autotuner picks this body or the tap-by-tap one per shape.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .. import backend
from ..triton_common import dropconnect_keep


def keep_requested_body(configs, named_args=None, **kwargs):
    """``early_config_prune`` of the conv autotuners: the configurations of the body
    ``LIGHTCONV_CONV_BODY`` asks for (all of them for ``auto``)."""
    body = backend.conv_body()
    if body == "auto":
        return configs
    return [c for c in configs if bool(c.kwargs["BAND"]) == (body == "band")]


@triton.jit
def band_dot(a, b, acc, FP32_INPUTS: tl.constexpr):
    """acc + a @ b with a float32 result as close to float32 as the inputs need (see module doc)."""
    if FP32_INPUTS:
        return tl.dot(a, b, acc, input_precision="tf32x3")
    else:
        return tl.dot(a, b, acc, input_precision="tf32")


@triton.jit
def band_window(t0, K, padding_l, BLOCK_T: tl.constexpr, TRANSPOSED: tl.constexpr):
    """(first, end) of the source rows a tile of positions t0 .. t0 + BLOCK_T - 1 reads."""
    if TRANSPOSED:
        lo = t0 + padding_l - (K - 1)
    else:
        lo = t0 - padding_l
    return lo, lo + BLOCK_T + K - 1


@triton.jit
def band_taps(
    w_tile, lse_tile, own_lse, seed, t, t0, s, t_ok, s_ok, H, h, K, padding_l, dropout_p, keep_scale, w_first,
    DYNAMIC: tl.constexpr, TRANSPOSED: tl.constexpr, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr,
):  # fmt: skip
    """(BLOCK_T, BLOCK_S) block of the band: the normalised tap linking output t to source row s, or 0.

    The tap's weight row is that of the output (forward) or of the source row
    (transposed, where tap k of row s lands on t = s + k - padding_l). h is a
    one-element vector: band programs hold one head.
    """
    if TRANSPOSED:
        k = t[:, None] - s[None, :] + padding_l
        if DYNAMIC:
            rows = (s - t0)[None, :] * H + h[:, None]  # (1, BLOCK_S)
        else:
            rows = h[:, None]
    else:
        k = s[None, :] - t[:, None] + padding_l
        if DYNAMIC:
            rows = (t - t0)[:, None] * H + h[None, :]  # (BLOCK_T, 1)
        else:
            rows = h[:, None]
    ok = (k >= 0) & (k < K) & t_ok[:, None] & s_ok[None, :]
    tap = tl.load(w_tile + rows * K + k, mask=ok, other=0.0).to(tl.float32)
    if SOFTMAX:
        if DYNAMIC and TRANSPOSED:
            row_lse = tl.load(lse_tile + rows, mask=s_ok[None, :], other=0.0)
        else:
            row_lse = own_lse
        tap = tl.exp(tap - row_lse)
    if DROPOUT:
        tap = tl.where(dropconnect_keep(seed, (w_first + rows) * K + k, dropout_p), tap * keep_scale, 0.0)
    return tl.where(ok, tap, 0.0)


@triton.jit
def band_conv(
    x_tile, w_tile, lse_tile, own_lse, seed, t, t0, t_ok, T, C, H, h, chan, chan_ok, K, padding_l, dropout_p,
    keep_scale, w_first,
    DYNAMIC: tl.constexpr, TRANSPOSED: tl.constexpr, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr,
):  # fmt: skip
    """(BLOCK_T, BLOCK_R) float32 output tile of one head: sum over the band chunks of A @ x."""
    fp32_inputs: tl.constexpr = x_tile.dtype.element_ty == tl.float32
    lo, end = band_window(t0, K, padding_l, BLOCK_T, TRANSPOSED)
    acc = tl.zeros((BLOCK_T, BLOCK_R), tl.float32)
    for s0 in range(lo, end, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        s_ok = (s >= 0) & (s < T)
        a = band_taps(
            w_tile, lse_tile, own_lse, seed, t, t0, s, t_ok, s_ok, H, h, K, padding_l, dropout_p, keep_scale,
            w_first, DYNAMIC, TRANSPOSED, SOFTMAX, DROPOUT,
        )  # fmt: skip
        xs = tl.load(
            x_tile + (s - t0)[:, None] * C + chan[None, :], mask=s_ok[:, None] & chan_ok[None, :], other=0.0
        ).to(tl.float32)
        acc = band_dot(a, xs, acc, fp32_inputs)
    return acc


@triton.jit
def band_grad_dots(
    x_tile, g_tile, t, t0, t_ok, s, s_ok, T, C, h, R, BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr,
    BLOCK_S: tl.constexpr,
):  # fmt: skip
    """D[t, s] = sum_r grad_out[t, h, r] * x[s, h, r] for a (BLOCK_T, BLOCK_S) block; h is a scalar."""
    fp32_inputs: tl.constexpr = x_tile.dtype.element_ty == tl.float32
    acc = tl.zeros((BLOCK_T, BLOCK_S), tl.float32)
    for r0 in range(0, R, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        r_ok = r < R
        chan = h * R + r
        g = tl.load(g_tile + (t - t0)[:, None] * C + chan[None, :], mask=t_ok[:, None] & r_ok[None, :], other=0.0)
        xs = tl.load(x_tile + (s - t0)[:, None] * C + chan[None, :], mask=s_ok[:, None] & r_ok[None, :], other=0.0)
        acc = band_dot(g.to(tl.float32), tl.trans(xs.to(tl.float32)), acc, fp32_inputs)
    return acc
