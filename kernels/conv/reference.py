"""PyTorch path of the head-tied depthwise convolution (CPU, and the kernels' reference).

Notation: x is (B, T, C) with H heads of R = C // H channels; the weight is
either shared, (H, K), or per position, (B, T, H, K), given as logits when
``weight_softmax``. Tap k of position t reads x[t + k - padding_l] and
contributes nothing outside [0, T).

How it is computed: time is cut into chunks of L positions. Chunk c's outputs
need the W = L + K - 1 inputs starting at c*L - padding_l, and its taps form a
small band matrix, band[t, t + k] = w[t, k], of shape (L, W). A batched matmul
(band @ window) then does the convolution on BLAS. The bands are local to a
chunk, never T x T, so memory stays linear in T; the matmul does W / K times
the minimal arithmetic, which a BLAS call repays many times over compared
with K broadcast multiply-adds. That waste is why chunks are short: L is
K - 1 rounded up to a multiple of 8, or CHUNK where that is more, and a
sequence up to 2L long is one chunk (see ``_Plan``).

Everything, the softmax of the taps included, runs one group of chunks at a
time, so that each temporary stays a few MB and only the op's own outputs are
full size. Full-size temporaries cost fresh pages of memory at every call once
they pass the allocator's mmap threshold, which made the time grow faster than
T (x5.9 from T=2048 to 8192 at B=4, C=512 before this was done per group).

All arithmetic is float32 whatever the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The shortest chunk. Against the former 64, on 2 cores at B 4, T 8192, C 512,
# 8 heads, K 3 to 31: DynamicConv's forward 9-25% and backward 4-36% faster,
# LightConv's 26-41% and 16-51%. A floor of 8 was no faster than 16.
# scripts/bench_conv_chunk.py measures the candidates on another machine.
CHUNK = 16
GROUP_BYTES = 4 << 20  # the largest float32 temporary of one group of chunks


def dropconnect_keep(shape, dropout_p: float, seed: torch.Tensor, device) -> torch.Tensor:
    """Keep-mask of DropConnect for the torch path, a pure function of ``seed``.

    The backward pass calls this again with the same seed instead of storing the
    mask. The Triton path draws its own mask (Philox) from the same seed; the
    two paths are not meant to agree on which weights they drop.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed.reshape(-1)[0].item()))
    return torch.rand(shape, generator=gen, device=device) >= dropout_p


class _Taps:
    """The normalised taps (softmax, then DropConnect) of any range of positions."""

    def __init__(self, weight, weight_softmax: bool, dropout_p: float, seed):
        self.logits, self.softmax, self.p = weight, weight_softmax, dropout_p
        self.keep = dropconnect_keep(weight.shape, dropout_p, seed, weight.device) if dropout_p > 0 else None

    def _rows(self, t, t0, t1):
        return t if t.dim() == 2 else t[:, t0:t1]

    def _probs(self, t0, t1):
        w = self._rows(self.logits, t0, t1).float()
        return torch.softmax(w, dim=-1) if self.softmax else w

    def _scale(self, t0, t1):
        return self._rows(self.keep, t0, t1).float() / (1.0 - self.p)

    def taps(self, t0, t1):
        """(taps, probs): the normalised taps, and the softmax (or raw weight) before DropConnect."""
        p = self._probs(t0, t1)
        return (p if self.keep is None else p * self._scale(t0, t1)), p

    def logits_grad(self, grad, t0, t1, probs):
        """Gradient with respect to the logits from the gradient of the taps."""
        if self.keep is not None:
            grad = grad * self._scale(t0, t1)
        if self.softmax:
            grad = probs * (grad - (grad * probs).sum(-1, keepdim=True))
        return grad


class _Plan:
    """Chunk and group geometry of one call."""

    def __init__(self, x_shape, H: int, K: int, padding_l: int):
        self.B, self.T, C = x_shape
        self.H, self.R, self.K, self.p = H, C // H, K, padding_l
        # L >= K - 1 lets a chunk's window overlap only the next chunk, which the
        # backward's overlap-add relies on; whole vectors of 8 float32 keep BLAS
        # on its fast path (at K = 63, L = 62 ran forwards 7-24% slower than 64).
        L = max(CHUNK, -(-(K - 1) // 8) * 8)
        # One chunk over the whole sequence does no work on the zeros beyond it and
        # no copies of overlapping windows: up to two chunks' length, that wins.
        if self.T <= 2 * L:
            L = max(K - 1, self.T, 1)
        self.L = L
        self.W = W = L + K - 1
        n = -(-self.T // L)
        size = max(1, GROUP_BYTES // (4 * self.B * H * W * max(L, self.R)))
        self.groups = [(c, min(n, c + size)) for c in range(0, n, size)]

    def positions(self, c0, c1):
        return c0 * self.L, min(c1 * self.L, self.T)

    def _heads(self, y, a, b):
        """y[:, a:b] of (B, T, C) as float32 (B, H, b - a, R)."""
        return y[:, a:b].view(self.B, b - a, self.H, self.R).permute(0, 2, 1, 3).float()

    def windows(self, x, c0, c1):
        """The inputs chunks c0..c1-1 read, zero outside [0, T), and the band columns they meet.

        Several chunks: (B, H, G, W, R) and all W columns. One chunk: only the
        inputs inside [0, T), (B, H, 1, b - a, R), and the band columns (s0, s1)
        they meet, so that no work goes into the zeros (short sequences are one chunk).
        """
        L, W = self.L, self.W
        lo, hi = c0 * L - self.p, c1 * L + self.K - 1 - self.p
        a, b = max(lo, 0), min(hi, self.T)
        xs = self._heads(x, a, b)
        if c1 - c0 == 1:
            return xs.unsqueeze(2), (a - lo, b - lo)
        xs = F.pad(xs, (0, 0, a - lo, hi - b))
        return xs.unfold(2, W, L).transpose(-1, -2), (0, W)

    def chunked(self, y, c0, c1):
        """y (B, T, C) over chunks c0..c1-1 as (B, H, G, L, R), zero beyond T."""
        t0, t1 = self.positions(c0, c1)
        ys = F.pad(self._heads(y, t0, t1), (0, 0, 0, (c1 - c0) * self.L - (t1 - t0)))
        return ys.unflatten(2, (c1 - c0, self.L))

    def band_diagonal(self, band):
        """View of band[..., t, t + k] as (..., L, K): the entries that hold taps."""
        st = band.stride()
        return band.as_strided((*band.shape[:-1], self.K), (*st[:-2], st[-2] + st[-1], st[-1]))

    def band(self, taps, c0=0, c1=1):
        """Bands (B, H, G, L, W) of chunks c0..c1-1 from their taps (B, t1 - t0, H, K),
        or the band (1, H, 1, L, W) that every chunk shares for taps (H, K)."""
        L, K = self.L, self.K
        if taps.dim() == 2:
            rows = taps.view(1, self.H, 1, 1, K).expand(1, self.H, 1, L, K)
        else:
            t0, t1 = self.positions(c0, c1)
            rows = F.pad(taps.permute(0, 2, 1, 3), (0, 0, 0, (c1 - c0) * L - (t1 - t0)))
            rows = rows.unflatten(2, (c1 - c0, L))
        band = rows.new_zeros(*rows.shape[:-1], self.W)
        self.band_diagonal(band).copy_(rows)
        return band

    def store(self, out, y, c0, c1):
        """Write y (B, H, G, L, R) of chunks c0..c1-1 into out (B, T, C) (any dtype)."""
        t0, t1 = self.positions(c0, c1)
        y = y.flatten(2, 3)[:, :, : t1 - t0].permute(0, 2, 1, 3)
        out[:, t0:t1].view(self.B, t1 - t0, self.H, self.R).copy_(y)

    def add_window_grads(self, grad_x, grad_windows, c0, c1, cols):
        """Add the gradients of the windows (as :meth:`windows` shaped them) into grad_x (B, T, C)."""
        B, H, R, L, K = self.B, self.H, self.R, self.L, self.K
        G = c1 - c0
        lo = c0 * L - self.p
        if G == 1:
            a = lo + cols[0]
            grad_x[:, a : a + cols[1] - cols[0]].view(B, -1, H, R).add_(grad_windows[:, :, 0].permute(0, 2, 1, 3))
            return
        # Row j < L of chunk c lands on c*L + j, row L + j on the next chunk's j;
        # the spare chunk at the end takes the last window's overlap.
        buf = grad_windows.new_zeros(B, H, (G + 1) * L, R)
        buf[:, :, : G * L] = grad_windows[..., :L, :].flatten(2, 3)
        buf[:, :, L:].unflatten(2, (G, L))[..., : K - 1, :] += grad_windows[..., L:, :]
        a, b = max(lo, 0), min(lo + G * L + K - 1, self.T)
        grad_x[:, a:b].view(B, b - a, H, R).add_(buf[:, :, a - lo : b - lo].permute(0, 2, 1, 3))


def stats_shape(x, weight, weight_softmax: bool, save_stats: bool):
    """None: :func:`forward` saves no statistics on this path."""
    return None


def forward(x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed, save_stats: bool):
    """(out, None): this path saves nothing for its backward, which recomputes each group's taps."""
    plan = _Plan(x.shape, *weight.shape[-2:], padding_l)
    taps = _Taps(weight, weight_softmax, dropout_p, seed)
    shared = plan.band(taps.taps(0, plan.T)[0]) if weight.dim() == 2 else None
    out = torch.empty_like(x)
    for c0, c1 in plan.groups:
        band = shared if shared is not None else plan.band(taps.taps(*plan.positions(c0, c1))[0], c0, c1)
        windows, (s0, s1) = plan.windows(x, c0, c1)
        plan.store(out, band[..., s0:s1] @ windows, c0, c1)
    return out, None


def backward(grad_out, x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed, stats):
    """(grad_x, grad_w); ``stats`` is what :func:`forward` returned (None), unused."""
    plan = _Plan(x.shape, *weight.shape[-2:], padding_l)
    taps = _Taps(weight, weight_softmax, dropout_p, seed)
    dynamic = weight.dim() == 4
    shared = None if dynamic else plan.band(taps.taps(0, plan.T)[0])
    grad_x = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    grad_w = torch.empty_like(weight) if dynamic else None
    grad_shared_band = None if dynamic else x.new_zeros(1, plan.H, 1, plan.L, plan.W, dtype=torch.float32)
    for c0, c1 in plan.groups:
        t0, t1 = plan.positions(c0, c1)
        g = plan.chunked(grad_out, c0, c1)  # zero beyond T, so taps there get no gradient
        if dynamic:
            w, probs = taps.taps(t0, t1)
            band = plan.band(w, c0, c1)
        else:
            band = shared
        windows, (s0, s1) = plan.windows(x, c0, c1)
        plan.add_window_grads(grad_x, band[..., s0:s1].transpose(-1, -2) @ g, c0, c1, (s0, s1))
        grad_band = g.new_zeros(*g.shape[:-1], plan.W)  # (B, H, G, L, W)
        grad_band[..., s0:s1] = g @ windows.transpose(-1, -2)
        if dynamic:
            grad_taps = plan.band_diagonal(grad_band).flatten(2, 3)[:, :, : t1 - t0].permute(0, 2, 1, 3)
            grad_w[:, t0:t1] = taps.logits_grad(grad_taps, t0, t1, probs)
        else:
            grad_shared_band += grad_band.sum(dim=(0, 2), keepdim=True)
    if not dynamic:
        grad_taps = plan.band_diagonal(grad_shared_band).sum(dim=(0, 2, 3))
        grad_w = taps.logits_grad(grad_taps, 0, plan.T, taps.taps(0, plan.T)[1])
    return grad_x.to(x.dtype), grad_w.to(weight.dtype)
