"""TaLK mixer: an adaptive window per position and head (Lioutas & Guo, 2020).

Each position predicts, per head, how far its window reaches to the left (and,
in the encoder, to the right) as a fraction of the layer's largest offset:
``sigmoid(Linear(x))``. The window sum comes from a prefix-sum table, so the
cost does not depend on the window size; it is divided by the largest window
(max_left + max_right + 1), the paper's output normalisation.

Offset dropout sets a dropped offset to zero (the window collapses to the
current position on that side) without rescaling the others: an offset is a
length, not an activation, and a rescaled one would reach past the layer's
largest window.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn

from lightconv_kernels import talk_conv
from lightconv_kernels.talk.step import talk_step

State = Dict[str, torch.Tensor]


class TalkMixer(nn.Module):
    def __init__(self, dim: int, num_heads: int, max_offset: int, causal: bool,
                 offset_dropout: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads}: must divide the convolution dim {dim}")
        if max_offset < 0:
            raise ValueError(f"max_offset={max_offset}: must be >= 0")
        self.dim, self.num_heads, self.causal = dim, num_heads, causal
        self.max_left = max_offset
        self.max_right = 0 if causal else max_offset
        self.offset_dropout = offset_dropout
        self.offset_proj = nn.Linear(dim, num_heads * (1 if causal else 2))
        nn.init.xavier_uniform_(self.offset_proj.weight)
        nn.init.zeros_(self.offset_proj.bias)

    def _offsets(self, x):
        offsets = torch.sigmoid(self.offset_proj(x))
        if self.training and self.offset_dropout > 0:
            keep = torch.rand_like(offsets) >= self.offset_dropout
            offsets = offsets * keep
        return offsets

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        # Padded inputs arrive zeroed, and a zero adds nothing to a window sum:
        # padding needs no other treatment here.
        offsets = self._offsets(x)
        if self.causal:
            return talk_conv(x, offsets, None, self.max_left, 0)
        left, right = offsets.split(self.num_heads, dim=-1)
        return talk_conv(x, left.contiguous(), right.contiguous(), self.max_left, self.max_right)

    def step(self, x_t: torch.Tensor, state: Optional[State], pad_mask_t: Optional[torch.Tensor] = None):
        """x_t (B, 1, C) -> (B, 1, C); the state holds max_left + 2 prefix values per channel."""
        if not self.causal:
            raise RuntimeError("step() is for causal (decoder) mixers")
        prefix = None if state is None else state["prefix"]
        out, prefix = talk_step(x_t[:, 0], self._offsets(x_t)[:, 0], prefix, self.max_left)
        return out.unsqueeze(1), {"prefix": prefix}

    def extra_repr(self):
        return (f"dim={self.dim}, heads={self.num_heads}, max_left={self.max_left}, "
                f"max_right={self.max_right}, offset_dropout={self.offset_dropout}")


def build_talk_mixer(conv_type: str, dim: int, num_heads: int, size: int, causal: bool, args):
    edge = args.conv_edge
    if edge != "zeros":
        raise ValueError(
            f"--conv-edge={edge} does not apply to TaLK layers: a TaLK window is clipped at the "
            "sequence edge and divided by the largest window (the paper's normalisation), not "
            "softmax-normalised over taps, so it has only the 'zeros' edge; use --conv-edge zeros "
            "with --encoder-conv-type/--decoder-conv-type talk")
    return TalkMixer(dim, num_heads, size, causal, offset_dropout=args.weight_dropout)
