#!/usr/bin/env python
"""Convert a checkpoint of fairseq's built-in LightConv / DynamicConv models to ours.

    python scripts/convert_fairseq_checkpoint.py IN.pt OUT.pt

IN is a checkpoint of fairseq's ``lightconv`` (encoder-decoder) or
``lightconv_lm`` (language model), for instance one of the released models of
Wu et al. (2019): old-style with the model options in ``state["args"]``, or
fairseq 0.12-style with them in ``state["cfg"]["model"]``. OUT is a checkpoint
of this project's ``lcp_seq2seq`` / ``lcp_lm`` in the same style, for use with
``fairseq-generate`` / ``fairseq-eval-lm`` / ``fairseq-train --restore-file``
and ``--user-dir lightconv_plugin``.

* Options: fairseq's architecture defaults are filled in first (so an option
  the checkpoint leaves out gets fairseq's value, not ours), then the arch
  becomes our base arch. fairseq's FFN is always ReLU (``activation_fn`` is
  set to ``relu``); its language model has no final LayerNorm
  (``decoder_final_norm=False``).
* Parameters: every key is renamed by an explicit rule (see ``_rename``) and
  checked against a freshly built model of ours, name and shape. A key that no
  rule knows, or a missing/extra/mis-shaped one, is an error naming the key.
  Dropped on purpose, and only these: the ``version`` buffers of fairseq's
  LightConvEncoder/Decoder; ``conv.conv_bias`` of shape (1, 1, C), which
  fairseq's DynamicConv_scripatable allocates even though lightconv never turns
  the conv bias on (it is uninitialised memory, never read); deprecated
  sinusoidal-position buffers (``weights``, ``_float_tensor``), recomputed.
* Unsupported, rejected naming the option: character embeddings, and
  convolution variants lightconv never builds but a state dict could carry
  (DynamicConv ``in_proj``, ``bias`` on the kernel predictor, ``conv_bias``;
  LightweightConv ``bias``). ``renorm_padding`` leaves no trace in the
  parameters; lightconv never sets it.
* Verification: unless ``--no-verify``, fairseq's own model and ours are built
  from the two checkpoints and run on a random batch; the conversion fails if
  their log-probabilities differ by more than ``--atol``.
* Training state is not carried over: no optimizer state, update count 0,
  a fresh data iterator (``--restore-file OUT`` starts fine-tuning anew).

Behavioural difference: our models zero padded positions before every
convolution, fairseq's decoder does not. With right-padded (or unpadded)
decoder inputs, as in fairseq-generate and fairseq-eval-lm, causal
convolutions never read later (padded) positions, so real positions get the
same outputs; only the (ignored) outputs at padded positions can differ.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import pickle
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _import_plugin():
    """Import the plugin from this checkout (registers our models, torch.load allow-list)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    try:
        import lightconv_plugin  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"error: cannot import lightconv_plugin ({e}); install the project "
                         "first (make setup, or pip install --no-deps -e .)")
    # Modules of fairseq this script needs. Importing fairseq sets the root
    # logger to DEBUG; the plugin resets it, and again here in case one of
    # these was the first to pull that in.
    import fairseq.checkpoint_utils  # noqa: F401
    import fairseq.tasks  # noqa: F401
    from lightconv_plugin import compat

    compat.quiet_root_logger()


log = logging.getLogger("convert_fairseq_checkpoint")

SEQ2SEQ, LM = "lightconv", "lightconv_lm"
OURS = {SEQ2SEQ: "lcp_seq2seq", LM: "lcp_lm"}


class ConversionError(Exception):
    pass


# --------------------------------------------------------------------- options


def _model_options(state) -> tuple[argparse.Namespace, str]:
    """The model options of a checkpoint and where they live ("cfg" or "args")."""
    cfg = state.get("cfg")
    if cfg is not None:
        model = cfg.get("model") if hasattr(cfg, "get") else None
        if model is not None:
            if isinstance(model, argparse.Namespace):
                return copy.deepcopy(model), "cfg"
            if hasattr(model, "items"):
                return argparse.Namespace(**dict(model.items())), "cfg"
            raise ConversionError(f"state['cfg']['model'] is a {type(model).__name__}, "
                                  "expected an argparse.Namespace or a mapping")
    args = state.get("args")
    if isinstance(args, argparse.Namespace):
        return copy.deepcopy(args), "args"
    raise ConversionError("no model options: neither state['cfg']['model'] nor state['args'] is set")


def _fairseq_model_name(args) -> tuple[str, str]:
    from fairseq.models import ARCH_MODEL_NAME_REGISTRY

    arch = getattr(args, "arch", None) or getattr(args, "_name", None)
    if arch is None:
        raise ConversionError("the model options name no arch (neither 'arch' nor '_name')")
    model = ARCH_MODEL_NAME_REGISTRY.get(arch)
    if model is None:
        raise ConversionError(f"arch={arch!r} is not a registered fairseq architecture")
    if model not in (SEQ2SEQ, LM):
        raise ConversionError(
            f"arch={arch!r} belongs to model {model!r}: only fairseq's built-in "
            f"{SEQ2SEQ!r} and {LM!r} models are converted")
    return arch, model


def _fill_fairseq_defaults(args, arch: str, kind: str):
    """The options as fairseq would build the model from them, in place.

    First the command-line defaults of fairseq's model (e.g. weight_softmax,
    the conv types; fairseq-train records them, an older checkpoint may not
    have them), then the arch function, then build_model's own defaults.
    """
    from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS, add_help=False)
    ARCH_MODEL_REGISTRY[arch].add_args(parser)
    for key, value in vars(parser.parse_args([])).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    ARCH_CONFIG_REGISTRY[arch](args)
    if kind == SEQ2SEQ:
        for key in ("max_source_positions", "max_target_positions"):
            if getattr(args, key, None) is None:
                setattr(args, key, 1024)
    else:
        for key in ("max_source_positions", "max_target_positions"):
            if getattr(args, key, None) is None:
                if getattr(args, "tokens_per_sample", None) is None:
                    raise ConversionError(f"the language model's options set neither {key} nor tokens_per_sample")
                setattr(args, key, args.tokens_per_sample)
    # Read by fairseq's decoder only in some configurations; its own defaults.
    for key, value in (("tie_adaptive_weights", False), ("tie_adaptive_proj", False),
                       ("adaptive_softmax_factor", 4)):
        if getattr(args, key, None) is None:
            setattr(args, key, value)


# Options that name variants our models do not implement: option -> why.
_UNSUPPORTED = {
    "character_embeddings": "character CNN token embeddings (CharacterTokenEmbedder)",
    "renorm_padding": "DynamicConv renorm_padding",
    "in_proj": "DynamicConv in_proj",
    "conv_bias": "DynamicConv conv_bias",
}


def _check_options(args, kind: str):
    for key, what in _UNSUPPORTED.items():
        value = getattr(args, key, False)
        if value:
            raise ConversionError(f"unsupported option {key}={value!r} ({what}): our models have no equivalent")
    sides = ["decoder"] if kind == LM else ["encoder", "decoder"]
    for side in sides:
        conv_type = getattr(args, f"{side}_conv_type")
        if conv_type not in ("lightweight", "dynamic"):
            raise ConversionError(f"unsupported option {side}_conv_type={conv_type!r}")


def _our_options(fs_args, kind: str) -> argparse.Namespace:
    args = copy.deepcopy(fs_args)
    args.arch = args._name = OURS[kind]
    # fairseq's lightconv FFN is hard-wired to ReLU whatever activation_fn says.
    args.activation_fn = "relu"
    # fairseq decodes with zero-padded kernels (its training forward's short-batch
    # cut is an inconsistency of its own, not what the checkpoint decodes with);
    # recorded explicitly so that the checkpoint says which edge it uses.
    args.conv_edge = "zeros"
    if kind == SEQ2SEQ:
        # fairseq builds the decoder embedding at decoder_embed_dim.
        args.decoder_input_dim = args.decoder_embed_dim
    else:
        args.decoder_normalize_before = True  # forced by fairseq's lightconv_lm
        args.decoder_final_norm = False  # fairseq's LM has no final LayerNorm
    for key in ("encoder_embed_path", "decoder_embed_path"):  # build-time init only
        if hasattr(args, key):
            delattr(args, key)
    return args


# ------------------------------------------------------------------ state dict

_LAYER = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)$")
_LAYER_COMMON = {
    "linear1.weight": "conv.in_proj.weight",
    "linear1.bias": "conv.in_proj.bias",
    "linear2.weight": "conv.out_proj.weight",
    "linear2.bias": "conv.out_proj.bias",
    "conv.weight": "conv.mixer.weight",
    "conv.weight_linear.weight": "conv.mixer.weight_proj.weight",
    "fc1.weight": "ffn.fc1.weight",
    "fc1.bias": "ffn.fc1.bias",
    "fc2.weight": "ffn.fc2.weight",
    "fc2.bias": "ffn.fc2.bias",
}
_LAYER_NORMS = {
    "encoder": {"layer_norm1": "conv_res.norm", "layer_norm2": "ffn_res.norm"},
    "decoder": {"conv_layer_norm": "conv_res.norm", "encoder_attn_layer_norm": "attn_res.norm",
                "final_layer_norm": "ffn_res.norm"},
}


def _rename(key: str, value, args, kind: str):
    """Our (key, tensor) for one fairseq entry, (None, why) to drop it, or ConversionError."""
    side = key.split(".", 1)[0]
    if side not in ("encoder", "decoder") or (kind == LM and side == "encoder"):
        raise ConversionError(f"unexpected key {key!r}: no {side!r} part in {kind}")
    rest = key[len(side) + 1:]

    m = _LAYER.match(key)
    if m:
        i, sub = int(m.group(2)), m.group(3)
        prefix = f"{side}.layers.{i}."
        if sub in _LAYER_COMMON:
            if sub == "conv.weight":
                value = _lightweight_weight(key, value)
            elif sub == "conv.weight_linear.weight":
                _check_dynamic_proj(key, value, args, side, i)
            return prefix + _LAYER_COMMON[sub], value
        if sub == "conv.conv_bias":
            if tuple(value.shape[:2]) == (1, 1) and value.dim() == 3:
                return None, "DynamicConv_scripatable's conv_bias, allocated but unused (conv_bias=False)"
            raise ConversionError(f"{key}: DynamicConv with conv_bias=True (shape "
                                  f"{tuple(value.shape)}) is not supported")
        if sub == "conv.weight_linear.bias":
            raise ConversionError(f"{key}: DynamicConv with bias=True (a bias on the kernel "
                                  "predictor) is not supported")
        if sub == "conv.bias":
            raise ConversionError(f"{key}: LightweightConv with bias=True is not supported")
        norm, _, param = sub.partition(".")
        if norm in _LAYER_NORMS[side] and param in ("weight", "bias"):
            return prefix + _LAYER_NORMS[side][norm] + "." + param, value
        if side == "decoder" and sub.startswith("encoder_attn."):
            return prefix + sub, value
        raise ConversionError(f"unexpected key {key!r}: no rule for layer parameter {sub!r}")

    if rest == "version":
        return None, "LightConvEncoder/Decoder format marker"
    if rest.startswith("embed_tokens."):
        return f"{side}.embed.{rest}", value
    if rest.startswith("embed_positions."):
        if rest in ("embed_positions._float_tensor", "embed_positions.weights"):
            return None, "deprecated sinusoidal-position buffer, recomputed"
        return f"{side}.embed.{rest}", value
    if rest.startswith("layer_norm."):
        return f"{side}.final_norm.{rest[len('layer_norm.'):]}", value
    if side == "decoder":
        if rest == "project_in_dim.weight":
            return "decoder.embed.project_in.weight", value
        if rest == "project_out_dim.weight":
            return "decoder.project_out.weight", value
        if rest == "output_projection.weight":
            return key, value
        if rest == "embed_out":  # fairseq < 0.9 lightconv: output matrix as a bare Parameter
            return "decoder.output_projection.weight", value
        if rest.startswith("adaptive_softmax."):
            return key, value
    raise ConversionError(f"unexpected key {key!r}: no rule maps it")


def _lightweight_weight(key, w):
    if w.dim() != 3 or w.shape[1] != 1:
        raise ConversionError(f"{key}: expected LightweightConv weight of shape (H, 1, K), "
                              f"got {tuple(w.shape)}")
    return w.reshape(w.shape[0], w.shape[2])


def _check_dynamic_proj(key, w, args, side, i):
    heads = getattr(args, f"{side}_attention_heads")
    sizes = getattr(args, f"{side}_kernel_size_list")
    if i >= len(sizes):
        raise ConversionError(f"{key}: layer {i} but {side}_kernel_size_list={sizes}")
    hk, dim = heads * sizes[i], w.shape[1]
    if w.shape[0] == dim + hk:
        raise ConversionError(f"{key}: DynamicConv with in_proj=True (weight_linear of shape "
                              f"{tuple(w.shape)} = conv dim + heads*K) is not supported")
    if w.shape[0] != hk:
        raise ConversionError(f"{key}: shape {tuple(w.shape)}, expected ({hk}, {dim}) for "
                              f"{side}_attention_heads={heads} and kernel size {sizes[i]}")


def convert_state_dict(fs_sd, args, kind):
    out, dropped = {}, {}
    for key, value in fs_sd.items():
        new_key, new_value = _rename(key, value, args, kind)
        if new_key is None:
            dropped[key] = new_value  # the reason
            continue
        if new_key in out:
            raise ConversionError(f"{key}: maps to {new_key!r}, which another key already filled")
        out[new_key] = new_value
    _tie_output(out, args)
    return out, dropped


def _as_fairseq_0_12(fs_sd, args):
    """Legacy keys that fairseq 0.12's lightconv no longer reads, in its current names."""
    sd = dict(fs_sd)
    if "decoder.embed_out" in sd:
        sd["decoder.output_projection.weight"] = sd.pop("decoder.embed_out")
    if (getattr(args, "share_decoder_input_output_embed", False)
            and getattr(args, "adaptive_softmax_cutoff", None) is None
            and "decoder.output_projection.weight" not in sd and "decoder.embed_tokens.weight" in sd):
        sd["decoder.output_projection.weight"] = sd["decoder.embed_tokens.weight"]
    return sd


def _tie_output(sd, args):
    # Old checkpoints of tied models may store only the input embedding.
    if (getattr(args, "share_decoder_input_output_embed", False)
            and getattr(args, "adaptive_softmax_cutoff", None) is None
            and "decoder.output_projection.weight" not in sd
            and "decoder.embed.embed_tokens.weight" in sd):
        sd["decoder.output_projection.weight"] = sd["decoder.embed.embed_tokens.weight"]


# ------------------------------------------------------------ building models


class _StubTask:
    """Just the dictionaries a model's build_model reads, sized from the state dict."""

    def __init__(self, src, tgt):
        self.source_dictionary = self.dictionary = src
        self.target_dictionary = self.output_dictionary = tgt


def _vocab_size(sd, prefix):
    key = f"{prefix}embed_tokens.weight"
    if key in sd:
        return sd[key].shape[0]
    sizes = [v.shape[0] for k, v in sd.items()
             if re.fullmatch(re.escape(prefix) + r"embed_tokens\.embeddings\.\d+\.0\.weight", k)]
    if sizes:  # adaptive input: one embedding per vocabulary band
        return sum(sizes)
    raise ConversionError(f"cannot tell the vocabulary size: no {key!r} in the checkpoint")


def _dictionary(size):
    from fairseq.data import Dictionary

    d = Dictionary()
    if size < len(d):
        raise ConversionError(f"vocabulary of {size} entries is smaller than fairseq's {len(d)} special symbols")
    for i in range(size - len(d)):
        d.add_symbol(f"<w{i}>")
    return d


def _stub_task(fs_sd, args, kind):
    tgt = _dictionary(_vocab_size(fs_sd, "decoder."))
    if kind == LM:
        return _StubTask(tgt, tgt)
    n_src = _vocab_size(fs_sd, "encoder.")
    src = tgt if args.share_all_embeddings and n_src == len(tgt) else _dictionary(n_src)
    return _StubTask(src, tgt)


def _build(args, task):
    from fairseq.models import ARCH_MODEL_REGISTRY

    return ARCH_MODEL_REGISTRY[args.arch].build_model(copy.deepcopy(args), task)


def check_against_model(sd, our_args, task):
    """Names and shapes of ``sd`` must be exactly those of our model."""
    model = _build(our_args, task)
    model.upgrade_state_dict(sd)  # e.g. old MultiheadAttention in_proj_weight -> q/k/v_proj
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    if missing or extra:
        raise ConversionError(f"converted parameters do not match {our_args.arch}: "
                              f"missing {missing}, unexpected {extra}")
    for key, value in sd.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConversionError(f"{key}: converted shape {tuple(value.shape)}, "
                                  f"{our_args.arch} expects {tuple(expected[key].shape)}")
    return model


def verify(fs_sd, fs_args, our_sd, our_model, task, kind, atol):
    """Max |log-prob difference| of fairseq's model and ours on a random batch."""
    import torch

    even = [k for k in getattr(fs_args, "encoder_kernel_size_list", []) if k % 2 == 0]
    if kind == SEQ2SEQ and even:
        log.warning("encoder kernel sizes %s are even: fairseq's CPU convolution cannot run "
                    "them, numerical verification skipped", even)
        return None
    # At least as long as every decoder kernel: on shorter inputs fairseq's
    # DynamicConv (DynamicConv_scripatable) cuts the kernel before the softmax
    # (our --conv-edge fairseq), unlike its own incremental decoding (zeros).
    K = max(fs_args.decoder_kernel_size_list)
    T = min(K + 4, fs_args.max_target_positions)
    if T < K and fs_args.decoder_conv_type == "dynamic":
        log.warning("max_target_positions=%d is shorter than the decoder kernel %d: fairseq's "
                    "DynamicConv renormalises there, numerical verification skipped", T, K)
        return None
    fs_model = _build(fs_args, task)
    fs_model.load_state_dict(_as_fairseq_0_12(fs_sd, fs_args), strict=True)
    our_model.load_state_dict(our_sd, strict=True)
    fs_model.float().eval()
    our_model.float().eval()

    g = torch.Generator().manual_seed(0)
    tgt = task.target_dictionary
    B = 3
    prev = torch.randint(tgt.nspecial, len(tgt), (B, T), generator=g)
    prev[:, 0] = tgt.eos()
    with torch.no_grad():
        if kind == SEQ2SEQ:
            src_dict = task.source_dictionary
            S = 9
            src = torch.randint(src_dict.nspecial, len(src_dict), (B, S), generator=g)
            src[:, -1] = src_dict.eos()
            lengths = torch.tensor([S, S - 3, S - 5])
            for b, n in enumerate(lengths.tolist()):  # left padding, as fairseq's translation task
                src[b, : S - n] = src_dict.pad()
            inputs = (src, lengths, prev)
        else:
            inputs = (prev,)
        outs = [m.get_normalized_probs(m(*inputs), log_probs=True) for m in (fs_model, our_model)]
    diff = (outs[0] - outs[1]).abs().max().item()
    if not diff <= atol:
        raise ConversionError(f"verification failed: fairseq's and our log-probabilities differ "
                              f"by up to {diff:.3g} (> --atol {atol})")
    return diff


# --------------------------------------------------------------------- driver


def _load(path, unsafe):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe)
    except OSError as e:
        raise ConversionError(f"cannot read: {e}") from e
    except pickle.UnpicklingError as e:
        if unsafe:
            raise
        raise ConversionError(
            f"torch.load(weights_only=True) refuses it: {e}\n"
            "If the file comes from a source you trust, rerun with --unsafe-load.") from e
    except Exception as e:
        raise ConversionError(f"not a PyTorch checkpoint ({type(e).__name__}: {e})") from e


def convert(state, verify_atol=1e-4, verify_model=True):
    """Converted checkpoint (a new dict) from a loaded fairseq checkpoint ``state``."""
    if not isinstance(state, dict) or "model" not in state:
        raise ConversionError("no 'model' entry: not a fairseq checkpoint")
    fs_args, style = _model_options(state)
    arch, kind = _fairseq_model_name(fs_args)
    _fill_fairseq_defaults(fs_args, arch, kind)
    _check_options(fs_args, kind)
    our_args = _our_options(fs_args, kind)

    fs_sd = dict(state["model"])
    our_sd, dropped = convert_state_dict(fs_sd, fs_args, kind)
    task = _stub_task(fs_sd, fs_args, kind)
    our_model = check_against_model(our_sd, our_args, task)
    diff = None
    if verify_model:
        diff = verify(fs_sd, fs_args, our_sd, our_model, task, kind, verify_atol)

    history = state.get("optimizer_history") or [{}]
    out = {
        "args": None,
        "cfg": None,
        "model": our_sd,
        # Fresh training state: fairseq-train --restore-file builds a new
        # optimizer (no last_optimizer_state) and starts at update 0, epoch 1.
        "optimizer_history": [{
            "criterion_name": history[-1].get("criterion_name", "CrossEntropyCriterion"),
            "optimizer_name": "none",
            "lr_scheduler_state": {},
            "num_updates": 0,
        }],
        "last_optimizer_state": None,
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "version": 2,
                                           "shuffle": True}},
    }
    if "task_state" in state:  # what some tasks need at inference (empty for translation)
        out["task_state"] = state["task_state"]
    if style == "cfg":
        out["cfg"] = _plain_cfg(state["cfg"])
        out["cfg"]["model"] = our_args
    else:
        out["args"] = our_args
    info = {"arch": arch, "kind": kind, "style": style, "ours": our_args.arch,
            "dropped": dropped, "max_abs_diff": diff, "params": len(our_sd)}
    return out, info


def _plain_cfg(cfg):
    """The cfg as plain containers (fairseq saves it so), Namespace values kept."""
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(cfg):
            cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    except ImportError:
        pass
    return copy.copy(dict(cfg))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a fairseq lightconv / lightconv_lm checkpoint to lcp_seq2seq / lcp_lm.")
    parser.add_argument("input", help="fairseq checkpoint (.pt)")
    parser.add_argument("output", help="converted checkpoint to write (.pt)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip running fairseq's model and ours on a random batch")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="largest log-probability difference the verification accepts (default 1e-4)")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="torch.load with weights_only=False (unpickles arbitrary objects: "
                             "only for files you trust)")
    opts = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s | %(name)s | %(message)s", level=logging.INFO)
    _import_plugin()
    import torch

    try:
        state = _load(opts.input, opts.unsafe_load)
        out, info = convert(state, verify_atol=opts.atol, verify_model=not opts.no_verify)
    except ConversionError as e:
        print(f"error: {opts.input}: {e}", file=sys.stderr)
        return 1
    tmp = f"{opts.output}.tmp"
    torch.save(out, tmp)
    os.replace(tmp, opts.output)
    torch.load(opts.output, map_location="cpu", weights_only=True)  # loadable without --unsafe-load
    log.info("%s (%s, model options in state[%r]) -> %s (%s): %d tensors",
             opts.input, info["arch"], info["style"], opts.output, info["ours"], info["params"])
    reasons = {}
    for key, why in info["dropped"].items():
        reasons.setdefault(why, []).append(key)
    for why, keys in reasons.items():
        log.info("dropped (%s): %s", why, ", ".join(keys))
    if info["max_abs_diff"] is not None:
        log.info("verified: max |log-prob difference| on a random batch = %.3g", info["max_abs_diff"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
