"""PyTorch path of the head-tied depthwise convolution (CPU, and the kernels' reference).

Notation: x is (B, T, C) with H heads of R = C // H channels; the weight is
either shared, (H, K), or per position, (B, T, H, K). Tap k of position t reads
x[t + k - padding_l] and contributes nothing outside [0, T).

How it is computed: time is cut into chunks of L positions. Chunk c's outputs
need the L + K - 1 inputs starting at c*L - padding_l, and its taps form a
small band matrix, band[t, t + k] = w[t, k], of shape (L, L + K - 1). One
batched matmul (band @ window) then does the whole convolution on MKL. The
bands are local to a chunk, never T x T, so memory stays linear in T; the
matmul does (L + K - 1) / K times the minimal arithmetic, which a BLAS call
repays many times over compared with K broadcast multiply-adds.

All arithmetic is float32 whatever the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dropconnect_keep(shape, dropout_p: float, seed: torch.Tensor, device) -> torch.Tensor:
    """Keep-mask of DropConnect for the torch path, a pure function of ``seed``.

    The backward pass calls this again with the same seed instead of storing the
    mask. The Triton path draws its own mask (Philox) from the same seed; the
    two paths are not meant to agree on which weights they drop.
    """
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed.reshape(-1)[0].item()))
    return torch.rand(shape, generator=gen, device=device) >= dropout_p


def normalize_weight(weight, weight_softmax: bool, dropout_p: float, seed):
    """Logits -> the float32 taps the convolution applies, and the DropConnect scale."""
    w = weight.float()
    if weight_softmax:
        w = torch.softmax(w, dim=-1)
    scale = None
    if dropout_p > 0:
        scale = dropconnect_keep(w.shape, dropout_p, seed, w.device).float() / (1.0 - dropout_p)
        w = w * scale
    return w, scale


class _Chunks:
    """Geometry of the chunked band formulation for one call."""

    def __init__(self, x_shape, H: int, K: int, padding_l: int):
        self.B, self.T, C = x_shape
        self.H, self.R, self.K, self.p = H, C // H, K, padding_l
        # L >= K - 1 lets each chunk's window overlap only the next chunk (used
        # by the backward's overlap-add); 64 keeps the matmuls BLAS-sized.
        self.L = max(K - 1, min(64, self.T), 1)
        self.n = -(-self.T // self.L)

    def windows(self, x):
        """(B, T, C) -> (B, H, n, L + K - 1, R): the inputs each chunk reads (a strided view)."""
        B, T, H, R, L, K, n = self.B, self.T, self.H, self.R, self.L, self.K, self.n
        xh = x.view(B, T, H, R).permute(0, 2, 1, 3)
        xp = F.pad(xh, (0, 0, self.p, n * L + K - 1 - T - self.p))
        return xp.unfold(2, L + K - 1, L).transpose(-1, -2)

    def taps(self, w):
        """(H, K) or (B, T, H, K) -> (B, H, n, L, K), zero beyond T."""
        B, T, H, L, K, n = self.B, self.T, self.H, self.L, self.K, self.n
        w4 = w.view(1, 1, H, K) if w.dim() == 2 else w
        wt = w4.expand(B, T, H, K).permute(0, 2, 1, 3)
        return F.pad(wt, (0, 0, 0, n * L - T)).reshape(B, H, n, L, K)

    def band_diagonal(self, band):
        """View of band[..., t, t + k] as (..., L, K): the entries that hold taps."""
        *lead, L, W = band.shape
        st = band.stride()
        return band.as_strided((*lead, L, self.K), (*st[:-2], st[-2] + st[-1], st[-1]))

    def band(self, w):
        B, H, n, L, K = self.B, self.H, self.n, self.L, self.K
        band = w.new_zeros(B, H, n, L, L + K - 1)
        self.band_diagonal(band).copy_(self.taps(w))
        return band

    def unchunk(self, y):
        """(B, H, n, L, R) -> (B, T, C)."""
        B, T, H, R = self.B, self.T, self.H, self.R
        return y.reshape(B, H, self.n * self.L, R)[:, :, :T].permute(0, 2, 1, 3).reshape(B, T, H * R)

    def chunk(self, g):
        """(B, T, C) -> (B, H, n, L, R), zero beyond T."""
        B, T, H, R, L, n = self.B, self.T, self.H, self.R, self.L, self.n
        gh = g.view(B, T, H, R).permute(0, 2, 1, 3)
        return F.pad(gh, (0, 0, 0, n * L - T)).reshape(B, H, n, L, R)


def conv_taps(x: torch.Tensor, w: torch.Tensor, padding_l: int) -> torch.Tensor:
    """out[b,t,h,r] = sum_k w[b,t,h,k] * x[b,t+k-padding_l,h,r]; float32 in and out."""
    geo = _Chunks(x.shape, *w.shape[-2:], padding_l)
    return geo.unchunk(geo.band(w) @ geo.windows(x))


def conv_taps_backward(grad_out, x, w, padding_l: int):
    """Gradients of ``conv_taps`` with respect to x and to the (normalised) taps."""
    geo = _Chunks(x.shape, *w.shape[-2:], padding_l)
    B, T, H, R, L, K, n = geo.B, geo.T, geo.H, geo.R, geo.L, geo.K, geo.n
    g = geo.chunk(grad_out)
    grad_windows = geo.band(w).transpose(-1, -2) @ g  # (B, H, n, L + K - 1, R)
    # Overlap-add the windows back onto the padded time axis: the first L rows
    # of chunk c land on [cL, cL + L), its last K - 1 rows on the next chunk's.
    grad_xp = grad_windows.new_zeros(B, H, (n + 1) * L, R)
    grad_xp[:, :, : n * L] = grad_windows[..., :L, :].reshape(B, H, n * L, R)
    grad_xp[:, :, L:].view(B, H, n, L, R)[..., : K - 1, :] += grad_windows[..., L:, :]
    grad_x = grad_xp[:, :, padding_l : padding_l + T].permute(0, 2, 1, 3).reshape(B, T, H * R)

    grad_band = g @ geo.windows(x).transpose(-1, -2)  # (B, H, n, L, L + K - 1)
    grad_w = geo.band_diagonal(grad_band).reshape(B, H, n * L, K)[:, :, :T].permute(0, 2, 1, 3)
    if w.dim() == 2:
        return grad_x, grad_w.sum(dim=(0, 1))
    return grad_x, grad_w.contiguous()


def forward(x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed):
    w, _ = normalize_weight(weight, weight_softmax, dropout_p, seed)
    return conv_taps(x.float(), w, padding_l).to(x.dtype)


def backward(grad_out, x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed):
    w, scale = normalize_weight(weight, weight_softmax, dropout_p, seed)
    grad_x, grad_w = conv_taps_backward(grad_out.float().contiguous(), x.float(), w, padding_l)
    if scale is not None:
        grad_w = grad_w * scale
    if weight_softmax:
        p = torch.softmax(weight.float(), dim=-1)
        grad_w = p * (grad_w - (grad_w * p).sum(-1, keepdim=True))
    return grad_x.to(x.dtype), grad_w.to(weight.dtype)
