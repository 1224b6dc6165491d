"""Named architectures of ``lcp_lm``: every defaults table in one place."""

from __future__ import annotations

from .options import WU2019_CONV_TYPES, expand_size_list, register_architectures, set_defaults

MODEL = "lcp_lm"


def base_lm_architecture(args):
    set_defaults(args, {
        "dropout": 0.1, "attention_dropout": 0.0, "relu_dropout": 0.0, "input_dropout": 0.1,
        "weight_softmax": True, "activation_fn": "relu",
        "decoder_conv_type": "dynamic", "decoder_embed_dim": 512, "decoder_ffn_embed_dim": 2048,
        "decoder_layers": 6, "decoder_attention_heads": 8,
        "decoder_kernel_size_list": [3, 7, 15, 31, 31, 31], "decoder_glu": True,
        # Pre-norm without a final LayerNorm: the configuration of the paper's
        # released LM checkpoints (fairseq's lightconv_lm), kept so they convert.
        "decoder_normalize_before": True, "decoder_final_norm": False,
        "decoder_learned_pos": False, "no_token_positional_embeddings": False,
        "share_decoder_input_output_embed": False, "adaptive_softmax_cutoff": None,
        "adaptive_softmax_dropout": 0.0, "adaptive_softmax_factor": 4,
        "adaptive_input": False, "adaptive_input_factor": 4, "adaptive_input_cutoff": None,
        "tie_adaptive_weights": False, "tie_adaptive_proj": False,
    })
    set_defaults(args, {
        "weight_dropout": args.attention_dropout,
        "decoder_conv_dim": args.decoder_embed_dim,
        "decoder_input_dim": args.decoder_embed_dim,
        "decoder_output_dim": args.decoder_embed_dim,
    })
    expand_size_list(args, "decoder")


SETTINGS = {
    # Billion Word (Wu et al., 2019).
    "gbw": {
        "decoder_embed_dim": 512, "decoder_ffn_embed_dim": 4096, "decoder_attention_heads": 16,
        "dropout": 0.1, "attention_dropout": 0.1,
    },
    "toy": {
        "decoder_embed_dim": 64, "decoder_ffn_embed_dim": 128, "decoder_attention_heads": 4,
        "decoder_layers": 2, "decoder_kernel_size_list": [3, 7],
    },
}

ARCHITECTURES = {
    f"{prefix}_lm_{setting}": {**defaults, "decoder_conv_type": conv}
    for prefix, conv in WU2019_CONV_TYPES.items()
    for setting, defaults in SETTINGS.items()
}

register_architectures(MODEL, base_lm_architecture, {MODEL: {}, **ARCHITECTURES})
