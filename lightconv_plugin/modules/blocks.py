"""Encoder and decoder blocks: a convolution sub-block, (decoder) encoder-decoder
attention, and a feed-forward sub-block, each with residual and LayerNorm.

Everything is batch-first (B, T, C) because the convolution ops are; fairseq's
attention wants (T, B, C), so only the attention input is transposed.
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.incremental_decoding_utils import with_incremental_state
from fairseq.modules import LayerNorm, MultiheadAttention

from .mixers import build_mixer, owns_projections

ACTIVATIONS = {"relu": F.relu, "swish": F.silu, "gelu": F.gelu}


def _linear(fan_in: int, fan_out: int, bias: bool = True) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out, bias=bias)
    nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class _Residual(nn.Module):
    """LayerNorm before (pre-norm) or after (post-norm) a residual branch."""

    def __init__(self, dim: int, normalize_before: bool, dropout: float):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.normalize_before = normalize_before
        self.dropout = nn.Dropout(dropout)

    def enter(self, x):
        return self.norm(x) if self.normalize_before else x

    def leave(self, residual, branch):
        x = residual + self.dropout(branch)
        return x if self.normalize_before else self.norm(x)


class ConvSubBlock(nn.Module):
    """input dropout -> Linear (to 2x conv dim and GLU, or conv dim) -> mask pads -> mixer -> Linear.

    A mixer that owns its projections (self-attention: Q, K, V and output) gets
    neither Linear nor GLU around it, so that its sub-block is the same layer
    as in the model it comes from (a Transformer's self-attention sub-layer).
    """

    def __init__(self, embed_dim, conv_dim, conv_type, size, num_heads, causal, glu, args, side):
        super().__init__()
        self.glu = glu
        self.input_dropout = nn.Dropout(args.input_dropout)
        projected = not owns_projections(conv_type)
        if not projected and glu:
            raise ValueError(
                f"--{side}-glu=True: {conv_type} layers have no input projection to gate "
                f"(the mixer projects its own inputs); use --{side}-glu False")
        if not projected and conv_dim != embed_dim:
            raise ValueError(
                f"--{side}-conv-dim={conv_dim}: {conv_type} layers have no projection from "
                f"--{side}-embed-dim={embed_dim}; the two must be equal")
        # This order fixes the initialisation draws and the parameter order
        # that saved optimizer states follow: keep it.
        self.in_proj = _linear(embed_dim, 2 * conv_dim if glu else conv_dim) if projected else None
        self.mixer = build_mixer(conv_type, conv_dim, num_heads, size, causal, args)
        self.out_proj = _linear(conv_dim, embed_dim) if projected else None

    def _project_in(self, x, pad_mask):
        x = self.input_dropout(x)
        if self.in_proj is not None:
            x = self.in_proj(x)
        if self.glu:
            x = F.glu(x, dim=-1)
        if pad_mask is not None:
            # Padded positions must not leak into real ones through the convolution.
            x = x.masked_fill(pad_mask.unsqueeze(-1), 0.0)
        return x

    def _project_out(self, y):
        return y if self.out_proj is None else self.out_proj(y)

    def forward(self, x, pad_mask: Optional[torch.Tensor]):
        return self._project_out(self.mixer(self._project_in(x, pad_mask), pad_mask))

    def step(self, x_t, pad_mask_t, state):
        y, state = self.mixer.step(self._project_in(x_t, pad_mask_t), state, pad_mask_t)
        return self._project_out(y), state


class FeedForward(nn.Module):
    def __init__(self, embed_dim, ffn_dim, activation, activation_dropout):
        super().__init__()
        self.fc1 = _linear(embed_dim, ffn_dim)
        self.fc2 = _linear(ffn_dim, embed_dim)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(activation_dropout)

    def forward(self, x):
        return self.fc2(self.dropout(self.activation(self.fc1(x))))


class EncoderBlock(nn.Module):
    def __init__(self, args, size: int):
        super().__init__()
        d = args.encoder_embed_dim
        self.conv = ConvSubBlock(d, args.encoder_conv_dim, args.encoder_conv_type, size,
                                 args.encoder_attention_heads, False, args.encoder_glu, args, "encoder")
        self.conv_res = _Residual(d, args.encoder_normalize_before, args.dropout)
        self.ffn = FeedForward(d, args.encoder_ffn_embed_dim, args.activation_fn, args.relu_dropout)
        self.ffn_res = _Residual(d, args.encoder_normalize_before, args.dropout)

    def forward(self, x, pad_mask):
        x = self.conv_res.leave(x, self.conv(self.conv_res.enter(x), pad_mask))
        return self.ffn_res.leave(x, self.ffn(self.ffn_res.enter(x)))


@with_incremental_state
class DecoderBlock(nn.Module):
    def __init__(self, args, size: int, no_encoder_attn: bool = False):
        super().__init__()
        d = args.decoder_embed_dim
        self.conv = ConvSubBlock(d, args.decoder_conv_dim, args.decoder_conv_type, size,
                                 args.decoder_attention_heads, True, args.decoder_glu, args, "decoder")
        self.conv_res = _Residual(d, args.decoder_normalize_before, args.dropout)
        self.encoder_attn = None
        if not no_encoder_attn:
            self.encoder_attn = MultiheadAttention(
                d, args.decoder_attention_heads, kdim=args.encoder_embed_dim,
                vdim=args.encoder_embed_dim, dropout=args.attention_dropout,
                encoder_decoder_attention=True)
            self.attn_res = _Residual(d, args.decoder_normalize_before, args.dropout)
        self.ffn = FeedForward(d, args.decoder_ffn_embed_dim, args.activation_fn, args.relu_dropout)
        self.ffn_res = _Residual(d, args.decoder_normalize_before, args.dropout)

    def forward(self, x, pad_mask, encoder_out=None, encoder_pad_mask=None,
                incremental_state: Optional[Dict[str, Dict[str, Optional[torch.Tensor]]]] = None,
                need_attn: bool = False):
        """x (B, T, C); during incremental decoding T = 1 and the conv reads its buffer."""
        residual, h = x, self.conv_res.enter(x)
        if incremental_state is None:
            h = self.conv(h, pad_mask)
        else:
            state = self.get_incremental_state(incremental_state, "conv")
            h, state = self.conv.step(h, pad_mask, state)
            self.set_incremental_state(incremental_state, "conv", state)
        x = self.conv_res.leave(residual, h)

        attn = None
        if self.encoder_attn is not None:
            residual, h = x, self.attn_res.enter(x)
            h, attn = self.encoder_attn(
                query=h.transpose(0, 1), key=encoder_out, value=encoder_out,
                key_padding_mask=encoder_pad_mask, incremental_state=incremental_state,
                static_kv=True, need_weights=need_attn)
            x = self.attn_res.leave(residual, h.transpose(0, 1))
        x = self.ffn_res.leave(x, self.ffn(self.ffn_res.enter(x)))
        return x, attn

    def update_mixer_state(self, x, pad_mask, incremental_state):
        """Feed x (B, 1, C) to the mixer's decoding state only: a Depth-Adaptive
        token that left below this block still leaves its (copied) state in the
        block's window or key/value cache, so later tokens read its history."""
        state = self.get_incremental_state(incremental_state, "conv")
        _, state = self.conv.step(self.conv_res.enter(x), pad_mask, state)
        self.set_incremental_state(incremental_state, "conv", state)

    def reorder_incremental_state(self, incremental_state, new_order):
        state = self.get_incremental_state(incremental_state, "conv")
        if state is not None:
            state = {k: v.index_select(0, new_order) for k, v in state.items()}
            self.set_incremental_state(incremental_state, "conv", state)
