"""The self-attention mixer, and ``attention`` models as Transformers.

* the mixer against a float64 loop written as the formula reads (one query
  and one head at a time, softmax(q.k / sqrt(d)) v), outputs and gradients,
  with and without padding, causal and not;
* masks: a padded key never reaches a real query, a padded query gives no NaN;
* step-by-step decoding equals the causal forward, the cache growing by one;
* ``attention_iwslt_de_en`` has the parameters of fairseq's
  ``transformer_iwslt_de_en`` (count, formula, names and shapes), and with
  fairseq's weights copied in computes what fairseq's Transformer computes,
  full and incremental.

Tolerance: float32 against the float64 loop. The outputs are O(1) and each
is a few length-C dot products and a softmax away from the input, so the
float32 rounding is a few hundred ulps at most (2^-24 each): rtol 1e-5,
atol 1e-6. The same holds between two float32 implementations.
"""

import argparse
import math

import pytest
import torch
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

import lightconv_plugin  # noqa: F401  (registers the models)
from lightconv_plugin.modules.attention_mixer import AttentionMixer
from test_models import FakeTask, build, tokens

TOL = dict(rtol=1e-5, atol=1e-6)
B, T, C, H = 3, 7, 12, 3


def attention_loop(mixer, x, pad=None, causal=False):
    """float64, (B, T, C) -> (B, T, C), from the mixer's weights alone."""
    x = x.double()
    Bx, Tx, Cx = x.shape
    d = Cx // mixer.num_heads

    def lin(layer, v):
        return v @ layer.weight.double().t() + layer.bias.double()

    q, k, v = lin(mixer.q_proj, x), lin(mixer.k_proj, x), lin(mixer.v_proj, x)
    heads = torch.zeros(Bx, Tx, Cx, dtype=torch.float64)
    for b in range(Bx):
        for h in range(mixer.num_heads):
            cols = slice(h * d, (h + 1) * d)
            for i in range(Tx):
                # Which keys query i sees: real ones (not after i when causal),
                # and always its own position.
                keys = [j for j in range(Tx)
                        if j == i or ((pad is None or not pad[b, j]) and (not causal or j <= i))]
                scores = torch.stack([q[b, i, cols] @ k[b, j, cols] / math.sqrt(d) for j in keys])
                p = torch.exp(scores - scores.max())
                p = p / p.sum()
                heads[b, i, cols] = sum(p[n] * v[b, j, cols] for n, j in enumerate(keys))
    return lin(mixer.out_proj, heads)


def mixer(causal, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    m = AttentionMixer(C, H, causal, dropout=dropout).eval()
    with torch.no_grad():  # non-zero biases, so that a wrong bias path shows
        for p in (m.q_proj, m.k_proj, m.v_proj, m.out_proj):
            p.bias.normal_()
    return m


def left_and_right_pad():
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[1, :3] = True  # left padding: a causal query 0..2 has no real key
    pad[2, 5:] = True  # right padding
    return pad


@pytest.mark.parametrize("padded", [False, True], ids=["no-pad", "pad"])
@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
def test_forward_and_gradients_match_the_loop(causal, padded):
    m = mixer(causal)
    pad = left_and_right_pad() if padded else None
    x = torch.randn(B, T, C, requires_grad=True)
    x64 = x.detach().double().requires_grad_()
    out = m(x, pad)
    want = attention_loop(m, x64, pad, causal)
    torch.testing.assert_close(out.double(), want, **TOL)

    g = torch.randn(B, T, C)
    grads = torch.autograd.grad(out, [x, m.q_proj.weight, m.v_proj.bias], g)
    m64 = m.double()  # the loop reads the weights: in float64 they take float64 gradients
    want = attention_loop(m64, x64, pad, causal)
    want_grads = torch.autograd.grad(want, [x64, m64.q_proj.weight, m64.v_proj.bias], g.double())
    # A gradient entry sums B * T products with cancellation, so its rounding
    # follows the size of the whole gradient, not of the entry: compared by norm.
    for got, exp in zip(grads, want_grads):
        assert ((got.double() - exp).norm() / exp.norm()).item() < 1e-5


@pytest.mark.parametrize("causal", [False, True], ids=["encoder", "decoder"])
def test_padded_keys_reach_no_real_query_and_padded_queries_stay_finite(causal):
    m = mixer(causal)
    pad = left_and_right_pad()
    x = torch.randn(B, T, C)
    garbage = torch.where(pad.unsqueeze(-1), 1e3 * torch.randn(B, T, C), x)
    out, out_garbage = m(x, pad), m(garbage, pad)
    assert torch.isfinite(out).all() and torch.isfinite(out_garbage).all()
    torch.testing.assert_close(out_garbage[~pad], out[~pad], **TOL)
    # and the mask matters: without it the real outputs change
    assert not torch.allclose(m(garbage, None)[~pad], out[~pad], **TOL)


def right_pad_from(t0):
    pad = torch.zeros(B, T, dtype=torch.bool)
    pad[2, t0:] = True
    return pad


@pytest.mark.parametrize("padded", ["no-pad", "pad", "pad-from-step-4"])
def test_step_equals_causal_forward_and_the_cache_grows(padded):
    m = mixer(True)
    pad = {"no-pad": None, "pad": left_and_right_pad(), "pad-from-step-4": right_pad_from(4)}[padded]
    x = torch.randn(B, T, C)
    state, outs = None, []
    for t in range(T):
        # As the decoder does: no mask at a step where nothing is padded.
        pad_t = None if pad is None or not pad[:, t].any() else pad[:, t:t + 1]
        y, state = m.step(x[:, t:t + 1], state, pad_t)
        assert state["key"].shape == state["value"].shape == (B, H, t + 1, C // H)
        # A key mask is kept from the first padded step on, never before.
        first_pad = None if pad is None else int(pad.any(0).nonzero()[0])
        if first_pad is None or t < first_pad:
            assert "key_pad" not in state
        else:
            assert torch.equal(state["key_pad"], pad[:, : t + 1])
        outs.append(y)
    torch.testing.assert_close(torch.cat(outs, 1), m(x, pad), **TOL)


@pytest.mark.parametrize("call", ["forward", "forward-padded", "step"])
def test_attention_never_runs_on_cudnn(monkeypatch, call):
    """cuDNN builds an execution plan per new shape: tens of ms at every decoding step."""
    seen = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled()))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    m, x = mixer(True), torch.randn(B, T, C)
    if call == "step":
        m.step(x[:, 1:2], m.step(x[:, :1], None)[1])
    else:
        m(x, left_and_right_pad() if call == "forward-padded" else None)
    assert seen and all(not cudnn and flash for cudnn, flash in seen)
    assert torch.backends.cuda.cudnn_sdp_enabled()  # restored after the call


def test_encoder_mixer_has_no_step_and_heads_must_divide():
    with pytest.raises(RuntimeError, match="causal"):
        mixer(False).step(torch.randn(B, 1, C), None)
    with pytest.raises(ValueError, match="num_heads=5: must divide the attention dim 12"):
        AttentionMixer(C, 5, causal=False)


def test_dropout_acts_on_attention_weights_in_training_only():
    m = mixer(True, dropout=0.5)
    x = torch.randn(B, T, C)
    torch.testing.assert_close(m(x).double(), attention_loop(m, x, causal=True), **TOL)
    m.train()
    a, b = m(x), m(x)
    assert torch.isfinite(a).all() and not torch.allclose(a, b)
    # A causal query 0 has one key, of weight 1 in every head: dropout on the
    # weights keeps a head's whole output (times 1 / (1 - p) = 2) or none of
    # it, where dropout on activations would drop channels one by one. With
    # an identity output projection the heads show.
    with torch.no_grad():
        m.out_proj.weight.copy_(torch.eye(C))
        m.out_proj.bias.zero_()
    torch.manual_seed(1)
    first = m(x)[:, 0].view(B, H, C // H)
    want = m.eval()(x)[:, 0].view(B, H, C // H)
    outcomes = set()
    for got, exp in zip(first.reshape(-1, C // H), want.reshape(-1, C // H)):
        kept = torch.allclose(got, 2 * exp, **TOL)
        assert kept or torch.equal(got, torch.zeros_like(got))
        outcomes.add(kept)
    assert outcomes == {True, False}  # 9 heads at p = 0.5, seed fixed: both happen


# --- the model: attention_* archs are fairseq Transformers ---------------------

def fairseq_transformer(arch, task, **overrides):
    args = argparse.Namespace(arch=arch, max_source_positions=256, max_target_positions=256, **overrides)
    ARCH_CONFIG_REGISTRY[arch](args)
    return ARCH_MODEL_REGISTRY[arch].build_model(args, task).eval()


def transformer_parameters(V_src, V_tgt, C, F, enc_layers, dec_layers):
    """A post-norm Transformer, unshared embeddings, sinusoidal positions."""
    attention = 4 * (C * C + C)  # Q, K, V, out with biases
    ffn = C * F + F + F * C + C
    norm = 2 * C
    encoder = enc_layers * (attention + ffn + 2 * norm)
    decoder = dec_layers * (2 * attention + ffn + 3 * norm)
    return V_src * C + encoder + V_tgt * C + decoder + V_tgt * C  # + output projection


# fairseq name (after the layer index) -> ours
FAIRSEQ_NAMES = {
    "self_attn.": "conv.mixer.", "self_attn_layer_norm.": "conv_res.norm.",
    "encoder_attn_layer_norm.": "attn_res.norm.", "fc1.": "ffn.fc1.", "fc2.": "ffn.fc2.",
    "final_layer_norm.": "ffn_res.norm.", "embed_tokens.": "embed.embed_tokens.",
}


def ours_name(fairseq_name):
    side, rest = fairseq_name.split(".", 1)
    if rest.startswith("layers."):
        _, i, rest = rest.split(".", 2)
        side = f"{side}.layers.{i}"
    for theirs, mine in FAIRSEQ_NAMES.items():
        if rest.startswith(theirs):
            return f"{side}.{mine}{rest[len(theirs):]}"
    return f"{side}.{rest}"


def test_iwslt_size_is_fairseqs_transformer_iwslt_de_en():
    task = FakeTask()
    ours = build("attention_iwslt_de_en", task)
    theirs = fairseq_transformer("transformer_iwslt_de_en", task)
    V = len(task.source_dictionary)
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in theirs.parameters())
    assert n_ours == transformer_parameters(V, V, 512, 1024, 6, 6) == 31_595_520
    mine = {n: p.shape for n, p in ours.named_parameters()}
    assert {ours_name(n): p.shape for n, p in theirs.named_parameters()} == mine
    assert [len(layer.conv.mixer.q_proj.weight) // layer.conv.mixer.head_dim
            for layer in ours.encoder.layers] == [4] * 6


@pytest.mark.parametrize("arch,dims", [("attention_wmt16_en_de", (512, 2048)),
                                       ("attention_wmt16_en_de_big", (1024, 4096))])
def test_wmt_sizes_have_the_transformer_formulas_parameters(arch, dims):
    task = FakeTask()
    with torch.device("meta"):  # counting needs no memory
        model = build(arch, task)
    V = len(task.source_dictionary)
    assert sum(p.numel() for p in model.parameters()) == transformer_parameters(V, V, *dims, 6, 6)


def test_computes_what_fairseqs_transformer_computes_with_its_weights():
    torch.manual_seed(0)
    task = FakeTask()
    small = dict(encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=4,
                 decoder_embed_dim=16, decoder_ffn_embed_dim=32, decoder_attention_heads=4,
                 encoder_layers=2, decoder_layers=2)
    theirs = fairseq_transformer("transformer_iwslt_de_en", task, **small)
    ours = build("attention_iwslt_de_en", task, **small)
    with torch.no_grad():
        for p in theirs.parameters():  # biases and norms too, not their initial 0 / 1
            p.add_(0.1 * torch.randn_like(p))
    state = {ours_name(n): p for n, p in theirs.state_dict().items()
             if not n.endswith(("_float_tensor", ".version"))}
    ours.load_state_dict(state, strict=True)

    pad = task.source_dictionary.pad()
    src, prev = tokens(task, 2, 6, seed=1), tokens(task, 2, 5, seed=2)
    src[1, :2] = pad  # left-padded source, as fairseq batches them
    lengths = src.ne(pad).sum(1)
    torch.testing.assert_close(ours(src, lengths, prev)[0], theirs(src, lengths, prev)[0], **TOL)

    enc_ours, enc_theirs = ours.encoder(src, lengths), theirs.encoder(src, lengths)
    st_ours, st_theirs, outs_ours, outs_theirs = {}, {}, [], []
    for t in range(prev.shape[1]):
        outs_ours.append(ours.decoder(prev[:, :t + 1], enc_ours, incremental_state=st_ours)[0])
        outs_theirs.append(theirs.decoder(prev[:, :t + 1], enc_theirs, incremental_state=st_theirs)[0])
    torch.testing.assert_close(torch.cat(outs_ours, 1), torch.cat(outs_theirs, 1), **TOL)
