"""Sequence mixers built on the lightweight and dynamic convolution ops.

A mixer maps (B, T, C) to (B, T, C) along time. Blocks call ``forward`` on
whole sequences and ``step`` during incremental decoding, where ``state`` is
whatever the mixer needs to produce the next position (here the last K - 1
inputs, a bounded buffer, and with ``edge="renorm"`` which of them are inside
the sequence) and must be a dict of tensors with batch first so that beam
search can reorder it with ``index_select``.

``edge`` is the op's rule for taps outside the sequence (see
:mod:`lightconv_kernels.conv.edge`). Decoding applies ``zeros`` for both
``zeros`` and ``fairseq`` (fairseq's own decoding does), and ``renorm`` as in
the full forward, so that ``renorm`` decodes exactly what it trained on.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightconv_kernels import dynamic_conv, lightweight_conv
from lightconv_kernels.conv.edge import EDGES

State = Dict[str, torch.Tensor]


def encoder_padding_l(kernel_size: int) -> int:
    # Centred; for even K the extra tap goes to the right.
    return (kernel_size - 1) // 2


def taps_over_window(window: torch.Tensor, taps: torch.Tensor, per_head: bool) -> torch.Tensor:
    """out[b, 0, c] = sum_j taps[b, head(c), j] * window[b, j, c], in float32, in window's dtype.

    window (B, width, C), taps (B, H, width). ``per_head`` picks how (both
    give the same sums, and the tests check both on CPU):

    * True (the CPU's): one matmul per head, reading that head's (width, C/H)
      columns of the window in place (row stride C). A single batched matmul
      would need the window permuted head-major first, a copy of all of it.
    * False (a GPU's): a decoding step there is bound by kernel launches,
      not bytes, so one broadcast multiply and one sum, whatever H.
    """
    B, width, C = window.shape
    H = taps.shape[1]
    R = C // H
    w = window.float()
    if per_head:
        out = torch.cat([torch.bmm(taps[:, h:h + 1], w[:, :, h * R:(h + 1) * R]) for h in range(H)], dim=2)
    else:
        out = (w.view(B, width, H, R) * taps.transpose(1, 2).unsqueeze(-1)).sum(1).view(B, 1, C)
    return out.to(window.dtype)


class _KTapMixer(nn.Module):
    """Shared parts of the two K-tap convolutions: config and the decoding buffer."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int, causal: bool,
                 weight_softmax: bool = True, weight_dropout: float = 0.0, edge: str = "zeros"):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads}: must divide the convolution dim {dim}")
        if kernel_size < 1:
            raise ValueError(f"kernel_size={kernel_size}: must be >= 1")
        if edge not in EDGES:
            raise ValueError(f"edge={edge!r}: expected one of {', '.join(EDGES)}")
        if edge == "renorm" and not weight_softmax:
            raise ValueError("edge='renorm': needs weight_softmax=True (it renormalises the softmax)")
        self.edge = edge
        self.dim, self.num_heads, self.kernel_size = dim, num_heads, kernel_size
        self.causal = causal
        self.padding_l = kernel_size - 1 if causal else encoder_padding_l(kernel_size)
        self.weight_softmax = weight_softmax
        self.weight_dropout = weight_dropout

    def _op_edge(self, pad_mask: Optional[torch.Tensor]):
        """(edge, valid) for the op: only ``renorm`` needs to know where padding is;
        the block has already zeroed padded inputs."""
        if self.edge == "renorm" and pad_mask is not None:
            return self.edge, ~pad_mask
        return self.edge, None

    def _taps(self, logits: torch.Tensor, inside: Optional[torch.Tensor]) -> torch.Tensor:
        """Normalised taps (B, H, K) of one step; ``inside`` (B, K) only for renorm."""
        w = logits.float()
        if inside is not None:
            w = w.masked_fill(~inside.unsqueeze(1), float("-inf"))
            w = torch.softmax(w, dim=-1).nan_to_num(0.0)  # no tap inside: all -inf rows give 0
        elif self.weight_softmax:
            w = torch.softmax(w, dim=-1)
        return w

    def _window(self, x_t: torch.Tensor, state: Optional[State]) -> torch.Tensor:
        """The inputs so far, at most the last K, as (B, width, C).

        Time-major, as the inputs arrive: appending a step and keeping the
        last K - 1 copy whole contiguous rows, and so does beam search's
        reorder. A taps-last (B, C, width) buffer had to be rewritten in rows
        of ``width`` values at every step, and its reorder read a strided
        slice. The window grows from 1 to K over the first K steps instead of
        starting as K - 1 zeros: a tap on a zero adds nothing, and for a short
        sentence with a wide kernel (K = 31 in the upper IWSLT and WMT decoder
        layers) copying, reordering and multiplying those zeros at every step
        was most of the step's cost.
        """
        return x_t if state is None else torch.cat([state["window"], x_t], dim=1)

    def _apply_window(self, window: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
        """The last ``width`` of taps (B, H, K) over window (B, width, C) -> (B, 1, C), dtype of window."""
        width = window.shape[1]
        return taps_over_window(window, taps[..., taps.shape[-1] - width:], window.device.type == "cpu")

    def _inside(self, x_t: torch.Tensor, state: Optional[State], pad_mask_t: Optional[torch.Tensor]):
        """(B, width) bool: which inputs of the window are inside the sequence."""
        B = x_t.shape[0]
        now = torch.ones(B, 1, dtype=torch.bool, device=x_t.device) if pad_mask_t is None else ~pad_mask_t
        return now.view(B, 1) if state is None else torch.cat([state["inside"], now.view(B, 1)], dim=1)

    def step(self, x_t: torch.Tensor, state: Optional[State], pad_mask_t: Optional[torch.Tensor] = None):
        if not self.causal:
            raise RuntimeError("step() is for causal (decoder) mixers")
        window = self._window(x_t, state)
        inside = self._inside(x_t, state, pad_mask_t) if self.edge == "renorm" else None
        K, width = self.kernel_size, window.shape[1]
        # Taps before the start of the sequence are outside it.
        tap_inside = None if inside is None else F.pad(inside, (K - width, 0), value=False)
        out = self._apply_window(window, self._taps(self._step_logits(x_t), tap_inside))
        keep = max(0, width - (K - 1))  # the state holds the last K - 1 inputs
        new_state = {"window": window[:, keep:]}
        if inside is not None:
            new_state["inside"] = inside[:, keep:]
        return out, new_state

    def extra_repr(self):
        return (f"dim={self.dim}, heads={self.num_heads}, kernel_size={self.kernel_size}, "
                f"padding_l={self.padding_l}, weight_softmax={self.weight_softmax}, "
                f"weight_dropout={self.weight_dropout}, edge={self.edge}")


class LightweightConvMixer(_KTapMixer):
    """One softmax-normalised K-tap kernel per head, shared by all positions."""

    def __init__(self, dim, num_heads, kernel_size, causal, **kw):
        super().__init__(dim, num_heads, kernel_size, causal, **kw)
        self.weight = nn.Parameter(torch.empty(num_heads, kernel_size))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        edge, valid = self._op_edge(pad_mask)
        return lightweight_conv(x, self.weight, self.padding_l, weight_softmax=self.weight_softmax,
                                weight_dropout=self.weight_dropout, training=self.training,
                                edge=edge, valid=valid)

    def _step_logits(self, x_t):
        return self.weight.unsqueeze(0).expand(x_t.shape[0], -1, -1)


class DynamicConvMixer(_KTapMixer):
    """A K-tap kernel per position and head, predicted from that position alone."""

    def __init__(self, dim, num_heads, kernel_size, causal, **kw):
        super().__init__(dim, num_heads, kernel_size, causal, **kw)
        self.weight_proj = nn.Linear(dim, num_heads * kernel_size, bias=False)
        nn.init.xavier_uniform_(self.weight_proj.weight)

    def _logits(self, x):
        B, T, _ = x.shape
        return self.weight_proj(x).view(B, T, self.num_heads, self.kernel_size)

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        edge, valid = self._op_edge(pad_mask)
        return dynamic_conv(x, self._logits(x), self.padding_l, weight_softmax=self.weight_softmax,
                            weight_dropout=self.weight_dropout, training=self.training,
                            edge=edge, valid=valid)

    def _step_logits(self, x_t):
        return self._logits(x_t)[:, 0]


def build_ktap_mixer(conv_type: str, dim: int, num_heads: int, size: int, causal: bool, args):
    cls = {"lightweight": LightweightConvMixer, "dynamic": DynamicConvMixer}[conv_type]
    return cls(dim, num_heads, size, causal, weight_softmax=args.weight_softmax,
               weight_dropout=args.weight_dropout, edge=args.conv_edge)
