"""The Depth-Adaptive decoder (models/depth_adaptive.py) and its criterion.

* threshold 1 (no early exit) decodes exactly as the plain decoder;
* an exit forced at block n decodes, step by step, as the full forward pass of
  the first n blocks;
* exits that vary per token and per row (a confidence rule on an untrained
  model) decode, step by step and through beam reorders, as the full forward
  pass with each token's state copied above its exit (forward_with_exits,
  itself checked against a loop over blocks written here);
* the criterion's loss is the weighted mean of the blocks' label-smoothed
  losses plus alpha times -log q at the oracle's exits, recomputed here;
* bad options give one clear error each.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

import lightconv_plugin  # noqa: F401
from lightconv_plugin.criterions.depth_adaptive import DepthAdaptiveCriterion
from lightconv_plugin.models.depth_adaptive import DepthAdaptiveDecoder, parse_thresholds
from lightconv_plugin.modules.halting import oracle_exits
from test_models import BEAM_ORDERS, CONFIG_IDS, CONFIGS, CONV_TYPES, FakeTask, build, glu_on, small, tokens


def da_model(conv_type, edge="zeros", task=None, **kw):
    kw.setdefault("exit_classifiers", "shared")
    kw.setdefault("exit_mode", "confidence")
    cfg = small(conv_type, edge, **glu_on(conv_type))
    cfg["decoder_layers"], cfg["decoder_kernel_size_list"] = 3, [3, 5, 2]
    return build("lcp_seq2seq", task or FakeTask(), **cfg, **kw)


def step_by_step(model, prev, enc, reorder_at=None, new_order=None):
    state, outs, exits = {}, [], []
    for t in range(prev.shape[1]):
        if reorder_at is not None and t == reorder_at:
            model.decoder.reorder_incremental_state_scripting(state, new_order)
            enc = model.encoder.reorder_encoder_out(enc, new_order)
            prev = prev.index_select(0, new_order)
            outs = [o.index_select(0, new_order) for o in outs]
            exits = [e.index_select(0, new_order) for e in exits]
        y, extra = model.decoder(prev[:, : t + 1], encoder_out=enc, incremental_state=state)
        outs.append(y)
        exits.append(extra["exit_block"])
    return torch.cat(outs, 1), torch.stack(exits, 1), prev, enc


def copied_state_forward(model, prev, enc, exits):
    """Independent of forward_with_exits: each block on the whole sequence, then
    the rows whose token left below keep their previous state, one position at a time."""
    dec = model.decoder
    x = dec.embed(prev)
    pad = prev.eq(dec.padding_idx)
    pad = pad if pad.any() else None
    e = enc["encoder_out"][0]
    states = [x]
    for m, layer in enumerate(dec.layers):
        y, _ = layer(states[-1], pad, e, None, None)
        nxt = y.clone()
        for b in range(prev.shape[0]):
            for t in range(prev.shape[1]):
                if exits[b, t] < m:
                    nxt[b, t] = states[-1][b, t]
        states.append(nxt)
    out = torch.stack([torch.stack([dec.exit_logits(int(exits[b, t]), states[int(exits[b, t]) + 1][b:b + 1, t:t + 1])[0, 0]
                                    for t in range(prev.shape[1])]) for b in range(prev.shape[0])])
    return out


@pytest.mark.parametrize("conv_type,edge", CONFIGS, ids=CONFIG_IDS)
def test_threshold_one_decodes_as_the_plain_decoder(conv_type, edge):
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model(conv_type, edge, task, exit_threshold="1.0")
    src, prev = tokens(task, 3, 6, seed=1), tokens(task, 3, 7, seed=2)
    enc = model.encoder(src, src_lengths=None)
    inc, exits, _, _ = step_by_step(model, prev, enc)
    full, _ = model.decoder(prev, encoder_out=enc)  # the plain, full-depth path
    torch.testing.assert_close(inc, full, rtol=1e-5, atol=1e-5)
    assert exits.eq(2).all()


@pytest.mark.parametrize("per_block", [False, True], ids=["shared", "per-block"])
@pytest.mark.parametrize("conv_type", ["dynamic", "talk", "attention"])
def test_forced_exit_decodes_as_the_first_n_blocks(conv_type, per_block):
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model(conv_type, task=task, exit_classifiers="per-block" if per_block else "shared")
    src, prev = tokens(task, 2, 5, seed=1), tokens(task, 2, 6, seed=2)
    enc = model.encoder(src, src_lengths=None)
    _, extra = model.decoder(prev, encoder_out=enc)
    for n in range(3):
        model.decoder.forced_exit = n
        inc, exits, _, _ = step_by_step(model, prev, enc)
        assert exits.eq(n).all()
        reference = model.decoder.exit_logits(n, extra["inner_states"][n + 1])
        torch.testing.assert_close(inc, reference, rtol=1e-5, atol=1e-5)
    # Per token, a forced exit at n pays blocks 0..n and the state updates above.
    dec, s = model.decoder, model.decoder.stats
    block = [dec._block_cost(layer, 5) for layer in dec.layers]
    state = [dec._state_cost(layer) for layer in dec.layers]
    spent = sum(sum(block[: n + 1]) + sum(state[n + 1:]) for n in range(3))
    assert s.saved("token") == pytest.approx(1 - spent / (3 * sum(block)), rel=1e-9)
    assert s.saved("batch") == pytest.approx(s.saved("token"), rel=1e-9)  # every row leaves together


@pytest.mark.parametrize("order", sorted(BEAM_ORDERS))
@pytest.mark.parametrize("conv_type,edge", CONFIGS, ids=CONFIG_IDS)
def test_varying_exits_decode_as_copied_states_with_beam_reorder(conv_type, edge, order):
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model(conv_type, edge, task)
    # An untrained model's top probability is near 1/V: pick the median so that exits vary.
    src = tokens(task, 2, 5, seed=1).repeat_interleave(2, dim=0)
    prev = tokens(task, 4, 8, seed=2)
    enc = model.encoder(src, src_lengths=None)
    _, extra = model.decoder(prev, encoder_out=enc)
    top = [F.softmax(model.decoder.exit_logits(n, h), -1).max(-1).values for n, h in enumerate(extra["inner_states"][1:3])]
    model.decoder.thresholds = [float(t.detach().median()) for t in top]
    new_order = torch.tensor(BEAM_ORDERS[order])
    inc, exits, prev_r, enc_r = step_by_step(model, prev, enc, reorder_at=3, new_order=new_order)
    assert len(exits.unique()) >= 2, "the thresholds should make tokens leave at different blocks"
    torch.testing.assert_close(inc, model.decoder.forward_with_exits(prev_r, enc_r, exits), rtol=1e-5, atol=1e-5)
    if order == "within-beams" and edge == "zeros":
        torch.testing.assert_close(inc, copied_state_forward(model, prev_r, enc_r, exits), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["sequence", "token-multinomial", "token-geometric"])
def test_halting_heads_decide_exits_and_the_log_reports_them(mode):
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model("dynamic", task=task, exit_mode=mode, exit_threshold="0.5")
    src, prev = tokens(task, 3, 5, seed=1), tokens(task, 3, 6, seed=2)
    enc = model.encoder(src, src_lengths=None)
    inc, exits, _, _ = step_by_step(model, prev, enc)
    torch.testing.assert_close(inc, model.decoder.forward_with_exits(prev, enc, exits), rtol=1e-5, atol=1e-5)
    _, extra = model.decoder(prev, encoder_out=enc)
    log_q = extra["halting_log_q"]
    if mode == "sequence":
        # One exit per sentence: the first block whose cumulative q exceeds 0.5.
        expected = (log_q.exp().cumsum(-1)[:, :2] <= 0.5).sum(-1)
        assert torch.equal(exits, expected.unsqueeze(1).expand_as(exits))
    stats = model.decoder.stats
    assert stats.tokens == exits.numel()
    assert stats.average_exit() == pytest.approx(exits.double().mean().item() + 1)
    assert "average exit (AE)" in stats.report()


def test_criterion_is_the_weighted_block_losses_plus_the_halting_term():
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model("dynamic", task=task, exit_mode="token-geometric", exit_classifiers="per-block").train()
    for module in model.modules():  # deterministic: no dropout
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    pad = task.target_dictionary.pad()
    src, tgt = tokens(task, 2, 5, seed=1), tokens(task, 2, 4, seed=2)
    tgt[1, 3] = pad
    prev = torch.cat([torch.full((2, 1), task.target_dictionary.eos()), tgt[:, :-1]], 1)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([5, 5]), "prev_output_tokens": prev},
              "target": tgt, "ntokens": int(tgt.ne(pad).sum())}
    crit = DepthAdaptiveCriterion(task, 0.1, "1,2,1", "aligned", 1, "token-likelihood", 0.5, 1.0, 0.1, False)
    loss, size, log = crit(model, sample)

    enc = model.encoder(src, src_lengths=None)
    logits, extra = model.decoder(prev, encoder_out=enc)
    mask = tgt.ne(pad)
    total, lls = 0.0, []
    for n, w in enumerate([0.25, 0.5, 0.25]):
        lp = F.log_softmax(model.decoder.exit_logits(n, extra["inner_states"][n + 1]), -1)
        nll = -lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        uniform = -lp.mean(-1)  # eps spread over all V classes except the target, as fairseq does
        V = lp.size(-1)
        smoothed = (1 - 0.1 - 0.1 / (V - 1)) * nll + 0.1 * V / (V - 1) * uniform
        total += w * smoothed[mask].sum()
        lls.append(-nll)
    exits = oracle_exits("token-likelihood", torch.stack(lls, -1), torch.zeros(2, 4, 3, dtype=torch.bool), mask, 1.0, 0.1)
    halting = -extra["halting_log_q"].gather(-1, exits.unsqueeze(-1)).squeeze(-1)[mask].sum()
    torch.testing.assert_close(loss, total + 0.5 * halting, rtol=1e-5, atol=1e-5)
    assert size == 7 and log["ntokens"] == 7
    loss.backward()
    assert model.decoder.halting.proj.weight.grad is not None


def _training_sample(task, B=8, S=9, T=10):
    src, tgt = tokens(task, B, S, seed=1), tokens(task, B, T, seed=2)
    prev = torch.cat([torch.full((B, 1), task.target_dictionary.eos()), tgt[:, :-1]], 1)
    return {"net_input": {"src_tokens": src, "src_lengths": torch.full((B,), S), "prev_output_tokens": prev},
            "target": tgt, "ntokens": tgt.numel()}


def _without_gradient(model):
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("conv_type", CONV_TYPES)
def test_every_trainable_parameter_gets_a_gradient_in_one_step(conv_type):
    """On GPUs fairseq wraps the model in torch DDP (--ddp-backend pytorch_ddp, its default),
    which fails at the next step when a trainable parameter got no gradient. The CPU runs use
    fairseq's legacy DDP, which does not notice, so it is checked here: the plain model, and
    every exit mode, classifier layout and training of the Depth-Adaptive decoder."""
    task = FakeTask()
    torch.manual_seed(0)
    plain = build("lcp_seq2seq", task, **small(conv_type, **glu_on(conv_type))).train()
    sample = _training_sample(task)
    out, _ = plain(**sample["net_input"])
    F.cross_entropy(out.flatten(0, 1), sample["target"].flatten()).backward()
    assert _without_gradient(plain) == []
    for mode in ("token-geometric", "token-multinomial", "sequence", "confidence"):
        oracle = "sequence-correctness" if mode == "sequence" else "token-correctness"
        for classifiers in ("shared", "per-block"):
            for training in ("aligned", "mixed"):
                torch.manual_seed(0)
                model = da_model(conv_type, task=task, exit_mode=mode, exit_classifiers=classifiers).train()
                crit = DepthAdaptiveCriterion(task, 0.1, "", training, 2, oracle, 1.0, 1.0, 0.1, False)
                crit(model, _training_sample(task))[0].backward()
                assert _without_gradient(model) == [], (mode, classifiers, training)


def test_train_halting_only_freezes_everything_else():
    model = da_model("dynamic", exit_mode="token-geometric", train_halting_only=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"decoder.halting.proj.weight", "decoder.halting.proj.bias"}


def test_train_halting_only_retrofits_a_plain_model():
    """A plain model's checkpoint loads into a Depth-Adaptive one whose halting head is to be
    trained: every other parameter comes from the checkpoint, the head keeps its initialisation.
    Without --train-halting-only that head would decide exits untrained, so the load refuses."""
    cfg = small("dynamic", **glu_on("dynamic"))
    cfg["decoder_layers"], cfg["decoder_kernel_size_list"] = 3, [3, 5, 2]
    torch.manual_seed(0)
    plain = build("lcp_seq2seq", FakeTask(), **cfg).state_dict()
    torch.manual_seed(1)
    model = build("lcp_seq2seq", FakeTask(), **cfg, exit_classifiers="shared", exit_mode="token-geometric",
                  train_halting_only=True)
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("decoder.halting.")}
    assert head and not head.keys() & plain.keys()
    model.load_state_dict(dict(plain), strict=True)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in plain.items())
    assert all(torch.equal(loaded[k], v) for k, v in head.items())

    untrained = build("lcp_seq2seq", FakeTask(), **cfg, exit_classifiers="shared", exit_mode="token-geometric")
    with pytest.raises(ValueError, match="no halting head for --exit-mode token-geometric: train one"):
        untrained.load_state_dict(dict(plain), strict=True)
    per_block = build("lcp_seq2seq", FakeTask(), **cfg, exit_classifiers="per-block", exit_mode="token-geometric",
                      train_halting_only=True)
    with pytest.raises(ValueError, match="no per-block classifiers"):
        per_block.load_state_dict(dict(plain), strict=True)


@pytest.mark.parametrize("overrides,message", [
    ({"exit_threshold": "0.9,x"}, "--exit-threshold: expected numbers >= 0, got '0.9,x'"),
    ({"exit_threshold": "0.9,0.8,0.7"}, "--exit-threshold: 3 values for 3 blocks"),
    ({"exit_classifiers": "per-block", "share_decoder_input_output_embed": True}, "tied to the embeddings"),
    ({"exit_mode": "confidence", "train_halting_only": True}, "--train-halting-only: --exit-mode confidence has no halting"),
])
def test_bad_options_name_the_option(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        da_model("dynamic", **overrides)


def test_criterion_refuses_a_plain_decoder_and_bad_weights():
    task = FakeTask()
    plain = build("lcp_seq2seq", task, **small("dynamic"))
    crit = DepthAdaptiveCriterion(task, 0.0, "", "aligned", 1, "token-correctness", 1.0, 1.0, 0.0, False)
    sample = {"net_input": {"src_tokens": tokens(task, 1, 3), "src_lengths": torch.tensor([3]),
                            "prev_output_tokens": tokens(task, 1, 3)}, "target": tokens(task, 1, 3), "ntokens": 3}
    with pytest.raises(ValueError, match="needs a Depth-Adaptive decoder"):
        crit(plain, sample)
    crit = DepthAdaptiveCriterion(task, 0.0, "1,1", "aligned", 1, "token-correctness", 1.0, 1.0, 0.0, False)
    with pytest.raises(ValueError, match="--exit-loss-weights: expected 3"):
        crit(da_model("dynamic", task=task), sample)
    with pytest.raises(ValueError, match="--da-training must be 'aligned' or 'mixed', got 'both'"):
        DepthAdaptiveCriterion(task, 0.0, "", "both", 1, "token-correctness", 1.0, 1.0, 0.0, False)
    assert parse_thresholds("0.5", 4) == [0.5, 0.5, 0.5]
    assert isinstance(da_model("dynamic").decoder, DepthAdaptiveDecoder)


def test_fairseq_train_and_generate_from_the_command_line(tmp_path, mode="token-geometric", training="mixed"):
    """The toy recipe trains a Depth-Adaptive model with the criterion and
    fairseq-generate decodes it with a threshold given by --model-overrides."""
    import subprocess

    from test_recipe_toy import REPO, _env

    gen = "--model-overrides {'exit_threshold':'0.5'}"
    proc = subprocess.run(
        ["bash", f"{REPO}/recipes/toy/run.sh", "--workdir", str(tmp_path), "--train-size", "200",
         "--valid-size", "20", "--test-size", "20", "--max-epoch", "1", "--min-bleu", "0", "--beam", "2",
         "--train-args", f"--decoder-layers 3 --decoder-kernel-size-list [3,3,3] --exit-classifiers shared "
                         f"--exit-mode {mode} --criterion depth_adaptive_cross_entropy --label-smoothing 0.1 "
                         f"--da-training {training} --mixed-samples 2",
         "--gen-args", gen], capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("BLEU = ")
    train_log = (tmp_path / "logs" / "stage4.train.dynamicconv.log").read_text()
    assert "nll_block1" in train_log and "nll_block3" in train_log
    assert "oracle_ae" in train_log
    gen_log = (tmp_path / "logs" / "stage6.generate.dynamicconv.log").read_text()
    ae = [float(x) for x in __import__("re").findall(r"average exit \(AE\) ([\d.]+) of 3 blocks", gen_log)]
    assert len(ae) == 1 and 1.0 <= ae[0] <= 3.0, gen_log[-2000:]


def test_mixed_training_is_the_mean_loss_at_sampled_exits():
    torch.manual_seed(0)
    task = FakeTask()
    model = da_model("dynamic", task=task).train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    src, tgt = tokens(task, 2, 5, seed=1), tokens(task, 2, 4, seed=2)
    prev = torch.cat([torch.full((2, 1), task.target_dictionary.eos()), tgt[:, :-1]], 1)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([5, 5]), "prev_output_tokens": prev},
              "target": tgt, "ntokens": 8}
    crit = DepthAdaptiveCriterion(task, 0.0, "", "mixed", 3, "token-correctness", 1.0, 1.0, 0.0, False)
    torch.manual_seed(5)
    loss, _, _ = crit(model, sample)
    torch.manual_seed(5)
    enc = model.encoder(src, src_lengths=None)
    expected = 0.0
    for _ in range(3):
        exits = torch.randint(0, 3, tgt.shape)
        lp = F.log_softmax(model.decoder.forward_with_exits(prev, enc, exits), -1)
        expected += -lp.gather(-1, tgt.unsqueeze(-1)).sum() / 3
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_train_halting_only_on_a_trained_model_from_the_command_line(tmp_path, tmp_path_factory):
    """The README's recipe: --finetune-from-model a plain model's checkpoint with --train-halting-only
    (a bare flag): only the halting head trains (fairseq's count of trained parameters is its size),
    and every other parameter in the new checkpoint is the plain model's."""
    import re

    import cli_helpers as fc

    data = fc.translation_data(tmp_path_factory)
    common = ("--arch", "dynamicconv_toy", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500",
              "--max-update", "3")
    fc.train(data, tmp_path / "plain", *common)
    log = fc.train(data, tmp_path / "halting", *common, "--finetune-from-model", tmp_path / "plain" / "checkpoint_last.pt",
                   "--exit-classifiers", "shared", "--exit-mode", "token-geometric", "--train-halting-only",
                   "--criterion", "depth_adaptive_cross_entropy", "--label-smoothing", "0.1")
    trained = int(re.search(r"num\. trained: ([\d,]+)", log).group(1).replace(",", ""))
    assert trained == 128 + 1, log[-2000:]  # token-geometric head: one logit from d = 128 (the toy's width)
    plain = torch.load(tmp_path / "plain" / "checkpoint_last.pt", weights_only=False)["model"]
    tuned = torch.load(tmp_path / "halting" / "checkpoint_last.pt", weights_only=False)["model"]
    assert set(tuned) - set(plain) == {"decoder.halting.proj.weight", "decoder.halting.proj.bias"}
    assert all(torch.equal(tuned[k], v) for k, v in plain.items())
