"""Command-line options shared by the encoder-decoder and the language model,
and the helpers that fill defaults and check them.

Option names follow fairseq's own ``lightconv`` model where they mean the same
thing, so that its checkpoints' arguments carry over unchanged.
"""

from __future__ import annotations

from fairseq import utils
from lightconv_kernels.conv.edge import EDGES
from fairseq.models import register_model_architecture

from ..modules.mixers import owns_projections, takes_size


# Architecture-name prefix -> conv type for the models of Wu et al. (2019);
# fairseq already owns the ``lightconv_*`` names.
WU2019_CONV_TYPES = {"lightweightconv": "lightweight", "dynamicconv": "dynamic"}


def _int_list(value):
    return utils.eval_str_list(value, type=int)


def add_common_args(parser):
    add = parser.add_argument
    add("--dropout", type=float, metavar="D", help="dropout on block outputs and embeddings")
    add("--attention-dropout", type=float, metavar="D",
        help="dropout on encoder-decoder attention weights (default of --weight-dropout)")
    add("--relu-dropout", type=float, metavar="D", help="dropout after the FFN activation")
    add("--input-dropout", type=float, metavar="D", help="dropout on the input of each convolution sub-block")
    add("--weight-dropout", type=float, metavar="D",
        help="dropout on the mixer's normalised weights: DropConnect on the convolution kernel, "
             "TaLK's offsets, self-attention probabilities")
    add("--weight-softmax", type=utils.eval_bool, metavar="BOOL", help="softmax-normalise the kernel over K")
    add("--activation-fn", choices=["relu", "swish", "gelu"], help="FFN activation")
    add("--conv-edge", choices=EDGES,
        help="taps of a lightweight/dynamic kernel outside the sequence: 'zeros' (read 0, softmax "
             "over all K; the paper's code, the default), 'renorm' (softmax over the taps inside, "
             "in training and decoding alike), 'fairseq' (fairseq 0.12's training forward: a causal "
             "kernel longer than the batch is cut before the softmax; decoding as 'zeros')")


def add_side_args(parser, side: str, conv_types):
    add = parser.add_argument
    add(f"--{side}-conv-type", choices=conv_types, help="convolution type of every layer")
    add(f"--{side}-embed-dim", type=int, metavar="N", help="embedding and block dimension")
    add(f"--{side}-conv-dim", type=int, metavar="N",
        help="dimension inside the convolution sub-block (attention: must equal the embed dim)")
    add(f"--{side}-ffn-embed-dim", type=int, metavar="N", help="FFN hidden dimension")
    add(f"--{side}-layers", type=int, metavar="N", help="number of blocks")
    add(f"--{side}-attention-heads", type=int, metavar="N",
        help="heads of the convolution or self-attention (and of encoder-decoder attention)")
    add(f"--{side}-kernel-size-list", type=_int_list, metavar="LIST",
        help="per-layer kernel width (TaLK: maximum offset), e.g. '[3,7,15]'; one value applies to all "
             "layers; not read for attention")
    add(f"--{side}-glu", type=utils.eval_bool, metavar="BOOL",
        help="GLU after the input projection; attention has none, so GLU must be off "
             "(lcp_seq2seq defaults it so)")
    add(f"--{side}-normalize-before", type=utils.eval_bool, metavar="BOOL",
        help="pre-norm blocks (LayerNorm before each sub-block)")
    add(f"--{side}-learned-pos", type=utils.eval_bool, metavar="BOOL", help="learned positional embeddings")


def add_output_args(parser):
    add = parser.add_argument
    add("--decoder-input-dim", type=int, metavar="N", help="token embedding dim of the decoder")
    add("--decoder-output-dim", type=int, metavar="N", help="dim before the output projection")
    add("--share-decoder-input-output-embed", type=utils.eval_bool, metavar="BOOL",
        help="tie the decoder input embedding and the output projection")
    add("--no-token-positional-embeddings", type=utils.eval_bool, metavar="BOOL",
        help="no positional embeddings")
    add("--adaptive-softmax-cutoff", metavar="LIST", help="comma separated cutoffs, e.g. 10000,50000")
    add("--adaptive-softmax-dropout", type=float, metavar="D", help="dropout inside the adaptive softmax")


def set_defaults(args, defaults: dict):
    """Fill each option the user did not give (None or missing) from ``defaults``."""
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def expand_size_list(args, side: str):
    """One entry per layer: a single value is repeated; a wrong length is an error.

    A type without a kernel (attention) reads no size: its list becomes one
    None per layer, whatever was given, so that ``{side}_layers`` alone sets
    the depth.
    """
    key, layers = f"{side}_kernel_size_list", getattr(args, f"{side}_layers")
    if not takes_size(getattr(args, f"{side}_conv_type")):
        setattr(args, key, [None] * layers)
        return
    sizes = list(getattr(args, key))
    if len(sizes) == 1:
        sizes = sizes * layers
    if len(sizes) != layers:
        raise ValueError(
            f"{key}={sizes} has {len(sizes)} entries but {side}_layers={layers}: "
            "give one size per layer, or a single size for all")
    setattr(args, key, sizes)


def glu_default(conv_type: str) -> bool:
    """GLU gates a block's input projection: on, unless the mixer owns its projections."""
    return not owns_projections(conv_type)


def register_architectures(model: str, base, table: dict):
    """Register each named architecture of ``table`` as its defaults, then ``base``'s.

    ``table`` maps an architecture name to a dict of defaults; the user's own
    command-line values always win, then the table, then ``base``.
    """
    for name, defaults in table.items():
        def arch(args, defaults=defaults):
            set_defaults(args, defaults)
            base(args)

        register_model_architecture(model, name)(arch)
