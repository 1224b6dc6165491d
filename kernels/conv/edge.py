"""What a tap that falls outside the sequence means: the ``edge`` of the conv ops.

Position t of a K-tap kernel reads x[t + k - padding_l] for k < K. Near the
ends of the sequence some of those positions are outside it: before 0, at or
after T, or, when a ``valid`` mask (B, T) is given, on padding. Three rules:

* ``zeros``: such a tap reads zero; the softmax is still over all K taps, so
  a position near the edge gets less than a unit of mass. The paper's code,
  fairseq's incremental decoding and this package's default.
* ``renorm``: the softmax is over the taps that read inside the sequence, at
  every position (a position none of whose taps reads inside gives 0). The
  same rule holds for whole sequences and for one decoding step at a time.
* ``fairseq``: fairseq 0.12's training forward of DynamicConv: in a causal
  layer (padding_l = K - 1) over a tensor shorter than the kernel (T < K) the
  kernel is cut to its last T taps *before* the softmax, so the taps that no
  position of the tensor can reach drop out of the softmax; otherwise as
  ``zeros``. Its decoding does not cut (``zeros``), so a model trained this way
  scores short sequences differently in training and in decoding. fairseq's
  LightweightConv1dTBC takes the softmax before the cut, so for the
  lightweight op ``fairseq`` is ``zeros``.

None of these touches the kernels: each is a rewrite of the arguments (or a
rescaling of the result) of the ``zeros`` op, so every backend computes the
same thing, and the gradients follow by autograd.

* dynamic, renorm: the logits of taps outside get the dtype's most negative
  finite value, so their softmax weight is exactly 0 and their gradient too.
  (Finite, not -inf: a position with no tap inside must not make NaN.)
* lightweight, renorm: with p the softmax over all K taps, the softmax over a
  subset S is p_k / Z with Z = sum_{k in S} p_k, and DropConnect commutes with
  that scale, so the result is the ``zeros`` result times 1 / Z per position
  and head. Z is computed in float32 from the (H, K) weight; positions whose
  taps are all inside keep a scale of exactly 1.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

EDGES = ("zeros", "renorm", "fairseq")


def tap_inside(valid: Optional[torch.Tensor], T: int, K: int, padding_l: int, device) -> torch.Tensor:
    """(B, T, K) bool, or (1, T, K) without ``valid``: tap k of position t reads inside."""
    if valid is None:
        src = torch.arange(T, device=device)[:, None] + torch.arange(K, device=device)[None, :] - padding_l
        return ((src >= 0) & (src < T)).unsqueeze(0)
    padded = F.pad(valid, (padding_l, K - 1 - padding_l), value=False)
    return padded.unfold(1, K, 1)


def mask_outside(x: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """x with every position outside the sequence set to zero."""
    return x if valid is None else x.masked_fill(~valid.unsqueeze(-1), 0.0)


def fairseq_cut(weight: torch.Tensor, T: int, padding_l: int):
    """(weight, padding_l) of fairseq 0.12's short-batch cut of a causal kernel."""
    K = weight.shape[-1]
    if padding_l == K - 1 and K > T:
        return weight[..., K - T:], T - 1
    return weight, padding_l


def renorm_dynamic_logits(weight: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(B, T, H, K) logits whose taps outside the sequence have softmax weight 0."""
    return weight.masked_fill(~inside.unsqueeze(2), torch.finfo(weight.dtype).min)


def renorm_light_scale(weight: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """(B, T, H) float32 factor 1 / Z that turns the ``zeros`` result into ``renorm``'s."""
    probs = torch.softmax(weight.float(), dim=-1)  # (H, K)
    z = torch.einsum("btk,hk->bth", inside.float(), probs)
    all_inside = inside.all(dim=-1, keepdim=True)
    some_inside = inside.any(dim=-1, keepdim=True)
    # 1 / z only where it is used, so that no inf reaches the gradient.
    inv = 1.0 / torch.where(some_inside, z, torch.ones_like(z))
    scale = torch.where(all_inside, torch.ones_like(z), inv)
    return torch.where(some_inside, scale, torch.zeros_like(z))


def scale_heads(out: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """out (B, T, C) times a per-head factor (B, T, H), in float32, back to out's dtype."""
    B, T, C = out.shape
    H = scale.shape[-1]
    scaled = out.float().view(B, T, H, C // H) * scale.unsqueeze(-1)
    return scaled.view(B, T, C).to(out.dtype)


def zero_where_no_tap_inside(out: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    return out.masked_fill(~inside.any(dim=-1, keepdim=True), 0.0)
