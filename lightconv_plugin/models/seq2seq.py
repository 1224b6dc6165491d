"""Encoder-decoder model whose self-attention is replaced by a convolution.

Registered as ``lcp_seq2seq``; the convolution type of each side is an option
(``--encoder-conv-type``/``--decoder-conv-type``), so one model class serves
LightConv, DynamicConv and TaLK. The named architectures of the papers live in
``seq2seq_archs.py``.
"""

from __future__ import annotations

import math
from typing import Dict, List

import torch
import torch.nn as nn
from fairseq import utils
from fairseq.models import (
    FairseqEncoder,
    FairseqEncoderDecoderModel,
    FairseqIncrementalDecoder,
    register_model,
)
from fairseq.modules import AdaptiveSoftmax, LayerNorm, PositionalEmbedding

from ..modules.blocks import DecoderBlock, EncoderBlock
from ..modules.mixers import MIXER_BUILDERS
from . import options

DEFAULT_MAX_POSITIONS = 1024


def embedding(num: int, dim: int, padding_idx: int) -> nn.Embedding:
    emb = nn.Embedding(num, dim, padding_idx=padding_idx)
    nn.init.normal_(emb.weight, mean=0, std=dim**-0.5)
    nn.init.zeros_(emb.weight[padding_idx])
    return emb


class TokenEmbedder(nn.Module):
    """sqrt(d) * token embedding (+ input projection) + positions, then dropout."""

    def __init__(self, embed_tokens, embed_dim, max_positions, padding_idx, learned_pos,
                 no_positions, dropout):
        super().__init__()
        self.embed_tokens = embed_tokens
        self.embed_scale = math.sqrt(embed_dim)
        in_dim = embed_tokens.embedding_dim
        self.project_in = nn.Linear(in_dim, embed_dim, bias=False) if in_dim != embed_dim else None
        self.embed_positions = None if no_positions else PositionalEmbedding(
            max_positions, embed_dim, padding_idx, learned=learned_pos)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens, incremental_state=None):
        positions = None
        if self.embed_positions is not None:
            positions = self.embed_positions(tokens, incremental_state=incremental_state)
        if incremental_state is not None:
            tokens = tokens[:, -1:]
            positions = positions[:, -1:] if positions is not None else None
        x = self.embed_scale * self.embed_tokens(tokens)
        if self.project_in is not None:
            x = self.project_in(x)
        if positions is not None:
            x = x + positions
        return self.dropout(x)

    def max_positions(self, configured):
        if self.embed_positions is None:
            return configured
        return min(configured, self.embed_positions.max_positions)


class ConvEncoder(FairseqEncoder):
    def __init__(self, args, dictionary, embed_tokens):
        super().__init__(dictionary)
        self.padding_idx = dictionary.pad()
        self.max_source_positions = args.max_source_positions
        self.embed = TokenEmbedder(embed_tokens, args.encoder_embed_dim, args.max_source_positions,
                                   self.padding_idx, args.encoder_learned_pos,
                                   args.no_token_positional_embeddings, args.dropout)
        self.layers = nn.ModuleList(EncoderBlock(args, k) for k in args.encoder_kernel_size_list)
        self.final_norm = LayerNorm(args.encoder_embed_dim) if args.encoder_normalize_before else None

    def forward(self, src_tokens, src_lengths=None, **unused):
        pad_mask = src_tokens.eq(self.padding_idx)
        x = self.embed(src_tokens)
        mask = pad_mask if pad_mask.any() else None
        for layer in self.layers:
            x = layer(x, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return {
            "encoder_out": [x.transpose(0, 1)],  # (T, B, C), as fairseq's attention expects
            "encoder_padding_mask": [pad_mask] if mask is not None else [],
            "src_tokens": [],
            "src_lengths": [],
        }

    @torch.jit.export
    def reorder_encoder_out(self, encoder_out: Dict[str, List[torch.Tensor]], new_order):
        out = encoder_out["encoder_out"][0].index_select(1, new_order)
        masks = [m.index_select(0, new_order) for m in encoder_out["encoder_padding_mask"]]
        return {"encoder_out": [out], "encoder_padding_mask": masks, "src_tokens": [],
                "src_lengths": []}

    def max_positions(self):
        return self.embed.max_positions(self.max_source_positions)


class ConvDecoder(FairseqIncrementalDecoder):
    """Causal convolution blocks; with ``no_encoder_attn`` it is a language model."""

    def __init__(self, args, dictionary, embed_tokens, no_encoder_attn=False, final_norm=True):
        super().__init__(dictionary)
        self.padding_idx = dictionary.pad()
        self.max_target_positions = args.max_target_positions
        embed_dim, out_dim = args.decoder_embed_dim, args.decoder_output_dim
        self.embed = TokenEmbedder(embed_tokens, embed_dim, args.max_target_positions,
                                   self.padding_idx, args.decoder_learned_pos,
                                   args.no_token_positional_embeddings, args.dropout)
        self.layers = nn.ModuleList(DecoderBlock(args, k, no_encoder_attn)
                                    for k in args.decoder_kernel_size_list)
        self.final_norm = (LayerNorm(embed_dim)
                           if args.decoder_normalize_before and final_norm else None)
        tie_adaptive = getattr(args, "tie_adaptive_weights", False)
        self.project_out = (nn.Linear(embed_dim, out_dim, bias=False)
                            if embed_dim != out_dim and not tie_adaptive else None)
        self.adaptive_softmax = None
        self.output_projection = None
        if args.adaptive_softmax_cutoff is not None:
            self.adaptive_softmax = AdaptiveSoftmax(
                len(dictionary), out_dim,
                utils.eval_str_list(args.adaptive_softmax_cutoff, type=int),
                dropout=args.adaptive_softmax_dropout,
                adaptive_inputs=embed_tokens if tie_adaptive else None,
                factor=getattr(args, "adaptive_softmax_factor", 4),
                tie_proj=getattr(args, "tie_adaptive_proj", False))
        elif args.share_decoder_input_output_embed:
            self.output_projection = nn.Linear(embed_tokens.embedding_dim, len(dictionary), bias=False)
            self.output_projection.weight = embed_tokens.weight
        else:
            self.output_projection = nn.Linear(out_dim, len(dictionary), bias=False)
            nn.init.normal_(self.output_projection.weight, mean=0, std=out_dim**-0.5)

    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None,
                features_only: bool = False, **unused):
        x, extra = self.extract_features(prev_output_tokens, encoder_out, incremental_state)
        if not features_only:
            x = self.output_layer(x)
        return x, extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None,
                         **unused):
        tokens = prev_output_tokens if incremental_state is None else prev_output_tokens[:, -1:]
        pad_mask = tokens.eq(self.padding_idx)
        pad_mask = pad_mask if pad_mask.any() else None
        x = self.embed(prev_output_tokens, incremental_state)
        enc, enc_mask = None, None
        if encoder_out is not None:
            enc = encoder_out["encoder_out"][0]
            if encoder_out.get("encoder_padding_mask"):
                enc_mask = encoder_out["encoder_padding_mask"][0]
        inner_states = [x]
        attn = None
        for i, layer in enumerate(self.layers):
            need_attn = not self.training and i == len(self.layers) - 1
            x, attn = layer(x, pad_mask, enc, enc_mask, incremental_state, need_attn=need_attn)
            inner_states.append(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.project_out is not None:
            x = self.project_out(x)
        return x, {"attn": [attn], "inner_states": inner_states}

    def output_layer(self, features):
        return features if self.adaptive_softmax is not None else self.output_projection(features)

    def max_positions(self):
        return self.embed.max_positions(self.max_target_positions)


@register_model("lcp_seq2seq")
class ConvSeq2SeqModel(FairseqEncoderDecoderModel):
    """LightConv / DynamicConv / TaLK encoder-decoder (see ``--encoder-conv-type``)."""

    @staticmethod
    def add_args(parser):
        options.add_common_args(parser)
        options.add_side_args(parser, "encoder", sorted(MIXER_BUILDERS))
        options.add_side_args(parser, "decoder", sorted(MIXER_BUILDERS))
        options.add_output_args(parser)
        parser.add_argument("--share-all-embeddings", action="store_true",
                            help="share encoder, decoder and output embeddings (joined dictionary)")
        add_depth_adaptive_args(parser)

    @classmethod
    def build_model(cls, args, task):
        from .seq2seq_archs import base_architecture

        base_architecture(args)
        args.max_source_positions = getattr(args, "max_source_positions", None) or DEFAULT_MAX_POSITIONS
        args.max_target_positions = getattr(args, "max_target_positions", None) or DEFAULT_MAX_POSITIONS
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary

        if args.share_all_embeddings:
            if src_dict != tgt_dict:
                raise ValueError("--share-all-embeddings needs a joined dictionary (fairseq-preprocess --joined-dictionary)")
            if args.encoder_embed_dim != args.decoder_embed_dim:
                raise ValueError(
                    f"--share-all-embeddings needs encoder_embed_dim={args.encoder_embed_dim} "
                    f"== decoder_embed_dim={args.decoder_embed_dim}")
            enc_emb = embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
            dec_emb = enc_emb
            args.share_decoder_input_output_embed = True
        else:
            enc_emb = embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
            dec_emb = embedding(len(tgt_dict), args.decoder_input_dim, tgt_dict.pad())
        encoder = ConvEncoder(args, src_dict, enc_emb)
        set_depth_adaptive_defaults(args)
        if args.exit_classifiers == "none":
            decoder = ConvDecoder(args, tgt_dict, dec_emb)
        else:
            decoder = DepthAdaptiveDecoder(args, tgt_dict, dec_emb, args.encoder_embed_dim)
        model = cls(encoder, decoder)
        if args.train_halting_only:
            freeze_all_but_halting(model, args)
        return model


# Imported last: depth_adaptive.py subclasses ConvDecoder, defined above.
from .depth_adaptive import (  # noqa: E402
    DepthAdaptiveDecoder, add_depth_adaptive_args, freeze_all_but_halting, set_depth_adaptive_defaults)
