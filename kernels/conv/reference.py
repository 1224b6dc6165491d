"""PyTorch path of the head-tied depthwise convolution (CPU, and the kernels' reference).

Notation: x is (B, T, C) with H heads of R = C // H channels; the weight is
either shared, (H, K), or per position, (B, T, H, K). Tap k of position t reads
x[t + k - padding_l] and contributes nothing outside [0, T).

All arithmetic is float32 whatever the input dtype. Memory is linear in T: the
taps are applied one shifted slice at a time instead of through a T x T band
matrix or a K-fold unfolded copy of x.
"""

from __future__ import annotations

import torch


def tap_ranges(T: int, K: int, padding_l: int):
    """For each tap k: (k, shift, t0, t1) with 0 <= t + shift < T for t in [t0, t1)."""
    for k in range(K):
        shift = k - padding_l
        t0, t1 = max(0, -shift), min(T, T - shift)
        if t0 < t1:
            yield k, shift, t0, t1


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


def _per_position(w: torch.Tensor) -> torch.Tensor:
    """(H, K) -> (1, 1, H, K) so that shared and per-position taps index alike."""
    return w.view(1, 1, *w.shape) if w.dim() == 2 else w


def conv_taps(x: torch.Tensor, w: torch.Tensor, padding_l: int) -> torch.Tensor:
    """out[b,t,h,r] = sum_k w[b,t,h,k] * x[b,t+k-padding_l,h,r]; float32 in and out."""
    B, T, C = x.shape
    H, K = w.shape[-2:]
    w4 = _per_position(w)
    xh = x.view(B, T, H, C // H)
    out = torch.zeros_like(xh)
    for k, s, t0, t1 in tap_ranges(T, K, padding_l):
        wk = w4[:, t0:t1, :, k : k + 1] if w4.shape[1] > 1 else w4[:, :, :, k : k + 1]
        out[:, t0:t1].addcmul_(xh[:, t0 + s : t1 + s], wk)
    return out.view(B, T, C)


def conv_taps_backward(grad_out, x, w, padding_l: int):
    """Gradients of ``conv_taps`` with respect to x and to the (normalised) taps."""
    B, T, C = x.shape
    H, K = w.shape[-2:]
    w4 = _per_position(w)
    shared = w4.shape[1] == 1
    g = grad_out.view(B, T, H, C // H)
    xh = x.view(B, T, H, C // H)
    grad_x = torch.zeros_like(xh)
    grad_w = torch.zeros_like(w4) if not shared else torch.zeros(H, K, device=x.device)
    for k, s, t0, t1 in tap_ranges(T, K, padding_l):
        gk = g[:, t0:t1]
        xk = xh[:, t0 + s : t1 + s]
        wk = w4[:, :, :, k : k + 1] if shared else w4[:, t0:t1, :, k : k + 1]
        grad_x[:, t0 + s : t1 + s].addcmul_(gk, wk)
        if shared:
            grad_w[:, k] = torch.einsum("bthr,bthr->h", gk, xk)
        else:
            grad_w[:, t0:t1, :, k] = torch.einsum("bthr,bthr->bth", gk, xk)
    return grad_x.view(B, T, C), grad_w.view(w.shape)


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
