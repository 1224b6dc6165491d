"""fairseq's own tools end to end with the plugin, in the style of fairseq's test_binaries:
preprocess, train a few updates, then generate (translation) or evaluate (LM)."""

import math
import re

import pytest

from cli_helpers import PLUGIN_DIR, SPLITS, generate, lm_data, run, tagged, train, translation_data
from lightconv_plugin.models import lm_archs, seq2seq_archs

# Every convolution type has a toy architecture; each one trains and decodes here.
SEQ2SEQ_TOYS = sorted(a for a in seq2seq_archs.ARCHITECTURES if a.endswith("_toy"))
LM_TOYS = sorted(a for a in lm_archs.ARCHITECTURES if a.endswith("_lm_toy"))

TINY = ["--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "4",
        "--encoder-kernel-size-list", "[3,5]", "--decoder-kernel-size-list", "[3,5]"]
OPTIM = ["--optimizer", "adam", "--lr", "0.003", "--lr-scheduler", "inverse_sqrt",
         "--warmup-updates", "5", "--max-tokens", "1000"]


@pytest.mark.parametrize("arch", SEQ2SEQ_TOYS)
def test_translation_train_and_generate(arch, tmp_path_factory, tmp_path):
    data = translation_data(tmp_path_factory)
    log = train(data, tmp_path, "--arch", arch, *TINY, *OPTIM, "--max-update", "25",
                "--weight-dropout", "0.1", "--criterion", "label_smoothed_cross_entropy",
                "--label-smoothing", "0.1")
    losses = [float(m) for m in re.findall(r"train_inner \|.*? loss=([\d.]+),", log)]
    assert len(losses) == 25 and losses[-1] < losses[0], losses
    out = generate(data, tmp_path / "checkpoint_best.pt", "--scoring", "sacrebleu")
    hyps = tagged(out, "H")  # id -> [score, hypothesis]
    assert sorted(hyps) == list(range(SPLITS["test"]))
    assert all(math.isfinite(float(fields[0])) for fields in hyps.values())
    assert re.search(r"Generate test with beam=4: BLEU = [\d.]+", out), out[-2000:]


@pytest.mark.parametrize("arch", LM_TOYS)
def test_language_model_train_and_eval(arch, tmp_path_factory, tmp_path):
    data = lm_data(tmp_path_factory)
    train(data, tmp_path, "--task", "language_modeling", "--arch", arch, "--tokens-per-sample", "32",
          "--sample-break-mode", "none", *OPTIM, "--max-update", "20")
    out = run("fairseq-eval-lm", data, "--path", tmp_path / "checkpoint_best.pt",
              "--user-dir", PLUGIN_DIR, "--cpu", "--gen-subset", "test", "--tokens-per-sample", "32",
              "--max-tokens", "256", "--num-workers", "0")
    m = re.search(r"Loss \(base 2\): ([\d.]+), Perplexity: ([\d.]+)", out)
    assert m, out[-2000:]
    # Uniform guessing over the vocabulary is the worst a trained model should do.
    vocab = sum(1 for _ in open(data / "dict.txt")) + 4
    assert float(m.group(2)) < vocab


def test_lm_with_adaptive_input_and_softmax(tmp_path_factory, tmp_path):
    data = lm_data(tmp_path_factory)
    train(data, tmp_path, "--task", "language_modeling", "--arch", "dynamicconv_lm_toy",
          "--tokens-per-sample", "32", "--sample-break-mode", "none", *OPTIM, "--max-update", "5",
          "--adaptive-input", "True", "--adaptive-input-cutoff", "10,20", "--adaptive-softmax-cutoff",
          "10,20", "--tie-adaptive-weights", "True", "--criterion", "adaptive_loss")
    assert (tmp_path / "checkpoint_last.pt").exists()
