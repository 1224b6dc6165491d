"""scripts/convert_fairseq_checkpoint.py: fairseq's own lightconv / lightconv_lm -> ours.

fairseq's built-in models are trained for a few updates on synthetic data
(LightConv and DynamicConv encoder-decoders, a DynamicConv language model with
adaptive input and softmax), converted, and run through fairseq's tools:

* fairseq-generate with beam search gives the same hypotheses and scores on
  fairseq's checkpoint and on ours. That comparison is against fairseq's
  incremental (step-by-step) decoding, and it is sound: fairseq issue #3908
  (LightweightConv's incremental state is wrong when one call feeds more than
  one new position) does not arise in fairseq-generate, whose beam search feeds
  exactly one position per step. Checked by experiment when writing this test:
  fairseq-generate's positional scores equal a hand-written step-by-step loop
  over fairseq's decoder, and its output on our converted checkpoint is equal
  to the last printed digit.
* What the experiment did show: fairseq 0.12's lightconv builds DynamicConv as
  DynamicConv_scripatable, whose full (non-incremental) forward, for a causal
  input shorter than the kernel (T < K), cuts the kernel logits to the last T
  taps *before* the softmax, i.e. renormalises the kernel over the taps that
  fit, whereas its incremental decoding (like our models, and its
  LightweightConv) zero-pads. fairseq's own training, --score-reference and
  eval-lm therefore disagree with its beam search on target prefixes shorter
  than a decoder kernel (by up to 0.17 bits per token in that experiment, on
  a DynamicConv model like the one below). Ours follows the incremental
  definition; full-forward comparisons below use inputs at least as long as
  every kernel.
* The language model's log-probabilities, through fairseq's checkpoint loader,
  agree to fp32 rounding.
* Old-style checkpoints (options in state["args"], output matrix as
  decoder.embed_out) convert too; unknown keys, unsupported variants and shape
  mismatches fail naming the key or option.
"""

import argparse
import copy
import importlib.util
import math
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

import cli_helpers as fc
import lightconv_plugin  # noqa: F401  (our models, torch.load allow-list)
from lightconv_plugin.models.lm import ConvLanguageModel
from lightconv_plugin.models.seq2seq import ConvSeq2SeqModel

SCRIPT = fc.REPO / "scripts" / "convert_fairseq_checkpoint.py"

SMALL = (
    "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-layers", "2",
    "--decoder-layers", "2", "--encoder-kernel-size-list", "[3,5]", "--decoder-kernel-size-list", "[3,5]",
    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
    "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
)
TRANSLATION = (
    "--task", "translation", "--arch", "lightconv", *SMALL, "--optimizer", "adam", "--lr", "0.005",
    "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
    "--max-tokens", "500", "--max-update", "25",
)
# Post-norm without GLU and a separate output matrix (like the paper's IWSLT
# models); pre-norm with final LayerNorms and a tied output embedding.
VARIANTS = {
    "lightweight": ("--encoder-conv-type", "lightweight", "--decoder-conv-type", "lightweight",
                    "--encoder-glu", "False", "--decoder-glu", "False"),
    "dynamic": ("--encoder-conv-type", "dynamic", "--decoder-conv-type", "dynamic",
                "--encoder-normalize-before", "--decoder-normalize-before",
                "--share-decoder-input-output-embed"),
}
LANGUAGE_MODEL = (
    "--task", "language_modeling", "--arch", "lightconv_lm", "--decoder-conv-type", "dynamic",
    "--decoder-embed-dim", "32", "--decoder-layers", "2", "--decoder-kernel-size-list", "[3,5]",
    "--decoder-attention-heads", "4", "--decoder-ffn-embed-dim", "64", "--decoder-learned-pos",
    "--adaptive-input", "--adaptive-input-cutoff", "10,20", "--adaptive-input-factor", "2",
    "--adaptive-softmax-cutoff", "10,20", "--adaptive-softmax-factor", "2",
    "--tie-adaptive-weights", "--tie-adaptive-proj", "--criterion", "adaptive_loss",
    "--tokens-per-sample", "24", "--sample-break-mode", "none", "--max-tokens", "480",
    "--optimizer", "adam", "--lr", "0.005", "--max-update", "20",
)
KERNEL = 5  # the largest kernel above: full-forward inputs are at least this long


# Tests of one xdist group run on one worker, so that this module fixture is
# built once, not once per worker that runs one of its tests.
SHARES_TRAINED = pytest.mark.xdist_group("convert_trained")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """fairseq's own models, trained side by side: {name: checkpoint_last.pt}, plus the data."""
    translation, lm = fc.binarised(tmp_path_factory, "translation", "lm")
    root = tmp_path_factory.mktemp("fairseq_models")
    jobs = {name: fc.train_job(translation, root / name, *TRANSLATION, *extra)
            for name, extra in VARIANTS.items()}
    jobs["lm"] = fc.train_job(lm, root / "lm", *LANGUAGE_MODEL)
    fc.run_parallel(*jobs.values())
    return {"translation": translation, "lm_data": lm,
            **{name: root / name / "checkpoint_last.pt" for name in jobs}}


@pytest.fixture(scope="module")
def converter():
    spec = importlib.util.spec_from_file_location("convert_fairseq_checkpoint", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module._import_plugin()
    return module


def _load(path):
    (model,), _, task = checkpoint_utils.load_model_ensemble_and_task([str(path)])
    return model.eval(), task


def _rows(d, text_file, length):
    """The lines of ``text_file`` as one token stream (dictionary ``d``), cut into rows of ``length``."""
    stream = torch.cat([d.encode_line(line, add_if_not_exist=False).long()
                        for line in text_file.read_text().splitlines()])
    return stream[: len(stream) // length * length].view(-1, length)


def _seq2seq_log_probs(model, task, raw_dir):
    src = _rows(task.source_dictionary, raw_dir / "test.src", KERNEL + 3)
    tgt = _rows(task.target_dictionary, raw_dir / "test.tgt", KERNEL + 3)
    n = min(len(src), len(tgt))
    src, tgt = src[:n], tgt[:n]
    assert not src.eq(task.source_dictionary.unk()).any() and not tgt.eq(task.target_dictionary.unk()).any()
    with torch.no_grad():
        out = model(src, torch.full((n,), src.shape[1]), tgt)
        return model.get_normalized_probs(out, log_probs=True)


@SHARES_TRAINED
@pytest.mark.parametrize("conv_type", sorted(VARIANTS))
def test_generate_gives_fairseqs_hypotheses(conv_type, trained, converter, tmp_path):
    theirs, ours = trained[conv_type], tmp_path / "ours.pt"
    assert converter.main([str(theirs), str(ours)]) == 0

    state = torch.load(ours, map_location="cpu", weights_only=True)
    assert state["cfg"]["model"].arch == "lcp_seq2seq"
    assert state["last_optimizer_state"] is None  # fresh training state
    assert state["optimizer_history"][-1]["num_updates"] == 0

    data = trained["translation"]
    out_theirs, out_ours = fc.run_parallel(fc.generate_job(data, theirs), fc.generate_job(data, ours))
    hyp_theirs, hyp_ours = fc.hypotheses(out_theirs), fc.hypotheses(out_ours)
    assert sorted(hyp_theirs) == list(range(fc.SPLITS["test"])), "fairseq-generate skipped sentences"
    assert len({h for _, h in hyp_theirs.values()}) > 1, "degenerate model: all hypotheses equal"
    assert {i: h for i, (_, h) in hyp_ours.items()} == {i: h for i, (_, h) in hyp_theirs.items()}
    # Scores are sums of a few fp32 log-probabilities (printed in base 2).
    for i, (score, _) in hyp_theirs.items():
        assert abs(hyp_ours[i][0] - score) <= 1e-4, (i, hyp_ours[i][0], score)

    # A reference that does not decode step by step: our model's full forward
    # pass over fairseq's hypotheses gives fairseq's per-token scores (printed
    # with 4 decimals, hence the tolerance).
    model, task = _load(ours)
    sources, positional = fc.tagged(out_theirs, "S"), fc.tagged(out_theirs, "P")
    for i, (_, hyp) in hyp_theirs.items():
        src = task.source_dictionary.encode_line(sources[i][0], add_if_not_exist=False).long()[None]
        tgt = task.target_dictionary.encode_line(hyp, add_if_not_exist=False).long()[None]
        prev = torch.cat([tgt[:, -1:], tgt[:, :-1]], dim=1)  # <eos> first, as in fairseq
        with torch.no_grad():
            lp = model.get_normalized_probs(model(src, torch.tensor([src.shape[1]]), prev), log_probs=True)
        bits = lp[0].gather(-1, tgt[0, :, None])[:, 0] / math.log(2)
        expected = torch.tensor([float(x) for x in positional[i][0].split()])
        assert (bits - expected).abs().max().item() <= 1e-4, (i, bits.tolist(), expected.tolist())


@SHARES_TRAINED
def test_language_model_log_probs_match(trained, tmp_path):
    ours = tmp_path / "ours_lm.pt"
    log = fc.run("python", SCRIPT, trained["lm"], ours)  # the command line, as users run it
    assert "DEBUG" not in log, log
    assert "verified" in log, log

    theirs_model, task = _load(trained["lm"])
    our_model, _ = _load(ours)
    assert isinstance(our_model, ConvLanguageModel)
    assert our_model.decoder.adaptive_softmax is not None and our_model.decoder.final_norm is None
    tokens = _rows(task.source_dictionary, trained["lm_data"].parent / "raw_lm" / "test.txt", 3 * KERNEL)
    assert len(tokens) >= 4 and not tokens.eq(task.source_dictionary.unk()).any()
    with torch.no_grad():
        lp_theirs, lp_ours = (m.get_normalized_probs(m(tokens), log_probs=True)
                              for m in (theirs_model, our_model))
    torch.testing.assert_close(lp_ours, lp_theirs, rtol=1e-5, atol=1e-5)
    # The per-token scores fairseq-eval-lm would sum.
    nll = -lp_ours[:, :-1].gather(-1, tokens[:, 1:, None]).mean().item()
    assert math.isfinite(nll) and nll < math.log(len(task.source_dictionary))  # it learned something


@SHARES_TRAINED
def test_old_style_checkpoint_with_args_and_embed_out(trained, converter, tmp_path):
    state = torch.load(trained["lightweight"], map_location="cpu", weights_only=True)
    state["args"], state["cfg"] = state["cfg"]["model"], None
    state["model"]["decoder.embed_out"] = state["model"].pop("decoder.output_projection.weight")
    old, ours = tmp_path / "old.pt", tmp_path / "ours.pt"
    torch.save(state, old)
    assert converter.main([str(old), str(ours)]) == 0
    converted = torch.load(ours, map_location="cpu", weights_only=True)
    assert converted["cfg"] is None and converted["args"].arch == "lcp_seq2seq"

    theirs_model, task = _load(trained["lightweight"])  # fairseq 0.12 itself cannot read embed_out
    our_model, _ = _load(ours)
    assert isinstance(our_model, ConvSeq2SeqModel)
    raw = trained["translation"].parent / "raw"
    torch.testing.assert_close(_seq2seq_log_probs(our_model, task, raw),
                               _seq2seq_log_probs(theirs_model, task, raw), rtol=1e-5, atol=1e-5)


@SHARES_TRAINED
def test_only_format_markers_and_unused_conv_bias_are_dropped(trained, converter):
    state = torch.load(trained["dynamic"], map_location="cpu", weights_only=True)
    out, info = converter.convert(state)
    conv_bias = {k for k in state["model"] if k.endswith(".conv.conv_bias")}
    assert len(conv_bias) == 4
    assert set(info["dropped"]) == {"encoder.version", "decoder.version"} | conv_bias
    assert len(out["model"]) == len(state["model"]) - len(info["dropped"])
    assert info["max_abs_diff"] is not None and info["max_abs_diff"] <= 1e-4


class _Task:
    """The dictionaries fairseq's build_model reads."""

    def __init__(self, vocab=40):
        d = Dictionary()
        for i in range(vocab - len(d)):
            d.add_symbol(f"w{i}")
        self.source_dictionary = self.target_dictionary = self.dictionary = self.output_dictionary = d


_TINY = dict(encoder_embed_dim=16, decoder_embed_dim=16, encoder_ffn_embed_dim=32,
             decoder_ffn_embed_dim=32, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_layers=2, decoder_layers=2, encoder_kernel_size_list=[3, 7],
             decoder_kernel_size_list=[3, 7])
# Configurations the trained models above do not reach, on untrained (but
# perturbed) fairseq models; the converter's own check compares the outputs.
UNTRAINED = {
    # The released WMT models: joined dictionary, all embeddings shared; and
    # encoder-decoder attention in the pre-2019 fused in_proj_weight format.
    "shared embeddings, fused attention": (
        "lightconv", dict(_TINY, share_all_embeddings=True, encoder_conv_type="dynamic",
                          decoder_conv_type="dynamic")),
    "learned positions, pre-norm encoder only": (
        "lightconv", dict(_TINY, encoder_conv_type="lightweight", decoder_conv_type="lightweight",
                          encoder_normalize_before=True, encoder_learned_pos=True,
                          decoder_learned_pos=True)),
    "language model, input and output dims, tied, no positions": (
        "lightconv_lm", dict(decoder_conv_type="lightweight", decoder_embed_dim=16,
                             decoder_input_dim=12, decoder_output_dim=12,
                             share_decoder_input_output_embed=True, no_token_positional_embeddings=True,
                             decoder_ffn_embed_dim=32, decoder_attention_heads=4, decoder_layers=2,
                             decoder_kernel_size_list=[3, 7])),
}


def _fuse_attention(sd):
    for key in [k for k in sd if k.endswith("encoder_attn.q_proj.weight")]:
        p = key[: -len("q_proj.weight")]
        for part in ("weight", "bias"):
            sd[p + "in_proj_" + part] = torch.cat([sd.pop(p + f"{x}_proj.{part}") for x in "qkv"])


@pytest.mark.parametrize("case", sorted(UNTRAINED))
def test_untrained_configurations_convert_exactly(case, converter):
    arch, options = UNTRAINED[case]
    # The options as fairseq-train has them: its command-line defaults, ours, the arch's.
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    ARCH_MODEL_REGISTRY[arch].add_args(parser)
    args = parser.parse_args([])
    vars(args).update(arch=arch, tokens_per_sample=64, max_source_positions=64,
                      max_target_positions=64, **options)
    ARCH_CONFIG_REGISTRY[arch](args)
    torch.manual_seed(0)
    model = ARCH_MODEL_REGISTRY[arch].build_model(copy.deepcopy(args), _Task())
    sd = model.state_dict()
    with torch.no_grad():  # away from the init, so that swapped LayerNorms would show
        for t in {id(t): t for t in sd.values() if t.is_floating_point()}.values():
            t.add_(0.1 * torch.randn_like(t))
    sd = dict(sd)
    if "fused" in case:  # as a 2019 checkpoint: no record of the options that had defaults
        _fuse_attention(sd)
        for key in ("weight_softmax", "encoder_conv_type", "decoder_conv_type"):
            delattr(args, key)
    out, info = converter.convert({"args": args, "model": sd})
    assert info["max_abs_diff"] is not None and info["max_abs_diff"] <= 1e-4, info
    assert out["args"].arch == {"lightconv": "lcp_seq2seq", "lightconv_lm": "lcp_lm"}[arch]
    assert out["args"].conv_edge == "zeros"  # fairseq decodes without its training forward's cut


def _set(key, value):
    return lambda state: state["model"].__setitem__(key, value)


def _option(name, value):
    return lambda state: setattr(state["cfg"]["model"], name, value)


def _delete(key):
    return lambda state: state["model"].pop(key)


# (change to fairseq's dynamic checkpoint, what the error must name)
BROKEN = {
    "unknown key": (_set("decoder.layers.0.mystery.weight", torch.zeros(1)),
                    ["decoder.layers.0.mystery.weight"]),
    "kernel predictor bias": (_set("encoder.layers.1.conv.weight_linear.bias", torch.zeros(20)),
                              ["encoder.layers.1.conv.weight_linear.bias", "bias=True"]),
    "in_proj": (_set("decoder.layers.0.conv.weight_linear.weight", torch.zeros(32 + 4 * 3, 32)),
                ["decoder.layers.0.conv.weight_linear.weight", "in_proj=True"]),
    "conv_bias": (_set("encoder.layers.0.conv.conv_bias", torch.zeros(32)),
                  ["encoder.layers.0.conv.conv_bias", "conv_bias=True"]),
    "lightweight bias": (_set("encoder.layers.0.conv.bias", torch.zeros(32)),
                         ["encoder.layers.0.conv.bias", "bias=True"]),
    "missing parameter": (_delete("decoder.layers.1.fc2.bias"), ["decoder.layers.1.ffn.fc2.bias", "missing"]),
    "wrong shape": (_set("encoder.layers.0.fc1.weight", torch.zeros(65, 32)),
                    ["encoder.layers.0.ffn.fc1.weight", "(65, 32)", "(64, 32)"]),
    "character embeddings": (_option("character_embeddings", True), ["character_embeddings=True"]),
    "other model": (lambda s: (_option("arch", "transformer")(s), _option("_name", "transformer")(s)),
                    ["arch='transformer'", "'transformer'"]),
}


@SHARES_TRAINED
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_conversion_refuses_what_it_cannot_map(case, trained, converter):
    change, words = BROKEN[case]
    state = torch.load(trained["dynamic"], map_location="cpu", weights_only=True)
    state["model"] = dict(state["model"])
    change(state)
    with pytest.raises(converter.ConversionError) as error:
        converter.convert(state, verify_model=False)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


@SHARES_TRAINED
def test_command_line_reports_errors_without_writing(trained, converter, tmp_path, capsys):
    state = torch.load(trained["dynamic"], map_location="cpu", weights_only=True)
    state["model"]["decoder.layers.0.mystery.weight"] = torch.zeros(1)
    broken, out = tmp_path / "broken.pt", tmp_path / "out.pt"
    torch.save(state, broken)
    assert converter.main([str(broken), str(out)]) == 1
    assert "decoder.layers.0.mystery.weight" in capsys.readouterr().err
    assert not out.exists()
