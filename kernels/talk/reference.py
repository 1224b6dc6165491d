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
The backward's suffix sum over the scattered window boundaries is blocked
the same way.

Chunks. Both passes walk the sequence in chunks of output positions (and of
batch rows when B * C is large), about CHUNK elements each (``chunk_shape``).
A chunk's windows read (forward) or write (backward) only the positions
[lo, hi) their boundaries reach: for offsets in [0, 1] at most max_left
before and max_right + 1 after the chunk. [lo, hi) is taken from the
boundaries themselves, so offsets outside [0, 1] stay exact, with a wider
range. Every float32 temporary is therefore chunk-sized and stays in cache;
only the outputs, ``carry`` (T / L of x, filled chunk by chunk) and the
window ends (B, T, H) are full size. Full-size (B, T, C) temporaries made
the op grow about 6x from T = 2048 to 8192 on CPU: each one streams through
DRAM and, above glibc's 32 MB mmap threshold, is a fresh mapping that
page-faults on first touch. ``local`` keeps the global block structure
(a chunk reads from the start of a block), so chunking changes none of the
sums the forward takes, only the order of some roundings; in the backward
each chunk's scattered boundaries cancel outside its [lo, hi), so it
suffix-sums them there and overlap-adds the result into grad_x.

Memory is linear in T: boundaries are gathered, never expanded into T x T
weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SCAN_BLOCK = 64
# Size of a chunk in elements of a (B, positions, C) tensor: 2 MB of float32,
# i.e. 256 positions at B * C = 2048, 1024 at B * C = 512. A chunk holds a
# dozen such temporaries. On a 2-core EPYC VM (512 KB L2 per core, 32 MB L3;
# C = 512, T = 8192) it was the fastest of 2^17 to 2^21 elements at B = 1 and
# B = 4 alike (2^20 as fast at B = 4; 2^18 and 2^21 up to 1.3x and 1.6x
# slower), which no fixed number of positions is: the best one moves with B.
# Read at each call, like SCAN_BLOCK, so that tests can force many chunks.
CHUNK = 2**19


def chunk_shape(B: int, T: int, C: int) -> tuple[int, int]:
    """(batch rows, output positions) of a chunk: about CHUNK elements.

    Positions come in whole scan blocks, at least 4 of them, because a
    chunk's windows read from the start of a block and max_left + max_right
    beyond its ends: shorter chunks would mostly read their neighbours'
    positions. Where that is more than CHUNK elements (large B * C), the
    chunk takes fewer batch rows instead.
    """
    block = SCAN_BLOCK
    m = int(CHUNK) // (B * C)
    m = min(max(m - m % block, 4 * block), T)
    return min(max(int(CHUNK) // (m * C), 1), B), m


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


class BlockCarry:
    """carry[b, k] (B, ceil(T / L), C) float64: the sum of x over all blocks before block k.

    Filled in order as far as the chunks ask (``upto``), so that each block
    of x is summed while the chunk that reads it next has it in cache, and a
    float16/bfloat16 x is widened to float32 a chunk at a time. The block
    totals are summed in float32 (L terms) and accumulated across blocks in
    float64, with a running float64 total between calls.
    """

    def __init__(self, x: torch.Tensor):
        B, T, C = x.shape
        self.x = x
        self.carry = torch.empty(B, -(-T // SCAN_BLOCK), C, dtype=torch.float64, device=x.device)
        self.done = 0  # blocks whose carry is set
        self.total = torch.zeros(B, 1, C, dtype=torch.float64, device=x.device)  # x summed over them

    def upto(self, k1: int) -> torch.Tensor:
        """The carry tensor, set (at least) for blocks [0, k1)."""
        block, k0 = SCAN_BLOCK, self.done
        if k1 <= k0:
            return self.carry
        B, T, C = self.x.shape
        v = self.x[:, k0 * block : k1 * block].float()
        full = v.shape[1] // block  # the sequence's last block may be short
        totals = v[:, : full * block].view(B, full, block, C).sum(2)
        if full < k1 - k0:
            totals = torch.cat([totals, v[:, full * block :].sum(1, keepdim=True)], 1)
        inclusive = totals.double().cumsum(1).add_(self.total)
        self.carry[:, k0:k1] = inclusive - totals
        self.total = inclusive[:, -1:]
        self.done = k1
        return self.carry


def block_scan_(blocks: torch.Tensor) -> torch.Tensor:
    """Inclusive prefix sums of blocks (B, nb, L, C) along dim 2, in place unless small or L % 8.

    ``torch.cumsum`` along a middle dimension walks each channel's L values
    one strided element at a time and was the costliest op of the whole path
    on CPU (about 4x a plain add per element). Summing runs of 8 positions,
    then the runs' totals, with whole-slice adds does the same job in
    2 * 7 + 1 vectorised ops, and with at most 15 rounded additions per value
    is no less accurate than a sequential scan of L.
    """
    B, nb, L, C = blocks.shape
    run = 8
    if L % run or blocks.numel() <= 2**16:  # small: one op beats 15 (their overhead)
        return blocks.cumsum(2)  # not cumsum_, which is twice as slow
    runs = blocks.view(B, nb, L // run, run, C)
    for i in range(1, run):
        runs[:, :, :, i] += runs[:, :, :, i - 1]
    ends = runs[:, :, :, -1]  # the runs' totals, made inclusive across runs in place
    if L // run > run:
        ends.copy_(ends.cumsum(2))
    else:
        for k in range(1, L // run):
            ends[:, :, k] += ends[:, :, k - 1]
    # a copy: the add below writes the same storage it reads (other elements)
    runs[:, :, 1:, :-1] += ends[:, :, :-1].unsqueeze(3).clone()
    return blocks


def _block_width(n: int) -> int:
    """Scan block of n positions: L, or n itself when shorter (not padded to a whole L)."""
    return min(SCAN_BLOCK, n)


def block_local_prefix(v: torch.Tensor) -> torch.Tensor:
    """Exclusive prefix of v (B, n, C) inside blocks of L positions, float32, padded to whole blocks.

    Position 0 of ``v`` must start a block of the global block structure.
    Built as an inclusive scan of v shifted by one position with a zero at
    each block start, so that it is one copy and one scan.
    """
    B, n, C = v.shape
    width = _block_width(n)
    nb = -(-n // width)
    # v[j - 1] at j, zeros after; the pad's end is negative (a crop) when n fills the blocks
    buf = F.pad(v.float(), (0, 0, 1, nb * width - n - 1)).view(B, nb, width, C)
    buf[:, :, 0] = 0
    return block_scan_(buf).view(B, nb * width, C)


class _Rows:
    """Gathers and scatters of whole heads: row (b, j, h) of a (B, N, H, R) tensor.

    A window boundary is one position per (b, t, h), shared by the head's R
    channels. Flattening the tensor to (B * N * H, R) rows makes each gather
    an ``index_select`` of contiguous R-vectors and each scatter an
    ``index_add_`` of them, instead of elementwise ``gather``/``scatter_add_``
    through a (B, T, C) int64 index: on CPU that index and the elementwise
    access were most of the op's time, and grew faster than T.
    """

    def __init__(self, B: int, H: int, device):
        self.H = H
        self.b = torch.arange(B, device=device).view(B, 1, 1)
        self.h = torch.arange(H, device=device).view(1, 1, H)
        self.bases = {}

    def index(self, j: torch.Tensor, n: int) -> torch.Tensor:
        """Flat row numbers of (b, j[b, t, h], h) in a (B, n, H, R) tensor, as (B * n_t * H,)."""
        base = self.bases.get(n)
        if base is None:  # the row of (b, 0, h); kept, as most tables are gathered from more than once
            base = self.bases[n] = self.b * (n * self.H) + self.h
        return base.add(j, alpha=self.H).reshape(-1)

    def gather(self, src: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """src (B, n, C) (contiguous) at rows j (B, m, H) -> (B, m, H, R)."""
        B, n, C = src.shape
        rows = src.view(B * n * self.H, C // self.H).index_select(0, self.index(j, n))
        return rows.view(*j.shape, C // self.H)

    def scatter(self, out: torch.Tensor, j: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """out (B, n, C) += v (B, m, H, R) at rows j (B, m, H), in place; returns out."""
        B, n, C = out.shape
        out.view(B * n * self.H, C // self.H).index_add_(0, self.index(j, n), v.reshape(-1, C // self.H))
        return out


def _plan(js: torch.Tensor, je: torch.Tensor, step: int, ks=None, ke=None):
    """The chunks of output positions, as (t0, t1, lo, hi, dlo, dhi) each.

    [lo, hi) are the positions the chunk's window boundaries js/je (B, T, H)
    touch, and [dlo, dhi] the range of ke - ks, the number of block ends
    between a window's start and end (ks/ke: the blocks of js/je). Both ends
    enter both position bounds: offsets outside [0, 1] may put a start after
    an end. Without ks/ke, dlo = dhi = 0. All chunks at once, for one
    device sync; a single chunk takes [lo, hi) = [0, T).
    """
    T = js.shape[1]
    count = -(-T // step)
    if ks is None:
        if count == 1:
            return [(0, T, 0, T, 0, 0)]
        d_lo = d_hi = torch.zeros(T, dtype=js.dtype, device=js.device)
    else:
        d = ke - ks
        if count == 1:
            return [(0, T, 0, T, *torch.stack([d.min(), d.max()]).tolist())]
        d_lo, d_hi = d.amin((0, 2)), d.amax((0, 2))

    def per_chunk(v, reduce):  # v (T,), padded with its last value so the last chunk may be short
        v = torch.cat([v, v[-1:].expand(count * step - T)])
        return reduce(v.view(count, step), 1)

    first = per_chunk(torch.minimum(js, je).amin((0, 2)), torch.amin)
    last = per_chunk(torch.maximum(js, je).amax((0, 2)), torch.amax)
    table = torch.stack([first, last, per_chunk(d_lo, torch.amin), per_chunk(d_hi, torch.amax)], 1).tolist()
    return [(t0, min(t0 + step, T), lo, hi + 1, a, b) for t0, (lo, hi, a, b) in zip(range(0, T, step), table)]


def _whole_blocks(carry, ks, ke, k0: int, k1: int, dlo: int, dhi: int, rows: _Rows) -> torch.Tensor:
    """carry[ke] - carry[ks] as float32 (B, m, H, R): x summed over the whole blocks between two ends.

    ks/ke (B, m, H) lie in [k0, k1). The difference is taken in float64 and
    rounded once. Rather than gathering two float64 rows per boundary, it is
    looked up in a float32 table of every difference that can occur,
    carry[k + d] - carry[k] for k in [k0, k1) and d in [dlo, dhi], which is
    small while windows span few blocks (usually d is 0 or 1); when the
    table would be larger than the chunk, the two float64 gathers it saves
    are cheaper and are done instead.
    """
    B, m, H = ks.shape
    nk, span = k1 - k0, dhi - dlo + 1
    if nk * span > m:
        whole = rows.gather(carry, ke)
        whole -= rows.gather(carry, ks)
        return whole.float()
    near = carry[:, k0:k1]
    d = torch.arange(dlo, dhi + 1, device=carry.device)
    later = (torch.arange(nk, device=carry.device).view(nk, 1) + d).clamp_(0, nk - 1)  # clamped: never read
    table = (near.index_select(1, later.view(-1)).view(B, nk, span, -1) - near.unsqueeze(2)).float()
    return rows.gather(table.view(B, nk * span, -1), (ks - k0) * span + (ke - ks - dlo))


def _part(v: torch.Tensor, c: slice) -> torch.Tensor:
    """v[:, c] contiguous: broadcasting a strided (B, m, H, 1) operand over R made a multiply 3x slower."""
    return v[:, c].contiguous()


def forward(x, offset_left, offset_right, max_left: int, max_right: int):
    B, T, C = x.shape
    x = x.contiguous()  # the gathers view x as rows
    out = torch.empty_like(x)
    rows, step = chunk_shape(B, T, C)
    for b0 in range(0, B, rows):
        g = slice(b0, b0 + rows)
        right = None if offset_right is None else offset_right[g]
        _forward_rows(out[g], x[g], offset_left[g], right, max_left, max_right, step)
    return out


def _forward_rows(out, x, offset_left, offset_right, max_left: int, max_right: int, step: int):
    """forward of some batch rows into ``out``, ``step`` positions at a time."""
    B, T, C = x.shape
    H = offset_left.shape[2]
    block = SCAN_BLOCK
    rows = _Rows(B, H, x.device)
    # Window ends of all positions at once: (B, T, H) is 1 / R of x, and per
    # chunk their dozens of small ops would cost more than their data.
    (js, fs, _), (je, fe, _) = window_bounds(offset_left, offset_right, max_left, max_right, T)
    ks, ke = torch.div(js, block, rounding_mode="floor"), torch.div(je, block, rounding_mode="floor")
    fs, fe = fs.unsqueeze(-1), fe.unsqueeze(-1)
    carry = BlockCarry(x)
    for t0, t1, lo, hi, dlo, dhi in _plan(js, je, step, ks, ke):
        c = slice(t0, t1)
        lo -= lo % block  # ``local`` must keep the global block structure of ``carry``
        k1 = -(-hi // block)
        whole = carry.upto(k1)  # first: it sums the blocks new to this chunk, which the next line reads again
        local = block_local_prefix(x[:, lo:hi])
        window = rows.gather(local, je[:, c] - lo).addcmul_(_part(fe, c), rows.gather(x, je[:, c]))
        window -= rows.gather(local, js[:, c] - lo).addcmul_(_part(fs, c), rows.gather(x, js[:, c]))
        # Whole blocks from the float64 carry (exactly 0 inside one block), the rest block-local.
        window += _whole_blocks(whole, ks[:, c], ke[:, c], lo // block, k1, dlo, dhi, rows)
        torch.div(window.view(B, t1 - t0, C), max_left + max_right + 1, out=out[:, c])


def _exclusive_suffix_plus(v: torch.Tensor, extra: torch.Tensor, width: int) -> torch.Tensor:
    """extra[:, u] + sum_{j > u} v[:, j] along dim 1, in place in ``extra``; v is overwritten.

    v and extra are (B, n, C) float32 with n a multiple of ``width`` (at
    most L): the sum is blocked like the forward prefix (blocks aligned to
    the end), the within-block part in float32 and the sum over later
    blocks in float64. The sum is bounded by the values it is made of (it
    is a coverage count in backward), so the float64 block sums need only
    one rounding to float32.
    """
    B, n, C = v.shape
    inclusive = block_scan_(v.view(B, n // width, width, C))
    totals = inclusive[:, :, -1].double()
    # sum over blocks k and later; minus the inclusive prefix inside block k
    later = totals.flip(1).cumsum(1).flip(1).float().unsqueeze(2)
    return extra.view_as(inclusive).sub_(inclusive).add_(later).view(B, n, C)


def backward(grad_out, x, offset_left, offset_right, max_left: int, max_right: int):
    """Gradients w.r.t. x, offset_left and offset_right (None when it is None).

    With g = grad_out / N: d out / d a_l = -x[js] / N and d out / d a_r = x[je] / N
    (the slope of P~, taken on the right of an integer point except at a = T),
    times d a / d offset = -max_left or +max_right where the clamp does not bind.
    grad_x[u] = sum_t g[t] * coverage(t, u), computed as its transpose: each
    window scatters +g at its end boundary and -g at its start boundary,
    an exclusive suffix sum turns these into the whole cells above the
    boundary, and the boundary cells themselves get -/+ the fraction times g.
    Per chunk of t this is done on the range [lo, hi) its boundaries touch:
    each window adds +g and -g inside it, so the suffix sum is zero above
    and below, and the chunks' results overlap-add into grad_x.
    ``index_add_`` is deterministic on CPU; on CUDA this path is only taken
    with LIGHTCONV_BACKEND=torch and inherits the atomics of ``index_add_``
    (the Triton path is deterministic).
    """
    B, T, C = x.shape
    x = x.contiguous()
    # float32 accumulator; it is the result itself for a float32 x
    grad_x = torch.empty(B, T, C, dtype=torch.float32, device=x.device)
    grad_left = torch.empty_like(offset_left)
    grad_right = None if offset_right is None else torch.empty_like(offset_right)
    rows, step = chunk_shape(B, T, C)
    for b0 in range(0, B, rows):
        g = slice(b0, b0 + rows)
        right = (None, None) if offset_right is None else (offset_right[g], grad_right[g])
        grads = (grad_x[g], grad_left[g], right[1])
        _backward_rows(grads, grad_out[g], x[g], offset_left[g], right[0], max_left, max_right, step)
    return grad_x.to(x.dtype), grad_left, grad_right


def _backward_rows(grads, grad_out, x, offset_left, offset_right, max_left: int, max_right: int, step: int):
    """backward of some batch rows into grads = (grad_x, grad_left, grad_right or None)."""
    grad_x, grad_left, grad_right = grads
    B, T, C = x.shape
    H = offset_left.shape[2]
    rows = _Rows(B, H, x.device)
    norm = max_left + max_right + 1
    (js, fs, live_l), (je, fe, live_r) = window_bounds(offset_left, offset_right, max_left, max_right, T)
    fs, fe = fs.unsqueeze(-1), fe.unsqueeze(-1)
    done = 0  # grad_x[:, :done] holds the sum of the chunks so far; the rest is not yet written
    for t0, t1, lo, hi, _, _ in _plan(js, je, step):
        c = slice(t0, t1)
        gh = (grad_out[:, c].float() / norm).reshape(B, t1 - t0, H, C // H)
        # In place into the fresh gathers, and gh / its negation reused below:
        # every chunk-sized temporary costs cache that the scatters need.
        grad_left[:, c] = rows.gather(x, js[:, c]).float().mul_(gh).sum(-1) * max_left * live_l[:, c]
        if grad_right is not None:
            grad_right[:, c] = rows.gather(x, je[:, c]).float().mul_(gh).sum(-1) * max_right * live_r[:, c]

        # Buffers padded at the front to whole blocks, ending at hi.
        width = _block_width(hi - lo)
        n = -(-(hi - lo) // width) * width
        base = hi - n
        start, end = js[:, c] - base, je[:, c] - base
        # index_add_ with alpha != 1 leaves its fast path (3x slower on CPU): negate once instead
        neg = -gh
        boundary = rows.scatter(rows.scatter(torch.zeros(B, n, C, device=x.device), end, gh), start, neg)
        cells = rows.scatter(torch.zeros(B, n, C, device=x.device), end, gh.mul_(_part(fe, c)))
        rows.scatter(cells, start, neg.mul_(_part(fs, c)))
        part = _exclusive_suffix_plus(boundary, cells, width)[:, lo - base :]

        if lo > done:  # no window reached [done, lo)
            grad_x[:, done:lo] = 0
            done = lo
        mid = min(hi, done)
        if mid > lo:
            grad_x[:, lo:mid] += part[:, : mid - lo]
        if hi > mid:
            grad_x[:, mid:hi] = part[:, mid - lo :]
        done = max(done, hi)
    grad_x[:, done:] = 0
