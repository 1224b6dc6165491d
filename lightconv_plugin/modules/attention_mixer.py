"""Multi-head self-attention as a mixer: ``--{encoder,decoder}-conv-type attention``.

With ``attention`` on both sides ``lcp_seq2seq`` is a Transformer (Vaswani et
al., 2017), post-norm as fairseq's ``transformer``, of the conv models' sizes:
the baseline the convolution papers compare against, in the same code.

Projections. A Transformer's self-attention sub-layer is its Q, K, V and
output projections (C -> C each, with bias) around the heads. The mixer owns
all four (``owns_projections``), and the block around it then has no input
projection, GLU or output projection of its own (``ConvSubBlock``): the
sub-layer has exactly a Transformer's parameters, not a convolution block's
projections stacked on an attention's. ``--{side}-conv-dim`` must then equal
``--{side}-embed-dim``, and GLU (which gates the block's input projection) is
off by default and an error when asked for.

Dropout. For every mixer ``--weight-dropout`` acts on its normalised mixing
weights (the convolutions' softmax kernel, TaLK's offsets); here it is
dropout on the attention probabilities. ``--attention-dropout`` stays the
encoder-decoder attention's, and ``--weight-dropout`` defaults to it, so a
configuration that sets only ``--attention-dropout`` drops both, as
fairseq's Transformer does.

Masks. A padded key gets no weight. Every query may also see its own
position: a real query does anyway (its key is real, and causal attention
includes the diagonal), and a padded query, whose output nobody reads, then
never has an empty row, which softmax would turn into NaN.

``size`` (the kernel-size list entry) means nothing here (``takes_size``).

Decoding state: ``key`` and ``value`` (B, H, t, C / H), batch first so that
beam search reorders them like any other state, and ``key_pad`` (B, t) once
a step has been given a padding mask (decoding without padding keeps none,
and builds no mask: no step has to ask the GPU whether anything is padded).
It grows by one position per step: this is the one mixer whose state is not
bounded, and a step costs O(t).

Kernels. Every call goes to ``scaled_dot_product_attention`` with the
flash, memory-efficient and math backends allowed, not cuDNN's: on an H200
(torch 2.11, cuDNN 9.19) PyTorch picks cuDNN for a decoding step, and cuDNN
builds an execution plan for each new key length, 35-55 ms every step of
beam search (a step that then runs for 0.04 ms), and for each new batch
shape in training.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

State = Dict[str, torch.Tensor]

# Every backend but cuDNN's, in PyTorch's own order of preference.
_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def _projection(dim: int, gain: float = 1.0) -> nn.Linear:
    layer = nn.Linear(dim, dim)
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class AttentionMixer(nn.Module):
    owns_projections = True

    def __init__(self, dim: int, num_heads: int, causal: bool, dropout: float = 0.0):
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads}: must divide the attention dim {dim}")
        self.dim, self.num_heads, self.causal = dim, num_heads, causal
        self.head_dim = dim // num_heads
        self.dropout = dropout
        # Q, K and V start with the scale a fused (3C x C) Xavier in-projection
        # has, as in the Transformers this one is compared with.
        self.q_proj, self.k_proj, self.v_proj = (_projection(dim, 1 / math.sqrt(2)) for _ in range(3))
        self.out_proj = _projection(dim)

    def _heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q, k, v, allowed: Optional[torch.Tensor], is_causal: bool):
        with sdpa_kernel(_BACKENDS):
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, is_causal=is_causal,
                dropout_p=self.dropout if self.training else 0.0)
        B, H, T, R = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(B, T, H * R))

    def forward(self, x: torch.Tensor, pad_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        q, k, v = (self._heads(p(x)) for p in (self.q_proj, self.k_proj, self.v_proj))
        if pad_mask is None:
            return self._attend(q, k, v, None, self.causal)
        T = x.shape[1]
        allowed = ~pad_mask[:, None, None, :]  # (B, 1, 1, T) over keys
        if self.causal:
            allowed = allowed & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        allowed = allowed | torch.eye(T, dtype=torch.bool, device=x.device)
        return self._attend(q, k, v, allowed, False)

    def step(self, x_t: torch.Tensor, state: Optional[State], pad_mask_t: Optional[torch.Tensor] = None):
        """x_t (B, 1, C) -> (B, 1, C), attending over every position so far."""
        if not self.causal:
            raise RuntimeError("step() is for causal (decoder) mixers")
        B = x_t.shape[0]
        q, k, v = (self._heads(p(x_t)) for p in (self.q_proj, self.k_proj, self.v_proj))
        if state is not None:
            k = torch.cat([state["key"], k], dim=2)
            v = torch.cat([state["value"], v], dim=2)
        new_state = {"key": k, "value": v}
        allowed = None
        past = None if state is None else state.get("key_pad")
        if pad_mask_t is not None or past is not None:
            # Padding seen: keep the key mask from now on (earlier steps had none).
            if past is None:
                past = torch.zeros(B, k.shape[2] - 1, dtype=torch.bool, device=x_t.device)
            pad = (torch.zeros(B, 1, dtype=torch.bool, device=x_t.device) if pad_mask_t is None
                   else pad_mask_t.reshape(B, 1))
            pad = torch.cat([past, pad], dim=1)
            new_state["key_pad"] = pad
            # The newest key is the query's own position, always allowed (as in forward).
            allowed = ~pad
            allowed[:, -1] = True
            allowed = allowed[:, None, None, :]
        return self._attend(q, k, v, allowed, False), new_state

    def extra_repr(self):
        return f"dim={self.dim}, heads={self.num_heads}, causal={self.causal}, dropout={self.dropout}"


def build_attention_mixer(conv_type: str, dim: int, num_heads: int, size, causal: bool, args):
    return AttentionMixer(dim, num_heads, causal, dropout=args.weight_dropout)


# Read by the registry (mixers.py) before any mixer is built: the architecture
# needs them to fill the kernel-size lists and the GLU defaults.
build_attention_mixer.takes_size = False
build_attention_mixer.owns_projections = AttentionMixer.owns_projections
