"""The language-model recipes (recipes/gbw_lm, recipes/wikitext103_lm) and their stage 2.

* Stage 2 (recipes/common/lm_prepare.py) on the fixture archives of
  tests/recipe_fixtures/lm.py, against the counts of their layout (written out
  below from the layout, not read from the code): lines, words and the tokens
  fairseq-eval-lm scores (every word plus one end-of-sentence per line).
* Both recipes run stages 1-6 on their fixture on CPU with a tiny model (the
  two at once: each mostly waits for fairseq's imports on one core), print
  the perplexity last, and fairseq-eval-lm scored exactly the fixture's test
  tokens; a re-run skips every stage.
* Each setting's dry run (every model) is compared with the papers'
  hyper-parameters, written out below.
* Bad input: one clear error each, before any work.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes" / "common"))

import eval_lm_report  # noqa: E402
import lm_prepare  # noqa: E402
from recipe_fixtures import gbw_lm_shards, make_downloads, truncate, wikitext103_lines  # noqa: E402
from test_recipe_toy import REPO, _env  # noqa: E402

# From the fixture layouts (recipe_fixtures/lm.py): (lines, words) per split.
# GBW: train 99 shards x (7 + 9 + 11 tokens), test 4 + 5 + ... + 15 tokens,
# valid 8 x 10; WikiText: 59 words and 8 lines per article, 30 / 3 / 4 articles.
GBW_COUNTS = {"train": (297, 2673), "valid": (8, 80), "test": (12, 114)}
WIKI_COUNTS = {"train": (240, 1770), "valid": (24, 177), "test": (32, 236)}
WIKI_BLANK = {"train": 120, "valid": 12, "test": 16}  # 4 blank lines per article
GBW_TEST_SCORED = 114 + 12  # words + one end-of-sentence per sentence
WIKI_TEST_SCORED = 236 + 32  # blank lines too: fairseq-preprocess gives each a </s>
FAIRSEQ_SPECIALS = {"<s>", "<pad>", "</s>", "<unk>"}


def prepare(setting, downloads, out, *extra):
    return lm_prepare.main([setting, "--downloads", str(downloads), "--out", str(out), *extra])


def read(path):
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def check_counts(report, counts, scored_test):
    for split, (lines, words) in counts.items():
        s = report["splits"][split]
        assert (s["lines"], s["words"], s["scored_tokens"]) == (lines, words, lines + words), split
    assert report["splits"]["test"]["scored_tokens"] == scored_test
    assert report["lines"] == {split: c[0] for split, c in counts.items()}


# --------------------------------------------------------------- stage 2
def test_gbw_prepare_counts_and_shard_order(tmp_path):
    downloads = make_downloads("gbw_lm", tmp_path / "dl")
    assert prepare("gbw_lm", downloads, tmp_path / "out", "--min-count", "3") == 0
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    check_counts(report, GBW_COUNTS, GBW_TEST_SCORED)
    shards = gbw_lm_shards()
    # The members are stored out of order; train is the shards in shard order.
    assert read(tmp_path / "out" / "train.txt") == [
        line for i in range(1, 100) for line in shards[("train", i)]]
    assert read(tmp_path / "out" / "test.txt") == shards[("heldout", 0)]
    assert read(tmp_path / "out" / "valid.txt") == shards[("heldout", 1)]
    counts = collections.Counter(w for i in range(1, 100) for line in shards[("train", i)]
                                 for w in line.split())
    vocab = report["vocabulary"]
    assert vocab["train_types"] == len(counts)
    assert vocab["kept_types"] == sum(c >= 3 for c in counts.values())
    # Placed by hand in the fixture: once, twice, three times.
    assert (counts["Zyxwv"], counts["Qrstu"], counts["Mnopq"]) == (1, 2, 3)
    assert not [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_gbw_valid_shard_is_an_option(tmp_path):
    downloads = make_downloads("gbw_lm", tmp_path / "dl")
    assert prepare("gbw_lm", downloads, tmp_path / "out", "--valid-shard", "7") == 0
    assert read(tmp_path / "out" / "valid.txt") == gbw_lm_shards()[("heldout", 7)]
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert report["splits"]["valid"]["lines"] == 2 and report["splits"]["test"]["lines"] == 12


def test_wikitext_prepare_counts_and_text(tmp_path):
    downloads = make_downloads("wikitext103_lm", tmp_path / "dl")
    assert prepare("wikitext103_lm", downloads, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    check_counts(report, WIKI_COUNTS, WIKI_TEST_SCORED)
    assert {s: report["splits"][s]["blank_lines"] for s in WIKI_BLANK} == WIKI_BLANK
    lines = wikitext103_lines()
    for split in ("train", "valid", "test"):
        assert read(tmp_path / "out" / f"{split}.txt") == lines[split], split
    text = (tmp_path / "out" / "train.txt").read_text(encoding="utf-8")
    assert " = = " in text and " @-@ " in text and " @,@ " in text and "<unk>" in text and "café" in text
    counts = collections.Counter(w for line in lines["train"] for w in line.split())
    assert report["vocabulary"]["kept_types"] == len(set(counts) - FAIRSEQ_SPECIALS)


def test_carriage_return_and_bad_utf8_are_repaired_and_counted(tmp_path):
    dl = tmp_path / "dl"
    dl.mkdir()
    body = {"train": b" a b\rc \n \n", "valid": b" d \xff e \n", "test": b" f g \n"}
    with zipfile.ZipFile(dl / "wikitext-103-v1.zip", "w") as z:
        for split, data in body.items():
            z.writestr(f"wikitext-103/wiki.{split}.tokens", data)
    assert prepare("wikitext103_lm", dl, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "prepare.json").read_text())
    train, valid = report["splits"]["train"], report["splits"]["valid"]
    # fairseq-preprocess would have read "a b" and "c" as two lines.
    assert (train["lines"], train["words"], train["carriage_returns"]) == (2, 3, 1)
    assert (valid["lines"], valid["words"], valid["invalid_utf8"]) == (1, 3, 1)
    assert read(tmp_path / "out" / "train.txt") == [" a b c ", " "]


def test_word_split_is_fairseqs():
    from fairseq.tokenizer import tokenize_line

    for line in (" a  b\tc ", "x\u00a0y\u3000z", "p\x1cq\x0br", " ", "\u2028a\x85b"):
        assert line.split() == tokenize_line(line), repr(line)


def test_prepare_bad_input_is_one_line(tmp_path, capsys):
    dl = make_downloads("wikitext103_lm", tmp_path / "dl")
    assert prepare("gbw_lm", dl, tmp_path / "out") == 1  # the GBW tarball is not there
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1-billion-word-language-modeling-benchmark-r13output.tar.gz" in err[0]
    assert "run stage 1" in err[0]

    with zipfile.ZipFile(dl / "wikitext-103-v1.zip", "w") as z:
        z.writestr("wikitext-103/wiki.train.tokens", b" a \n")
    assert prepare("wikitext103_lm", dl, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no member wikitext-103/wiki.valid.tokens" in err[0]
    assert not (tmp_path / "out" / "prepare.json").exists()

    gbw = make_downloads("gbw_lm", tmp_path / "gbw")
    truncate(gbw / "1-billion-word-language-modeling-benchmark-r13output.tar.gz", keep=0.5)
    assert prepare("gbw_lm", gbw, tmp_path / "out2") == 1
    err = capsys.readouterr().err.strip().splitlines()  # progress lines, then the error
    assert [line for line in err if "error" in line] == err[-1:]
    assert "r13output.tar.gz: truncated or corrupt archive" in err[-1]

    with pytest.raises(SystemExit):
        prepare("gbw_lm", gbw, tmp_path / "out3", "--valid-shard", "50")
    assert "--valid-shard must be 1..49 (0 is the test shard), got 50" in capsys.readouterr().err


def test_report_refuses_a_partial_evaluation(tmp_path, capsys):
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "prepare.json").write_text(json.dumps(
        {"splits": {"test": {"lines": 12, "words": 114, "scored_tokens": 126}}}))
    log = tmp_path / "eval.log"
    log.write_text("x | INFO | fairseq_cli.eval_lm | Evaluated 1,120 tokens in 0.1s (9.0 tokens/s)\n"
                   "x | INFO | fairseq_cli.eval_lm | Loss (base 2): 5.0000, Perplexity: 32.00\n")
    args = ["--eval-log", str(log), "--prepared", str(tmp_path / "prepared"),
            "--json-out", str(tmp_path / "r.json"), "--text-out", str(tmp_path / "r.txt")]
    assert eval_lm_report.main(args) == 1
    err = capsys.readouterr().err
    assert "scored 1120 tokens but the test set has 126 (114 words + 12 end-of-sentence)" in err
    assert not (tmp_path / "r.json").exists()


# -------------------------------------------------------- stages 1 to 6
ADAPTIVE = ("--adaptive-input True --adaptive-input-cutoff 20,40 --adaptive-softmax-cutoff 20,40 "
            "--tie-adaptive-weights True")
TINY = {
    "gbw_lm": ["--model", "dynamicconv", "--arch", "dynamicconv_lm_toy",
               "--eval-args", "--tokens-per-sample 64 --max-tokens 512"],
    "wikitext103_lm": ["--arch", "talk_lm_toy",
                       "--eval-args", "--tokens-per-sample 64 --context-window 32 --max-tokens 512"],
}
COMMON = ["--cpu", "--skip-checksums", "--workers", "1", "--max-tokens", "512", "--update-freq", "1",
          "--train-args", f"--max-update 3 --tokens-per-sample 64 {ADAPTIVE}"]
RESULT_LINE = {"gbw_lm": r"^test perplexity = \d+\.\d\d \(paper: 26\.67\)$",
               "wikitext103_lm": r"^test perplexity = \d+\.\d\d \(paper: 23\.3\)$"}
MODEL = {"gbw_lm": "dynamicconv", "wikitext103_lm": "talk"}


def run(setting, *args, timeout=120):
    return subprocess.run(["bash", str(Path(REPO) / "recipes" / setting / "run.sh"), *map(str, args)],
                          capture_output=True, text=True, env=_env(), timeout=timeout)


# Tests of one xdist group run on one worker, so that this module fixture is
# built once, not once per worker that runs one of its tests.
SHARES_END_TO_END = pytest.mark.xdist_group("recipe_lm_end_to_end")


@pytest.fixture(scope="module")
def end_to_end(tmp_path_factory):
    """Both recipes, stages 1-6, started together; {setting: (rc, stdout, stderr, workdir, args)}."""
    started = {}
    for setting in TINY:
        root = tmp_path_factory.mktemp(setting)
        downloads = make_downloads(setting, root / "downloads")
        args = ["--workdir", root / "exp", "--downloads", downloads, *COMMON, *TINY[setting]]
        out, err = open(root / "stdout", "w+"), open(root / "stderr", "w+")
        proc = subprocess.Popen(["bash", str(Path(REPO) / "recipes" / setting / "run.sh"), *map(str, args)],
                                stdout=out, stderr=err, text=True, env=_env())
        started[setting] = (proc, out, err, root / "exp", args)
    results = {}
    for setting, (proc, out, err, workdir, args) in started.items():
        rc = proc.wait(timeout=600)
        out.seek(0), err.seek(0)
        results[setting] = (rc, out.read(), err.read(), workdir, args)
        out.close(), err.close()
    return results


@SHARES_END_TO_END
@pytest.mark.parametrize("setting", sorted(TINY))
def test_stages_1_to_6_on_the_fixture(setting, end_to_end):
    rc, stdout, stderr, workdir, args = end_to_end[setting]
    assert rc == 0, stderr[-4000:]
    last = stdout.strip().splitlines()[-1]
    assert re.match(RESULT_LINE[setting], last), stdout
    counts = GBW_COUNTS if setting == "gbw_lm" else WIKI_COUNTS
    scored = GBW_TEST_SCORED if setting == "gbw_lm" else WIKI_TEST_SCORED
    prepared = json.loads((workdir / "data" / "prepared" / "prepare.json").read_text())
    check_counts(prepared, counts, scored)
    model = MODEL[setting]
    eval_log = (workdir / "logs" / f"stage6.eval-lm.{model}.log").read_text()
    assert re.search(rf"Evaluated {scored:,} tokens", eval_log), eval_log[-2000:]
    result = json.loads((workdir / "results" / f"{model}.json").read_text())
    assert result["tokens_scored"] == scored and result["primary"] == "perplexity"
    assert result["tokens"] == {"words": counts["test"][1], "end_of_sentence": counts["test"][0]}
    assert result["paper"]["score"] == (26.67 if setting == "gbw_lm" else 23.3)
    assert result["metrics"]["perplexity"]["score"] > 1
    assert any(c.startswith("fairseq-train ") for c in result["commands"])
    assert any(c.startswith("fairseq-eval-lm ") for c in result["commands"])
    assert f"tokens scored: {scored}" in stderr and "stage 3 memory:" in stderr
    assert {p.name for p in (workdir / "model" / model).iterdir()} == {"model.pt", "dict.txt"}
    # The dictionary: GBW keeps the train types seen at least 3 times, WikiText every one.
    if setting == "gbw_lm":
        shards = gbw_lm_shards()
        train = [line for i in range(1, 100) for line in shards[("train", i)]]
        min_count = 3
    else:
        train, min_count = wikitext103_lines()["train"], 1
    counts = collections.Counter(w for line in train for w in line.split())
    words = [line.split()[0] for line in read(workdir / "data" / "bin" / "dict.txt")]
    assert sorted(w for w in words if not w.startswith("madeupword")) == sorted(
        w for w, c in counts.items() if c >= min_count and w not in FAIRSEQ_SPECIALS)

    again = run(setting, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines()[-1] == last
    assert "fairseq-train" not in again.stderr and again.stderr.count("skipping stage") == 6


# --------------------------------------------------------------- the papers
# Wu et al. (2019, experimental setup), with the setup of Baevski & Auli (2019),
# sections 4.3-4.5 (GBW: 2048 tokens per GPU on 32 GPUs, Nesterov 0.99,
# clip 0.1, lr 1e-7 -> 1 over 16K updates then cosine, 975K updates, bands
# 60K/100K/rest, a factor of 4 apart, tied; the floor 1e-5 is their first
# cycle's). TaLK (Lioutas & Guo, 2020) on WikiText-103 with the published
# command of the model its architecture copies (fairseq's
# transformer_lm_wiki103: README.adaptive_inputs.md; evaluation: the 2019
# language_model README). fairseq 0.12 names: cosine peak --lr, floor --min-lr.
NAG_COSINE = {"--task": "language_modeling", "--optimizer": "nag", "--clip-norm": "0.1",
              "--lr-scheduler": "cosine", "--lr": "1.0", "--warmup-updates": "16000",
              "--warmup-init-lr": "1e-07", "--criterion": "adaptive_loss", "--fp16": True}
GBW_TRAIN = {**NAG_COSINE, "--momentum": "0.99", "--min-lr": "1e-05", "--max-update": "975000",
             "--lr-period-updates": "959000", "--t-mult": "1", "--max-tokens": "2048", "--update-freq": "1",
             "--sample-break-mode": "eos"}
GBW_ARCH = {"adaptive_input": True, "adaptive_input_cutoff": "60000,160000", "adaptive_input_factor": 4,
            "adaptive_softmax_cutoff": "60000,160000", "adaptive_softmax_factor": 4,
            "tie_adaptive_weights": True, "dropout": 0.1, "attention_dropout": 0.1}
PAPERS = {
    # (setting, model): (launcher args at the paper's GPU count, train flags, architecture values,
    #                    preprocess flags, flags it must not have, eval-lm flags, paper perplexity)
    ("gbw_lm", "dynamicconv"): (
        ["--launcher", "slurm", "--nodes", "4", "--gpus", "8", "--partition", "gpu"],
        {**GBW_TRAIN, "--arch": "dynamicconv_lm_gbw"}, GBW_ARCH,
        {"--only-source": True, "--thresholdsrc": "3"}, (),
        {"--sample-break-mode": "eos", "--gen-subset": "test"}, "26.67"),
    ("gbw_lm", "lightweightconv"): (
        ["--launcher", "slurm", "--nodes", "4", "--gpus", "8", "--partition", "gpu"],
        {**GBW_TRAIN, "--arch": "lightweightconv_lm_gbw"}, GBW_ARCH,
        {"--only-source": True, "--thresholdsrc": "3"}, (),
        {"--sample-break-mode": "eos", "--gen-subset": "test"}, ""),
    ("wikitext103_lm", "talk"): (
        ["--launcher", "torchrun", "--gpus", "8"],
        {**NAG_COSINE, "--arch": "talk_lm_wikitext103", "--min-lr": "0.0001", "--stop-min-lr": "1e-09",
         "--max-update": "286000", "--lr-period-updates": "270000", "--t-mult": "2", "--lr-shrink": "0.75",
         "--max-tokens": "3072", "--update-freq": "3", "--tokens-per-sample": "3072",
         "--sample-break-mode": "none", "--seed": "1"},
        {"adaptive_input": True, "adaptive_input_cutoff": "20000,60000", "adaptive_softmax_cutoff": "20000,60000",
         "tie_adaptive_weights": True, "tie_adaptive_proj": True, "adaptive_softmax_dropout": 0.2,
         "dropout": 0.3, "decoder_layers": 17, "decoder_embed_dim": 1024},
        {"--only-source": True}, ("--thresholdsrc",),
        {"--sample-break-mode": "complete", "--tokens-per-sample": "3072", "--context-window": "2560",
         "--gen-subset": "test"}, "23.3"),
}


def flags(command: str) -> dict:
    """--flag value pairs of a command line; a flag followed by another flag is True."""
    words = shlex.split(command)
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else None
            out[w] = True if nxt is None or nxt.startswith("--") else nxt
    return out


def line_with(lines, word):
    return next(line for line in lines if f"{word} " in line)


@pytest.mark.parametrize("setting,model", sorted(PAPERS), ids=[f"{s}-{m}" for s, m in sorted(PAPERS)])
def test_dry_run_has_the_papers_settings(setting, model, tmp_path):
    from fairseq.models import ARCH_CONFIG_REGISTRY

    import lightconv_plugin  # noqa: F401  (registers the architectures)

    launcher, train_flags, arch_values, prep_flags, absent, eval_flags, score = PAPERS[(setting, model)]
    proc = run(setting, "--workdir", tmp_path / "exp", "--model", model, "--dry-run", *launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "exp").exists(), "a dry run created the work directory"
    lines = proc.stdout.splitlines()
    train = flags(line_with(lines, "fairseq-train"))
    for key, value in train_flags.items():
        assert train.get(key) == value, (key, train.get(key), value)
    arch = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[train["--arch"]](arch)
    for key, value in arch_values.items():
        assert getattr(arch, key) == value, key
    preprocess = flags(line_with(lines, "fairseq-preprocess"))
    for key, value in prep_flags.items():
        assert preprocess.get(key) == value, key
    assert not any(key in preprocess for key in absent)
    evaluate = flags(line_with(lines, "fairseq-eval-lm"))
    for key, value in eval_flags.items():
        assert evaluate.get(key) == value, key
    if setting == "gbw_lm":
        assert "--context-window" not in evaluate  # sentences are independent
    assert "checkpoint_best.pt" in proc.stdout and "average_checkpoints.py" not in proc.stdout
    assert flags(line_with(lines, "eval_lm_report.py"))["--paper"] == score
    assert "tokens per update (paper:" in proc.stderr


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("setting,args,message", [
    ("wikitext103_lm", ["--model", "dynamicconv"], "--model dynamicconv: Wu et al. (2019) have no WikiText-103"),
    ("gbw_lm", ["--model", "talk"], "--model talk: Lioutas & Guo (2020) have no Billion Word setting"),
    ("gbw_lm", ["--valid-shard", "0"], "--valid-shard must be >= 1, got 0"),
    ("gbw_lm", ["--valid-shard", "50"], "--valid-shard must be 1..49 (0 is the test shard), got 50"),
    ("gbw_lm", ["--gen-args", "--beam 5"], "--gen-args '--beam 5': a language model is not decoded"),
    ("wikitext103_lm", ["--eval-arg", "x"], "unknown option --eval-arg"),
])
def test_bad_option_is_one_error_before_any_work(setting, args, message, tmp_path):
    proc = run(setting, "--workdir", tmp_path / "exp", *args, timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert proc.stderr.count("ERROR") == 1
    assert not (tmp_path / "exp").exists()


def test_later_stage_on_an_empty_workdir(tmp_path):
    proc = run("wikitext103_lm", "--workdir", tmp_path / "exp", "--stage", "4", "--cpu", timeout=60)
    assert proc.returncode != 0
    assert "run stage 3 (binarize) first" in proc.stderr and "fairseq-train" not in proc.stderr
