"""Named architectures of ``lcp_lm``: every defaults table in one place."""

from __future__ import annotations

from .options import WU2019_CONV_TYPES, expand_size_list, glu_default, register_architectures, set_defaults

MODEL = "lcp_lm"


def base_lm_architecture(args):
    set_defaults(args, {
        "dropout": 0.1, "attention_dropout": 0.0, "relu_dropout": 0.0, "input_dropout": 0.1,
        "weight_softmax": True, "activation_fn": "relu", "conv_edge": "zeros",
        "decoder_conv_type": "dynamic", "decoder_embed_dim": 512, "decoder_ffn_embed_dim": 2048,
        "decoder_layers": 6, "decoder_attention_heads": 8,
        "decoder_kernel_size_list": [3, 7, 15, 31, 31, 31],
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
        "decoder_glu": glu_default(args.decoder_conv_type),
        "weight_dropout": args.attention_dropout,
        "decoder_conv_dim": args.decoder_embed_dim,
        "decoder_input_dim": args.decoder_embed_dim,
        "decoder_output_dim": args.decoder_embed_dim,
    })
    expand_size_list(args, "decoder")


SETTINGS = {
    # Billion Word (Wu et al., 2019). Adaptive input tied to an adaptive
    # softmax with the bands of Baevski & Auli (2019, section 4.4), whose GBW
    # setup the paper follows: 60K, 100K and the ~633K remaining types, each
    # band 4x narrower than the one before. The projections stay untied: not
    # published for GBW (fairseq's default).
    "gbw": {
        "decoder_embed_dim": 512, "decoder_ffn_embed_dim": 4096, "decoder_attention_heads": 16,
        "dropout": 0.1, "attention_dropout": 0.1,
        "adaptive_input": True, "adaptive_input_cutoff": "60000,160000", "adaptive_input_factor": 4,
        "adaptive_softmax_cutoff": "60000,160000", "adaptive_softmax_factor": 4,
        "tie_adaptive_weights": True,
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

# TaLK LM on WikiText-103 (Lioutas & Guo, 2020): 17 pre-norm layers with
# tied adaptive input and softmax.
ARCHITECTURES.update({
    "talk_lm_wikitext103": {
        "decoder_conv_type": "talk", "activation_fn": "swish", "decoder_layers": 17,
        "decoder_embed_dim": 1024, "decoder_ffn_embed_dim": 4096, "decoder_attention_heads": 16,
        "decoder_kernel_size_list": [3, 5, 7, 15, 31] + [63] * 12,
        "dropout": 0.3, "attention_dropout": 0.1, "weight_dropout": 0.2, "relu_dropout": 0.1,
        "adaptive_input": True, "adaptive_input_cutoff": "20000,60000", "adaptive_input_factor": 4,
        "adaptive_softmax_cutoff": "20000,60000", "adaptive_softmax_factor": 4,
        "adaptive_softmax_dropout": 0.2, "tie_adaptive_weights": True, "tie_adaptive_proj": True,
    },
    "talk_lm_toy": {"decoder_conv_type": "talk", "activation_fn": "swish", **SETTINGS["toy"]},
    # A pre-norm Transformer LM: no kernel list or GLU (see seq2seq_archs'
    # ATTENTION), and the final LayerNorm a pre-norm Transformer ends with.
    "attention_lm_toy": {
        "decoder_conv_type": "attention", "decoder_glu": False, "input_dropout": 0.0,
        "decoder_final_norm": True,
        **{k: v for k, v in SETTINGS["toy"].items() if k != "decoder_kernel_size_list"},
    },
})

register_architectures(MODEL, base_lm_architecture, {MODEL: {}, **ARCHITECTURES})
