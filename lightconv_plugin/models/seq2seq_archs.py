"""Named architectures of ``lcp_seq2seq``: every defaults table in one place.

Names say the convolution type (``attention``: a Transformer) and the
setting. fairseq already owns ``lightconv_*``, so LightConv models are
``lightweightconv_*`` and DynamicConv models ``dynamicconv_*``. Values are the
papers' (Wu et al., 2019, and the authors' released fairseq configurations);
training hyper-parameters that are not part of the model (optimizer, lr,
batch) are in the recipes and README.
"""

from __future__ import annotations

from .options import (WU2019_CONV_TYPES, expand_size_list, glu_default, register_architectures,
                      set_defaults)

MODEL = "lcp_seq2seq"

ENC_KERNELS = [3, 7, 15, 31, 31, 31, 31]
DEC_KERNELS = [3, 7, 15, 31, 31, 31]


def base_architecture(args):
    set_defaults(args, {
        "dropout": 0.1, "attention_dropout": 0.0, "relu_dropout": 0.0, "input_dropout": 0.1,
        "weight_softmax": True, "activation_fn": "relu", "conv_edge": "zeros",
        "encoder_conv_type": "dynamic", "encoder_embed_dim": 512, "encoder_ffn_embed_dim": 2048,
        "encoder_layers": 7, "encoder_attention_heads": 8, "encoder_kernel_size_list": ENC_KERNELS,
        "encoder_normalize_before": False, "encoder_learned_pos": False,
        "decoder_layers": 6, "decoder_kernel_size_list": DEC_KERNELS,
        "decoder_normalize_before": False, "decoder_learned_pos": False,
        "share_decoder_input_output_embed": False, "share_all_embeddings": False,
        "no_token_positional_embeddings": False, "adaptive_softmax_cutoff": None,
        "adaptive_softmax_dropout": 0.0,
    })
    # Defaults that follow from the ones above.
    set_defaults(args, {
        "weight_dropout": args.attention_dropout,
        "encoder_conv_dim": args.encoder_embed_dim,
        "decoder_conv_type": args.encoder_conv_type,
        "decoder_embed_dim": args.encoder_embed_dim,
        "decoder_ffn_embed_dim": args.encoder_ffn_embed_dim,
        "decoder_attention_heads": args.encoder_attention_heads,
        "encoder_glu": glu_default(args.encoder_conv_type),
    })
    enc_glu, dec_glu = glu_default(args.encoder_conv_type), glu_default(args.decoder_conv_type)
    set_defaults(args, {
        # The decoder follows the encoder's GLU unless only one side can have one.
        "decoder_glu": args.encoder_glu if enc_glu == dec_glu else dec_glu,
        "decoder_conv_dim": args.decoder_embed_dim,
        "decoder_input_dim": args.decoder_embed_dim,
        "decoder_output_dim": args.decoder_embed_dim,
    })
    expand_size_list(args, "encoder")
    expand_size_list(args, "decoder")


BIG = {"encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096, "encoder_attention_heads": 16,
       "attention_dropout": 0.1, "weight_dropout": 0.1, "dropout": 0.3,
       "encoder_glu": True, "decoder_glu": True}

# setting -> model defaults shared by LightConv and DynamicConv.
SETTINGS = {
    "iwslt_de_en": {
        "encoder_embed_dim": 512, "encoder_ffn_embed_dim": 1024, "encoder_attention_heads": 4,
        "encoder_layers": 7, "decoder_layers": 6, "dropout": 0.3, "attention_dropout": 0.1,
        "weight_dropout": 0.1, "input_dropout": 0.0, "encoder_glu": False, "decoder_glu": False,
    },
    "wmt16_en_de": {},  # the base configuration (d=512)
    "wmt16_en_de_big": BIG,
    "wmt14_en_fr_big": {**BIG, "dropout": 0.1},
    "wmt17_zh_en_big": {**BIG, "dropout": 0.2, "attention_dropout": 0.2, "weight_dropout": 0.2},
    # The base size (87M parameters for DynamicConv); articles truncated to
    # 400 tokens in preprocessing. Dropout is not published: 0.3 as En-De.
    "cnn_dailymail": {"dropout": 0.3, "attention_dropout": 0.1, "weight_dropout": 0.1},
    # Small enough to train on two CPU cores in minutes (recipes/toy).
    "toy": {
        "encoder_embed_dim": 128, "encoder_ffn_embed_dim": 256, "encoder_attention_heads": 4,
        # Kernels narrower than the corpus's reordering and agreement spans,
        # so the demo only succeeds by stacking context over layers.
        "encoder_layers": 2, "decoder_layers": 2, "encoder_kernel_size_list": [3, 7],
        "decoder_kernel_size_list": [3, 7], "dropout": 0.0, "attention_dropout": 0.0,
        "weight_dropout": 0.0, "input_dropout": 0.0,
    },
}

ARCHITECTURES = {
    f"{prefix}_{setting}": {**defaults, "encoder_conv_type": conv, "decoder_conv_type": conv}
    for prefix, conv in WU2019_CONV_TYPES.items()
    for setting, defaults in SETTINGS.items()
}

# TaLK (Lioutas & Guo, 2020): the kernel-size lists hold each layer's largest
# offset (encoder: left = right; decoder: left only); weight_dropout is the
# offset dropout; the FFN uses swish. Values of the authors' released configs.
TALK = {"encoder_conv_type": "talk", "decoder_conv_type": "talk", "activation_fn": "swish"}
TALK_BIG = {**TALK, **BIG, "encoder_kernel_size_list": ENC_KERNELS, "decoder_kernel_size_list": DEC_KERNELS}
TALK_CNN_DM = {**TALK, "dropout": 0.3, "attention_dropout": 0.1, "weight_dropout": 0.1,
               "encoder_kernel_size_list": ENC_KERNELS, "decoder_kernel_size_list": DEC_KERNELS}
TALK_ARCHITECTURES = {
    "talk_iwslt_de_en": {
        **TALK, **SETTINGS["iwslt_de_en"],
        "encoder_kernel_size_list": [1, 3, 7, 15, 15, 15, 15],
        "decoder_kernel_size_list": [1, 3, 7, 15, 15, 15],
    },
    "talk_wmt16_en_de_big": TALK_BIG,
    "talk_wmt14_en_fr_big": {**TALK_BIG, "dropout": 0.1},
    "talk_cnn_dailymail": TALK_CNN_DM,
    "talk_cnn_dailymail_deep": {
        **TALK_CNN_DM, "encoder_layers": 10, "decoder_layers": 10,
        "encoder_kernel_size_list": [3, 7, 15] + [31] * 7,
        "decoder_kernel_size_list": [3, 7] + [31] * 8,
    },
    "talk_toy": {**TALK, **SETTINGS["toy"]},
}
ARCHITECTURES.update(TALK_ARCHITECTURES)

# Self-attention everywhere: a post-norm Transformer (Vaswani et al., 2017)
# with fairseq's transformer_* settings, the baseline of the papers above.
# No kernel lists (attention reads none) and no GLU (the mixer owns its
# projections: see modules/attention_mixer.py); the Transformer has no
# dropout before its self-attention, and its attention dropout (0.0 unless
# said) is --weight-dropout's default, for self- and cross-attention alike.
ATTENTION = {"encoder_conv_type": "attention", "decoder_conv_type": "attention",
             "encoder_layers": 6, "decoder_layers": 6, "input_dropout": 0.0}
ARCHITECTURES.update({
    # transformer_iwslt_de_en, with the dropout of fairseq's IWSLT14 example.
    "attention_iwslt_de_en": {
        **ATTENTION, "encoder_embed_dim": 512, "encoder_ffn_embed_dim": 1024,
        "encoder_attention_heads": 4, "dropout": 0.3,
    },
    "attention_wmt16_en_de": ATTENTION,  # transformer_wmt_en_de: the base model
    "attention_wmt16_en_de_big": {  # transformer_wmt_en_de_big (Ott et al., 2018)
        **ATTENTION, "encoder_embed_dim": 1024, "encoder_ffn_embed_dim": 4096,
        "encoder_attention_heads": 16, "dropout": 0.3, "attention_dropout": 0.1,
    },
    "attention_toy": {
        **ATTENTION,
        **{k: v for k, v in SETTINGS["toy"].items() if not k.endswith("_kernel_size_list")},
    },
})

register_architectures(MODEL, base_architecture, {MODEL: {}, **ARCHITECTURES})
