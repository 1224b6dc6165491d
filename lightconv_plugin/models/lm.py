"""Decoder-only language model built from the causal convolution blocks.

Registered as ``lcp_lm``; adaptive input and adaptive softmax (for large
vocabularies such as Billion Word) come from fairseq. Named architectures are
in ``lm_archs.py``.
"""

from __future__ import annotations

from fairseq import utils
from fairseq.models import FairseqLanguageModel, register_model
from fairseq.modules import AdaptiveInput

from ..modules.mixers import MIXER_BUILDERS
from . import options
from .seq2seq import ConvDecoder, embedding


@register_model("lcp_lm")
class ConvLanguageModel(FairseqLanguageModel):
    """LightConv / DynamicConv / TaLK language model (see ``--decoder-conv-type``)."""

    @staticmethod
    def add_args(parser):
        options.add_common_args(parser)
        options.add_side_args(parser, "decoder", sorted(MIXER_BUILDERS))
        options.add_output_args(parser)
        add = parser.add_argument
        add("--decoder-final-norm", type=utils.eval_bool, metavar="BOOL",
            help="LayerNorm after the last pre-norm block")
        add("--adaptive-softmax-factor", type=float, metavar="N", help="adaptive softmax dim factor")
        add("--adaptive-input", type=utils.eval_bool, metavar="BOOL", help="adaptive input embeddings")
        add("--adaptive-input-factor", type=float, metavar="N", help="adaptive input dim factor")
        add("--adaptive-input-cutoff", metavar="LIST", help="comma separated adaptive input cutoffs")
        add("--tie-adaptive-weights", type=utils.eval_bool, metavar="BOOL",
            help="tie adaptive input and adaptive softmax embeddings")
        add("--tie-adaptive-proj", type=utils.eval_bool, metavar="BOOL",
            help="also tie their projections")

    @classmethod
    def build_model(cls, args, task):
        from .lm_archs import base_lm_architecture

        base_lm_architecture(args)
        if getattr(args, "max_target_positions", None) is None:
            args.max_target_positions = args.tokens_per_sample
        dictionary = task.source_dictionary
        if args.adaptive_input:
            embed_tokens = AdaptiveInput(
                len(dictionary), dictionary.pad(), args.decoder_input_dim,
                args.adaptive_input_factor, args.decoder_embed_dim,
                utils.eval_str_list(args.adaptive_input_cutoff, type=int))
        else:
            embed_tokens = embedding(len(dictionary), args.decoder_input_dim, dictionary.pad())
        if args.tie_adaptive_weights:
            problems = []
            if not args.adaptive_input:
                problems.append("needs --adaptive-input")
            if args.adaptive_input_factor != args.adaptive_softmax_factor:
                problems.append(f"adaptive_input_factor={args.adaptive_input_factor} != "
                                f"adaptive_softmax_factor={args.adaptive_softmax_factor}")
            if str(args.adaptive_input_cutoff) != str(args.adaptive_softmax_cutoff):
                problems.append(f"adaptive_input_cutoff={args.adaptive_input_cutoff} != "
                                f"adaptive_softmax_cutoff={args.adaptive_softmax_cutoff}")
            if problems:
                raise ValueError("--tie-adaptive-weights: " + "; ".join(problems))
        decoder = ConvDecoder(args, task.target_dictionary, embed_tokens, no_encoder_attn=True,
                              final_norm=args.decoder_final_norm)
        return cls(decoder)
