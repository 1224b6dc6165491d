"""The backward pass of each conv op in one kernel: both gradients from one read of grad_out.

* ``dynamic_backward_kernel``: a program owns BLOCK_T positions of one head
  of one batch row and writes their rows of the logits' gradient (the bodies
  of :mod:`.triton_grad_w`) and their grad_x (the transposed sweep of
  :mod:`.triton_conv`, one BLOCK_R chunk of the head at a time); the second
  read of grad_out comes from cache. grad_x needs the softmax statistics of
  source rows owned by neighbouring programs, so it reads the log-sum-exp of
  every weight row that the forward kernel saved (one float per position and
  head).
* ``light_backward_kernel``: two programs per LIGHT_SPLIT positions of one
  head, adjacent in launch order so that they run together and grad_out
  comes from DRAM once: one writes float32 partial sums of the tap products
  (``light_grad_w_reduce_kernel`` adds them up in a fixed order), the other
  grad_x. The split is a constant, not a tuning parameter, so that the
  partial buffer does not depend on the configuration.

Why one kernel: run separately, the weight-gradient kernel and the transposed
conv each stream grad_out from memory. At the shapes that matter (B = 8,
T = 8192, C = 1024, K = 3) that is 4 activation-sized tensors of traffic in
the backward where 3 are needed (read grad_out and x, write grad_x), so the
forward + backward could reach at most 82% of the memory-bandwidth roofline
even with both kernels at full bandwidth. Here each is streamed once.

Configurations: TILE bounds the largest block a program holds, (BLOCK_T,
BLOCK_K, BLOCK_R) products tap by tap or (BLOCK_T, BAND) dots in the band body
(BAND > 0; tl.dot needs every side >= 16). The lightweight weight gradient is
always tap by tap (a sum along the band's diagonals does not map onto tl.dot);
there BAND only selects the body of grad_x.
"""

from __future__ import annotations

import functools

import triton
import triton.language as tl

from ..triton_common import cdiv, next_pow2
from .triton_band import band_conv, keep_requested_body
from .triton_conv import row_logsumexp_by_tap, taps_conv
from .triton_grad_w import band_grad_w, tap_dots, taps_grad_w

BACKWARD_CONFIGS = [
    triton.Config({"TILE": 4096, "MAX_BLOCK_R": 32, "BAND": 0}, num_warps=4, num_stages=2),
    triton.Config({"TILE": 8192, "MAX_BLOCK_R": 64, "BAND": 0}, num_warps=8, num_stages=2),
    triton.Config({"TILE": 16384, "MAX_BLOCK_R": 32, "BAND": 0}, num_warps=8, num_stages=2),
    triton.Config({"TILE": 2048, "MAX_BLOCK_R": 32, "BAND": 32}, num_warps=4, num_stages=2),
    triton.Config({"TILE": 1024, "MAX_BLOCK_R": 64, "BAND": 16}, num_warps=4, num_stages=2),
]
_KEY = ["T_BUCKET", "H", "R", "K", "SOFTMAX", "DROPOUT"]

# Positions per lightweight program: a power of two >= 16 (it is the grad_x
# tile, and a side of tl.dot in the band body). The partial buffer holds
# B * ceil(T / LIGHT_SPLIT) * H * K floats: 1/64 of a dynamic weight's elements.
LIGHT_SPLIT = 64


def _k_r_blocks(K: int, R: int, MAX_BLOCK_R: int, BAND: int):
    block_r = max(16, next_pow2(R)) if BAND else next_pow2(R)  # tl.dot needs >= 16, masked beyond R
    return min(next_pow2(K), 32), min(block_r, MAX_BLOCK_R)


def _tap_rows(TILE: int, block_k: int, block_r: int, cap: int) -> int:
    """Positions per block of tap products: (rows, BLOCK_K, BLOCK_R) within TILE."""
    return max(1, min(cap, TILE // (block_k * block_r)))


@functools.lru_cache(maxsize=None)
def dynamic_blocks(K: int, R: int, TILE: int, MAX_BLOCK_R: int, BAND: int) -> dict:
    """BLOCK_T: positions per program (cached: it runs at every launch)."""
    block_k, block_r = _k_r_blocks(K, R, MAX_BLOCK_R, BAND)
    block_t = TILE // BAND if BAND else _tap_rows(TILE, block_k, block_r, 128)
    return {"BLOCK_T": block_t, "BLOCK_K": block_k, "BLOCK_R": block_r}


@functools.lru_cache(maxsize=None)
def light_blocks(K: int, R: int, TILE: int, MAX_BLOCK_R: int, BAND: int, SPLIT: int) -> dict:
    """DOTS_T: positions per block of tap products; a program holds SPLIT positions."""
    block_k, block_r = _k_r_blocks(K, R, MAX_BLOCK_R, BAND)
    return {"DOTS_T": _tap_rows(TILE, block_k, block_r, SPLIT), "BLOCK_K": block_k, "BLOCK_R": block_r}


def _config(a):
    return a["K"], a["R"], a["TILE"], a["MAX_BLOCK_R"], a["BAND"]


def dynamic_heuristics(a):
    return dynamic_blocks(*_config(a))


def light_heuristics(a):
    return light_blocks(*_config(a), a["SPLIT"])


@triton.jit
def transposed_sweep(
    g_tile, gx_tile, w_tile, lse_tile, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l, dropout_p, keep_scale,
    w_first,
    DYNAMIC: tl.constexpr, SOFTMAX: tl.constexpr, DROPOUT: tl.constexpr, BAND: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_R: tl.constexpr,
):  # fmt: skip
    """Write grad_x of positions t of head h: the conv of grad_out run transposed, BLOCK_R channels at a time.

    Dynamic taps are taken at their source rows, with the statistics of those
    rows from ``lse_tile``; the head's shared lightweight taps are normalised
    here, once per program.
    """
    heads = h + tl.arange(0, 1)
    own_rows = heads[None, :]  # (1, 1); the dynamic sweep replaces it by each tap's source rows
    own_ok = own_rows < H
    own_lse = tl.zeros((1, 1), tl.float32)
    if SOFTMAX and not DYNAMIC:
        own_lse = row_logsumexp_by_tap(w_tile, own_rows, own_ok, K)
    for r0 in range(0, R, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R)
        r_ok = r < R
        chan = h * R + r
        if BAND > 0:
            acc = band_conv(
                g_tile, w_tile, lse_tile, own_lse, seed, t, t0, t_ok, T, C, H, heads, chan, r_ok, K, padding_l,
                dropout_p, keep_scale, w_first, DYNAMIC, True, SOFTMAX, DROPOUT, BLOCK_T, BLOCK_R, BAND,
            )  # fmt: skip
        else:
            acc = tl.reshape(
                taps_conv(
                    g_tile, w_tile, lse_tile, own_lse, seed, t, t0, t_ok, T, C, H, heads, heads < H, chan[None, :],
                    r_ok[None, :], own_rows, own_ok, K, padding_l, dropout_p, keep_scale, w_first,
                    DYNAMIC, True, SOFTMAX, DROPOUT, BLOCK_T, 1, BLOCK_R,
                ),
                (BLOCK_T, BLOCK_R),
            )  # fmt: skip
        tl.store(
            gx_tile + (t - t0)[:, None] * C + chan[None, :],
            acc.to(gx_tile.dtype.element_ty),
            mask=t_ok[:, None] & r_ok[None, :],
        )


def backward_grid(meta):
    return (cdiv(meta["T"], meta["BLOCK_T"]), meta["H"], meta["B"])


@triton.autotune(configs=BACKWARD_CONFIGS, key=_KEY, prune_configs_by={"early_config_prune": keep_requested_body})
@triton.heuristics({n: (lambda a, n=n: dynamic_heuristics(a)[n]) for n in ("BLOCK_T", "BLOCK_K", "BLOCK_R")})
@triton.jit
def dynamic_backward_kernel(
    x_ptr,  # (B, T, C)
    g_ptr,  # (B, T, C) grad_out
    w_ptr,  # (B, T, H, K) logits (or taps without SOFTMAX)
    lse_ptr,  # (B, T, H) float32 saved by the forward kernel (STATS); read only with SOFTMAX
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

    transposed_sweep(
        g_tile, gx_ptr + tile, w_tile, lse_tile, seed, t, t0, t_ok, T, C, H, h, R, K, padding_l, dropout_p,
        keep_scale, w_first, True, SOFTMAX, DROPOUT, BAND, BLOCK_T, BLOCK_R,
    )  # fmt: skip


def light_grid(meta):
    return (2 * cdiv(meta["T"], meta["SPLIT"]), meta["H"], meta["B"])


@triton.autotune(configs=BACKWARD_CONFIGS, key=_KEY, prune_configs_by={"early_config_prune": keep_requested_body})
@triton.heuristics({n: (lambda a, n=n: light_heuristics(a)[n]) for n in ("DOTS_T", "BLOCK_K", "BLOCK_R")})
@triton.jit
def light_backward_kernel(
    x_ptr,  # (B, T, C)
    g_ptr,  # (B, T, C) grad_out
    w_ptr,  # (H, K) logits (or taps without SOFTMAX)
    seed_ptr,  # (1,) int64; read only with DROPOUT
    gx_ptr,  # (B, T, C) grad_x, dtype of x
    part_ptr,  # (B * ceil(T / SPLIT), H, K) float32 partial dots
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
    SPLIT: tl.constexpr,
    TILE: tl.constexpr,
    MAX_BLOCK_R: tl.constexpr,
    BAND: tl.constexpr,
    DOTS_T: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    # Two programs per split, side by side in launch order: the first sums
    # the tap products, the second writes grad_x. They run at the same time,
    # so the second read of grad_out comes from L2. (One program doing both
    # kept values alive across the first loop, and ptxas put them on the
    # stack at some dtypes and warp counts.)
    split = tl.program_id(0) // 2
    h = tl.program_id(1)
    b = tl.program_id(2)
    row0 = split * SPLIT
    row_end = tl.minimum(row0 + SPLIT, T)
    tile = (b.to(tl.int64) * T + row0) * C  # 64-bit origin; offsets within the split stay 32-bit
    x_tile = x_ptr + tile
    g_tile = g_ptr + tile

    if tl.program_id(0) % 2 == 0:  # partial sums of the tap products of the split
        part_row = (b * (tl.num_programs(0) // 2) + split) * H + h
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            acc = tl.zeros((DOTS_T, BLOCK_K), tl.float32)
            for t0 in range(row0, row_end, DOTS_T):
                t = t0 + tl.arange(0, DOTS_T)
                acc += tap_dots(
                    x_tile + (t0 - row0) * C, g_tile + (t0 - row0) * C, t, t0, row_end, T, C, h, R, K, k0, padding_l,
                    BLOCK_K, BLOCK_R,
                )  # fmt: skip
            tl.store(part_ptr + part_row * K + kk, tl.sum(acc, axis=0), mask=kk < K)
    else:  # grad_x of the split: the transposed conv with the head's shared taps
        seed = 0
        if DROPOUT:
            seed = tl.load(seed_ptr)
        t = row0 + tl.arange(0, SPLIT)
        transposed_sweep(
            g_tile, gx_ptr + tile, w_ptr, w_ptr, seed, t, row0, t < T, T, C, H, h, R, K, padding_l, dropout_p,
            keep_scale, 0, False, SOFTMAX, DROPOUT, BAND, SPLIT, BLOCK_R,
        )  # fmt: skip
