"""Model-level properties of lcp_seq2seq and lcp_lm, built directly (no training).

* every named architecture registers under our model and builds;
* step-by-step decoding equals the full forward pass, with beam reordering
  in between (fairseq issue #3908 is this bug in fairseq's own LightConv);
* padded positions change no output at a real position;
* cast to fp16/bf16 (fairseq's --fp16/--bf16), every type stays within twice
  the attention model's error in that dtype, full pass and decoding alike;
* bad configurations raise one clear error.
"""

import argparse
import functools

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

import lightconv_plugin  # noqa: F401  (registers the models)
from lightconv_plugin.models import lm_archs, seq2seq_archs
from lightconv_plugin.models.lm import ConvLanguageModel
from lightconv_plugin.models.seq2seq import ConvSeq2SeqModel
from lightconv_plugin.modules.mixers import MIXER_BUILDERS, owns_projections

# Every registered convolution type gets every property test below, and the
# K-tap types once more with the 'renorm' edge, whose decoding state differs.
CONV_TYPES = sorted(MIXER_BUILDERS)
CONFIGS = [(c, "zeros") for c in CONV_TYPES] + [("lightweight", "renorm"), ("dynamic", "renorm")]
CONFIG_IDS = [f"{c}-{e}" for c, e in CONFIGS]


def glu_on(conv_type, side="encoder"):
    """GLU where the type has an input projection to gate (every type but attention)."""
    return {f"{side}_glu": not owns_projections(conv_type)}


class FakeTask:
    def __init__(self, vocab=30):
        d = Dictionary()
        for i in range(vocab):
            d.add_symbol(f"w{i}")
        self.source_dictionary = self.target_dictionary = self.dictionary = d


def build(arch, task=None, **overrides):
    args = argparse.Namespace(arch=arch, max_source_positions=256, max_target_positions=256,
                              tokens_per_sample=256, **overrides)
    ARCH_CONFIG_REGISTRY[arch](args)
    model = ARCH_MODEL_REGISTRY[arch].build_model(args, task or FakeTask())
    return model.eval()


def small(conv_type, edge="zeros", **kw):
    return dict(encoder_conv_type=conv_type, decoder_conv_type=conv_type, conv_edge=edge, encoder_embed_dim=16,
                encoder_ffn_embed_dim=32, encoder_attention_heads=4, encoder_layers=2,
                decoder_layers=2, encoder_kernel_size_list=[3, 4], decoder_kernel_size_list=[3, 5], **kw)


def tokens(task, B, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = task.source_dictionary
    return torch.randint(d.nspecial, len(d), (B, T), generator=g)


def test_every_named_architecture_is_ours_and_fairseqs_are_untouched():
    ours = {**seq2seq_archs.ARCHITECTURES, **lm_archs.ARCHITECTURES}
    for name in ours:
        assert ARCH_MODEL_REGISTRY[name] in (ConvSeq2SeqModel, ConvLanguageModel), name
    assert ARCH_MODEL_REGISTRY["lightconv"].__module__.startswith("fairseq.")
    assert ARCH_MODEL_REGISTRY["lightconv_lm_gbw"].__module__.startswith("fairseq.")


@pytest.mark.parametrize("arch", sorted(seq2seq_archs.ARCHITECTURES) + sorted(lm_archs.ARCHITECTURES))
def test_named_architecture_builds_with_its_defaults(arch):
    args = argparse.Namespace(arch=arch)
    ARCH_CONFIG_REGISTRY[arch](args)
    table = {**seq2seq_archs.ARCHITECTURES, **lm_archs.ARCHITECTURES}[arch]
    for key, value in table.items():
        assert getattr(args, key) == value, key
    assert len(args.decoder_kernel_size_list) == args.decoder_layers


def test_iwslt_architecture_has_the_papers_shape():
    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY["dynamicconv_iwslt_de_en"](args)
    assert (args.encoder_embed_dim, args.encoder_ffn_embed_dim, args.encoder_attention_heads) == (512, 1024, 4)
    assert args.encoder_kernel_size_list == [3, 7, 15, 31, 31, 31, 31]
    assert args.decoder_kernel_size_list == [3, 7, 15, 31, 31, 31]
    assert args.encoder_conv_type == args.decoder_conv_type == "dynamic"
    assert (args.dropout, args.weight_dropout, args.encoder_glu) == (0.3, 0.1, False)


def test_attention_architectures_are_transformers():
    args = argparse.Namespace()
    ARCH_CONFIG_REGISTRY["attention_iwslt_de_en"](args)
    for side in ("encoder", "decoder"):
        shape = [getattr(args, f"{side}_{k}") for k in ("embed_dim", "ffn_embed_dim", "attention_heads", "layers")]
        assert shape == [512, 1024, 4, 6], side
        # no kernel (the list only counts layers), no GLU
        assert getattr(args, f"{side}_kernel_size_list") == [None] * 6
        assert getattr(args, f"{side}_glu") is False
    assert (args.dropout, args.input_dropout) == (0.3, 0.0)  # no dropout before self-attention
    wmt = {"attention_wmt16_en_de": (512, 2048, 8, 0.1, 0.0),
           "attention_wmt16_en_de_big": (1024, 4096, 16, 0.3, 0.1)}
    for arch, (d, ffn, heads, dropout, attn) in wmt.items():
        args = argparse.Namespace()
        ARCH_CONFIG_REGISTRY[arch](args)
        assert (args.encoder_embed_dim, args.encoder_ffn_embed_dim, args.encoder_attention_heads) == (d, ffn, heads)
        assert (args.encoder_layers, args.decoder_layers) == (6, 6)
        assert (args.dropout, args.attention_dropout, args.weight_dropout) == (dropout, attn, attn)


def test_attention_needs_no_kernel_list_and_ignores_one():
    model = build("lcp_seq2seq", encoder_conv_type="attention", encoder_layers=3, decoder_layers=2,
                  encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=4)
    assert (len(model.encoder.layers), len(model.decoder.layers)) == (3, 2)
    layer = model.encoder.layers[0].conv
    assert layer.in_proj is None and layer.out_proj is None and not layer.glu
    model = build("attention_toy", encoder_kernel_size_list=[3, 5, 7], decoder_layers=3)
    assert len(model.decoder.layers) == 3


def test_glu_default_follows_each_sides_type():
    args = argparse.Namespace(encoder_conv_type="attention", decoder_conv_type="dynamic")
    ARCH_CONFIG_REGISTRY["lcp_seq2seq"](args)
    assert (args.encoder_glu, args.decoder_glu) == (False, True)
    args = argparse.Namespace(encoder_glu=False)
    ARCH_CONFIG_REGISTRY["lcp_seq2seq"](args)
    assert args.decoder_glu is False  # two conv sides: the decoder follows the encoder


@pytest.mark.parametrize("overrides,message", [
    (dict(encoder_glu=True), r"--encoder-glu=True: attention layers have no input projection"),
    (dict(decoder_glu=True), r"--decoder-glu=True: attention layers have no input projection"),
    (dict(encoder_conv_dim=64), r"--encoder-conv-dim=64: .* --encoder-embed-dim=128"),
    (dict(encoder_attention_heads=5), r"num_heads=5: must divide the attention dim 128"),
])
def test_attention_bad_configurations(overrides, message):
    with pytest.raises(ValueError, match=message):
        build("attention_toy", **overrides)


def test_weight_dropout_is_self_attention_dropout_attention_dropout_cross_attention():
    model = build("attention_wmt16_en_de_big", encoder_layers=1, decoder_layers=1, encoder_embed_dim=16,
                  encoder_ffn_embed_dim=16, encoder_attention_heads=2)
    layer = model.decoder.layers[0]
    assert (layer.conv.mixer.dropout, layer.encoder_attn.dropout_module.p) == (0.1, 0.1)
    model = build("attention_toy", attention_dropout=0.2, weight_dropout=0.3)
    layer = model.decoder.layers[0]
    assert model.encoder.layers[0].conv.mixer.dropout == layer.conv.mixer.dropout == 0.3
    assert layer.encoder_attn.dropout_module.p == 0.2


def _step_by_step(model, prev, encoder_out=None, reorder_at=None, new_order=None):
    """Decode one token at a time; optionally reorder the beam after step ``reorder_at``."""
    state = {}
    outs = []
    for t in range(prev.shape[1]):
        if reorder_at is not None and t == reorder_at:
            model.decoder.reorder_incremental_state_scripting(state, new_order)
            if encoder_out is not None:
                encoder_out = model.encoder.reorder_encoder_out(encoder_out, new_order)
            prev = prev.index_select(0, new_order)
            outs = [o.index_select(0, new_order) for o in outs]
        y, _ = model.decoder(prev[:, : t + 1], encoder_out=encoder_out, incremental_state=state)
        outs.append(y)
    return torch.cat(outs, dim=1), prev


# Beam search reorders rows within each sentence's beams (the batch keeps its
# size; fairseq's attention then keeps its cached encoder keys) and drops the
# rows of finished sentences (the batch shrinks and every cache is reordered).
BEAM_ORDERS = {"within-beams": [1, 1, 3, 2], "sentence-finished": [3, 2]}


@pytest.mark.parametrize("order", sorted(BEAM_ORDERS))
@pytest.mark.parametrize("conv_type,edge", CONFIGS, ids=CONFIG_IDS)
def test_seq2seq_incremental_equals_full_with_beam_reorder(conv_type, edge, order):
    torch.manual_seed(0)
    task = FakeTask()
    model = build("lcp_seq2seq", task, **small(conv_type, edge, **glu_on(conv_type)))
    src = tokens(task, 2, 7, seed=1).repeat_interleave(2, dim=0)  # 2 sentences x beam 2
    prev = tokens(task, 4, 9, seed=2)
    enc = model.encoder(src, src_lengths=None)
    new_order = torch.tensor(BEAM_ORDERS[order])
    inc, prev_reordered = _step_by_step(model, prev, enc, reorder_at=4, new_order=new_order)
    full, _ = model.decoder(prev_reordered, encoder_out=model.encoder.reorder_encoder_out(enc, new_order))
    torch.testing.assert_close(inc, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("conv_type,edge", CONFIGS, ids=CONFIG_IDS)
def test_lm_incremental_equals_full(conv_type, edge):
    torch.manual_seed(0)
    task = FakeTask()
    model = build("lcp_lm", task, decoder_conv_type=conv_type, conv_edge=edge, decoder_embed_dim=16,
                  decoder_ffn_embed_dim=32, decoder_attention_heads=2, decoder_layers=3,
                  decoder_kernel_size_list=[2, 3, 6], **glu_on(conv_type, "decoder"))
    prev = tokens(task, 2, 8)
    inc, _ = _step_by_step(model, prev, reorder_at=3, new_order=torch.tensor([1, 0]))
    full, _ = model.decoder(prev[[1, 0]])
    torch.testing.assert_close(inc, full, rtol=1e-5, atol=1e-5)


def _decoded_in(dtype, conv_type, edge):
    """Full and step-by-step decoder outputs of one seq2seq model (same weights) cast to ``dtype``,
    as fairseq's --fp16/--bf16 cast it."""
    torch.manual_seed(0)
    task = FakeTask()
    model = build("lcp_seq2seq", task, **small(conv_type, edge, **glu_on(conv_type))).to(dtype)
    src = tokens(task, 2, 7, seed=1).repeat_interleave(2, dim=0)
    prev = tokens(task, 4, 9, seed=2)
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=None)
        inc, prev_reordered = _step_by_step(model, prev, enc, reorder_at=4, new_order=torch.tensor([1, 1, 3, 2]))
        full, _ = model.decoder(prev_reordered, encoder_out=model.encoder.reorder_encoder_out(
            enc, torch.tensor([1, 1, 3, 2])))
    return full, inc


@functools.lru_cache(maxsize=None)  # the attention yardstick is the same for every test of a dtype
def _low_precision_errors(dtype, conv_type, edge):
    # float32, the finest dtype the ops take: its rounding is 2^13 times finer than fp16's.
    ref, _ = _decoded_in(torch.float32, conv_type, edge)
    ref = ref.double()
    full, inc = _decoded_in(dtype, conv_type, edge)
    assert full.dtype == inc.dtype == dtype
    return tuple(((out.double() - ref).norm() / ref.norm()).item() for out in (full, inc))


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("conv_type,edge", [c for c in CONFIGS if c[0] != "attention"],
                         ids=[i for c, i in zip(CONFIGS, CONFIG_IDS) if c[0] != "attention"])
def test_half_precision_model_within_twice_the_attention_models_error(monkeypatch, conv_type, edge, dtype,
                                                                       backend):
    """fairseq's --fp16/--bf16 cast the whole model. Against the same model in float32, the full
    pass and step-by-step decoding must stay within twice the error of the attention model (the
    same blocks around PyTorch's attention) in that dtype."""
    monkeypatch.setenv("LIGHTCONV_BACKEND", backend)
    errors = _low_precision_errors.__wrapped__(dtype, conv_type, edge)
    yardstick = _low_precision_errors(dtype, "attention", "zeros")
    for name, err, base in zip(("full", "step-by-step"), errors, yardstick):
        assert 0 < base and err <= 2 * base, f"{name}: {err:.2e} > 2 x attention's {base:.2e}"


@pytest.mark.parametrize("conv_type,edge", CONFIGS, ids=CONFIG_IDS)
def test_padding_changes_no_real_output(conv_type, edge):
    """Same sentences with more left padding and garbage pad embeddings: same outputs."""
    torch.manual_seed(0)
    task = FakeTask()
    pad = task.source_dictionary.pad()
    model = build("lcp_seq2seq", task, **small(conv_type, edge, **glu_on(conv_type)))
    src, prev = tokens(task, 2, 6, seed=3), tokens(task, 2, 5, seed=4)
    src[1, :2] = pad  # the second sentence is shorter (fairseq pads sources on the left)
    out, _ = model(src, None, prev)

    padded = torch.cat([torch.full((2, 5), pad), src], dim=1)
    with torch.no_grad():  # make pad embeddings anything but zero
        model.encoder.embed.embed_tokens.weight[pad].normal_()
    out_padded, _ = model(padded, None, prev)
    torch.testing.assert_close(out_padded, out, rtol=1e-5, atol=1e-5)

    enc_a = model.encoder(src)["encoder_out"][0]
    enc_b = model.encoder(padded)["encoder_out"][0][5:]
    real = src.ne(pad).t()
    torch.testing.assert_close(enc_b[real], enc_a[real], rtol=1e-5, atol=1e-5)


def test_kernel_list_length_must_match_layers():
    with pytest.raises(ValueError, match=r"encoder_kernel_size_list=\[3, 5\] has 2 entries but encoder_layers=3"):
        build("dynamicconv_toy", encoder_layers=3, encoder_kernel_size_list=[3, 5])


def test_single_kernel_size_applies_to_all_layers():
    model = build("dynamicconv_toy", decoder_layers=3, decoder_kernel_size_list=[5])
    assert [b.conv.mixer.kernel_size for b in model.decoder.layers] == [5, 5, 5]


def test_heads_must_divide_conv_dim():
    with pytest.raises(ValueError, match="num_heads=5"):
        build("dynamicconv_toy", encoder_attention_heads=5)


def test_renorm_decoder_ignores_right_padding():
    """A target padded on the right (fairseq's default) gives the same outputs at real positions."""
    torch.manual_seed(0)
    task = FakeTask()
    pad = task.target_dictionary.pad()
    model = build("lcp_seq2seq", task, **small("dynamic", "renorm"))
    src, prev = tokens(task, 2, 6, seed=5), tokens(task, 2, 4, seed=6)
    padded = torch.cat([prev, torch.full((2, 3), pad)], dim=1)
    with torch.no_grad():
        model.decoder.embed.embed_tokens.weight[pad].normal_()
    torch.testing.assert_close(model(src, None, padded)[0][:, :4], model(src, None, prev)[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edge", ["renorm", "fairseq"])
def test_talk_has_only_the_zeros_edge(edge):
    with pytest.raises(ValueError, match=f"--conv-edge={edge} does not apply to TaLK"):
        build("lcp_seq2seq", **small("talk", edge))


def test_edges_differ_only_near_the_start_of_a_causal_layer():
    """Same weights, three edges: identical outputs once every tap is inside."""
    torch.manual_seed(0)
    task = FakeTask()
    base = build("lcp_lm", task, decoder_conv_type="dynamic", decoder_embed_dim=16, decoder_layers=1,
                 decoder_ffn_embed_dim=32, decoder_attention_heads=2, decoder_kernel_size_list=[4])
    prev = tokens(task, 2, 9)
    outs = {}
    for edge in ("zeros", "renorm", "fairseq"):
        for layer in base.decoder.layers:
            layer.conv.mixer.edge = edge
        outs[edge] = base.decoder(prev)[0]
    for edge in ("renorm", "fairseq"):
        torch.testing.assert_close(outs[edge][:, 3:], outs["zeros"][:, 3:], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(outs["renorm"][:, :3], outs["zeros"][:, :3])
    # T = 9 >= K = 4: fairseq's cut does not apply.
    torch.testing.assert_close(outs["fairseq"], outs["zeros"], rtol=1e-5, atol=1e-5)


def test_unknown_conv_type():
    with pytest.raises(ValueError, match="conv_type='gated'"):
        build("lcp_seq2seq", encoder_conv_type="gated")


def test_readme_lists_every_named_architecture():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [a for a in {**seq2seq_archs.ARCHITECTURES, **lm_archs.ARCHITECTURES} if f"`{a}`" not in readme]
    assert not missing, f"README's architecture table lacks {missing}"
