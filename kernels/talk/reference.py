"""PyTorch path of TaLK convolution (CPU, and the Triton kernels' reference).

Notation as in :func:`lightconv_kernels.talk.op.talk_conv`: x is (B, T, C) with
H heads of R = C // H channels, P[j] = sum_{u<j} x[u] and P~ its linear
interpolation. A window boundary at real position a is kept as (j, f) with
j = min(floor(a), T - 1) and f = a - j in [0, 1], so that P~(a) = P[j] + f * x[j]
for every a in [0, T] (a = T becomes (T - 1, 1)).

Precision. A global float32 prefix sum has entries as large as T * mean|x|,
and a short window is the difference of two of them: at T = 10,000 with
windows of a few positions that alone costs up to ~1e-3 relative error. Here P is split as P[j] = carry[j // L] + local[j]:
``local`` is the prefix inside a block of L = SCAN_BLOCK positions (float32,
never larger than L * max|x|) and ``carry`` the sum of all earlier blocks,
accumulated in float64 (one number per block and channel, so it costs T / L
of the memory of x). A window sum is then carry[ke] - carry[ks] in float64
plus a difference of two block-local float32 values: the error stays about
L * 2^-24 relative to the window, independent of T and of the data's mean.

Memory is linear in T: every intermediate is (B, T, C), (B, T, H) or
(B, T / L, C); boundaries are gathered, never expanded into T x T weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCAN_BLOCK = 64


def split_position(shift: torch.Tensor, T: int):
    """t + shift clamped to [0, T - 1], as (integer part, fraction, not clamped).

    ``shift`` is (B, T, H) float32; t is the position along dim 1. The integer
    part of t + shift is t + floor(shift): adding t in integers keeps the
    fraction as exact as ``shift`` itself, which a float32 sum t + shift would
    not be for large t. ``live`` is False where the clamp binds strictly, i.e.
    the gradient through the clamp passes on the closed interval [0, T - 1]
    (as for ``torch.clamp``).
    """
    whole = torch.floor(shift)
    frac = shift - whole
    t = torch.arange(shift.shape[1], device=shift.device).view(1, -1, 1)
    pos = t + whole.long()
    low = pos < 0
    high = (pos > T - 1) | ((pos == T - 1) & (frac > 0))
    live = ~(low | high)
    return pos.clamp(0, T - 1), torch.where(live, frac, torch.zeros_like(frac)), live


def window_bounds(offset_left, offset_right, max_left: int, max_right: int, T: int):
    """(js, fs, live_l), (je, fe, live_r): window [a_l, a_r + 1) as boundary pairs.

    js/je are int64 and fs/fe float32, all (B, T, H). Without ``offset_right``
    the window ends at t + 1.
    """
    start = split_position(-(offset_left.float() * max_left), T)
    if offset_right is None:
        shift = torch.zeros_like(offset_left, dtype=torch.float32)
    else:
        shift = offset_right.float() * max_right
    j, f, live_r = split_position(shift, T)
    last = j == T - 1  # a_r + 1 = T: keep it inside the tensor as (T - 1, 1)
    end = (torch.where(last, j, j + 1), torch.where(last, torch.ones_like(f), f), live_r)
    return start, end


def blocked_prefix(v: torch.Tensor):
    """Exclusive prefix sums of v (B, T, C) along T, as (local float32, carry float64).

    ``local[b, j]`` sums v over the start of j's block up to j (excluded);
    ``carry[b, k]`` (B, ceil(T / L), C) sums all blocks before block k.
    SCAN_BLOCK is read at each call so that a test can make it one block.
    """
    block = SCAN_BLOCK
    B, T, C = v.shape
    nb = -(-T // block)
    blocks = F.pad(v, (0, 0, 0, nb * block - T)).view(B, nb, block, C)
    inclusive = blocks.cumsum(2)
    local = torch.cat([torch.zeros_like(inclusive[:, :, :1]), inclusive[:, :, :-1]], 2)
    totals = inclusive[:, :, -1].double()
    carry = totals.cumsum(1) - totals
    return local.view(B, nb * block, C)[:, :T], carry


class _Rows:
    """Gathers and scatters of whole heads: row (b, j, h) of a (B, N, H, R) tensor.

    A window boundary is one position per (b, t, h), shared by the head's R
    channels. Flattening the tensor to (B * N * H, R) rows makes each gather
    an ``index_select`` of contiguous R-vectors and each scatter an
    ``index_add_`` of them, instead of elementwise ``gather``/``scatter_add_``
    through a (B, T, C) int64 index: on CPU that index and the elementwise
    access were most of the op's time, and grew faster than T.
    """

    def __init__(self, B: int, T: int, H: int, device):
        self.T, self.H = T, H
        self.b = torch.arange(B, device=device).view(B, 1, 1)
        self.h = torch.arange(H, device=device).view(1, 1, H)

    def index(self, j: torch.Tensor, n: int) -> torch.Tensor:
        """Flat row numbers of (b, j[b, t, h], h) in a (B, n, H, R) tensor, as (B * T * H,)."""
        return ((self.b * n + j) * self.H + self.h).reshape(-1)

    def gather(self, src: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """src (B, n, C) at rows j (B, T, H) -> (B, T, H, R)."""
        B, n, C = src.shape
        rows = src.reshape(B * n * self.H, C // self.H).index_select(0, self.index(j, n))
        return rows.view(B, self.T, self.H, C // self.H)

    def scatter(self, out: torch.Tensor, j: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """out (B, T, C) += v (B, T, H, R) at rows j (B, T, H), in place; returns out."""
        B, T, C = out.shape
        out.view(B * T * self.H, C // self.H).index_add_(0, self.index(j, T), v.reshape(-1, C // self.H))
        return out


def _block(j: torch.Tensor) -> torch.Tensor:
    return torch.div(j, SCAN_BLOCK, rounding_mode="floor")


def forward(x, offset_left, offset_right, max_left: int, max_right: int):
    B, T, C = x.shape
    H = offset_left.shape[2]
    rows = _Rows(B, T, H, x.device)
    xf = x.float()
    local, carry = blocked_prefix(xf)
    (js, fs, _), (je, fe, _) = window_bounds(offset_left, offset_right, max_left, max_right, T)
    fs, fe = fs.unsqueeze(-1), fe.unsqueeze(-1)
    at_start = rows.gather(local, js) + fs * rows.gather(xf, js)
    at_end = rows.gather(local, je) + fe * rows.gather(xf, je)
    # Whole blocks in float64 (exactly 0 inside one block), the rest block-local.
    whole = rows.gather(carry, _block(je)) - rows.gather(carry, _block(js))
    window = whole.float() + (at_end - at_start)
    return (window / (max_left + max_right + 1)).reshape(B, T, C).to(x.dtype)


def exclusive_suffix(v: torch.Tensor) -> torch.Tensor:
    """out[:, u] = sum_{j > u} v[:, j] along dim 1, blocked like the forward prefix."""
    local, carry = blocked_prefix(v.flip(1))
    T = v.shape[1]
    index = (torch.arange(T, device=v.device) // SCAN_BLOCK).view(1, T, 1).expand_as(v)
    # The sum is bounded by the values it is made of (it is a coverage count in
    # backward), so one rounding to float32 at the end is all it needs.
    prefix = torch.gather(carry, 1, index) + local.double()
    return prefix.float().flip(1)


def backward(grad_out, x, offset_left, offset_right, max_left: int, max_right: int):
    """Gradients w.r.t. x, offset_left and offset_right (None when it is None).

    With g = grad_out / N: d out / d a_l = -x[js] / N and d out / d a_r = x[je] / N
    (the slope of P~, taken on the right of an integer point except at a = T),
    times d a / d offset = -max_left or +max_right where the clamp does not bind.
    grad_x[u] = sum_t g[t] * coverage(t, u), computed as its transpose: each
    window scatters +g at its end boundary and -g at its start boundary,
    an exclusive suffix sum turns these into the whole cells above the
    boundary, and the boundary cells themselves get -/+ the fraction times g.
    ``index_add_`` is deterministic on CPU; on CUDA this path is only taken
    with LIGHTCONV_BACKEND=torch and inherits the atomics of ``index_add_``
    (the Triton path is deterministic).
    """
    B, T, C = x.shape
    H = offset_left.shape[2]
    rows = _Rows(B, T, H, x.device)
    g = grad_out.float() / (max_left + max_right + 1)
    gh = g.view(B, T, H, C // H)
    xf = x.float()
    (js, fs, live_l), (je, fe, live_r) = window_bounds(offset_left, offset_right, max_left, max_right, T)

    grad_left = (gh * rows.gather(xf, js)).sum(-1) * max_left * live_l
    grad_right = None
    if offset_right is not None:
        grad_right = ((gh * rows.gather(xf, je)).sum(-1) * max_right * live_r).to(offset_right.dtype)

    boundary = rows.scatter(rows.scatter(torch.zeros_like(g), je, gh), js, -gh)
    cells = rows.scatter(rows.scatter(torch.zeros_like(g), je, fe.unsqueeze(-1) * gh), js, -fs.unsqueeze(-1) * gh)
    grad_x = exclusive_suffix(boundary) + cells
    return grad_x.to(x.dtype), grad_left.to(offset_left.dtype), grad_right
