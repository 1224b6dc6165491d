"""The translation recipes (recipes/<setting>/run.sh) end to end, and their settings.

* Every setting runs stages 1-6 on its fixture archives (tests/recipe_fixtures/,
  the upstream layouts) on CPU with a tiny model, and prints its metric last;
  the model folder and the results file are complete; a re-run skips every stage.
* Each setting's dry run (every model) is compared with the papers'
  hyper-parameters, written out below from the papers and the authors'
  published commands, not read from the recipes.
* Bad input: a missing archive without network, a corrupted archive (checksum),
  a truncated one, TaLK on Zh-En, an unknown option, a later stage on an empty
  work directory: one clear error each, non-zero exit, nothing earlier deleted.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from fairseq.models import ARCH_CONFIG_REGISTRY

import lightconv_plugin  # noqa: F401  (registers the architectures)
from recipe_fixtures import corrupt, make_downloads, truncate, write_checksum_file
from test_recipe_toy import REPO, _env

SETTINGS = ["iwslt14_de_en", "wmt16_en_de", "wmt14_en_fr", "wmt17_zh_en"]
METRIC_LINE = re.compile(r"^(tokenised BLEU|compound-split BLEU|detokenised sacreBLEU) = \d+\.\d\d \(paper: [\d.]+\)$")
# A tiny run: the toy architecture; enough epochs for IWSLT's 10-epoch average.
TINY = ["--cpu", "--skip-checksums", "--model", "dynamicconv", "--arch", "dynamicconv_toy", "--workers", "2",
        "--max-tokens", "2048", "--train-args", "--max-epoch 10 --max-update 40 --encoder-embed-dim 32 "
        "--encoder-ffn-embed-dim 64 --decoder-embed-dim 32 --decoder-ffn-embed-dim 64",
        # An untrained model writes to the length limit: keep decoding short.
        "--gen-args", "--max-len-a 0 --max-len-b 30"]


def run(setting, *args, timeout=600):
    return subprocess.run(["bash", str(Path(REPO) / "recipes" / setting / "run.sh"), *map(str, args)],
                          capture_output=True, text=True, env=_env(), timeout=timeout)


def last_line(proc):
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.mark.parametrize("setting", SETTINGS)
def test_stages_1_to_6_on_the_fixture(setting, tmp_path):
    downloads = make_downloads(setting, tmp_path / "downloads")
    workdir = tmp_path / "exp"
    proc = run(setting, "--workdir", workdir, "--downloads", downloads, *TINY)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert METRIC_LINE.match(last_line(proc)), proc.stdout
    model = workdir / "model" / "dynamicconv"
    assert {p.name for p in model.iterdir()} >= {"model.pt", "bpecodes"}
    assert len(list(model.glob("dict.*.txt"))) == 2
    result = json.loads((workdir / "results" / "dynamicconv.json").read_text())
    assert result["paper"]["score"] is not None and result["primary"] in result["metrics"]
    assert any(c.startswith("fairseq-train ") for c in result["commands"])
    if "sacrebleu" in result["metrics"]:
        assert result["metrics"]["sacrebleu"]["signature"].startswith("nrefs:1")

    if setting == "iwslt14_de_en":  # the model folder translates raw text, as the README shows
        src, tgt = "de", "en"
        out = subprocess.run(
            ["fairseq-interactive", str(model), "--user-dir", str(Path(REPO) / "lightconv_plugin"),
             "--path", str(model / "model.pt"), "--source-lang", src, "--target-lang", tgt, "--cpu",
             "--tokenizer", "moses", "--bpe", "subword_nmt", "--bpe-codes", str(model / "bpecodes")],
            input="das ist ein test .\n", capture_output=True, text=True, env=_env(), timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        assert re.search(r"^D-0\t-?[\d.]+\t\S", out.stdout, re.M), out.stdout[-2000:]

    again = run(setting, "--workdir", workdir, "--downloads", downloads, *TINY, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert last_line(again) == last_line(proc)
    assert "fairseq-train" not in again.stderr and again.stderr.count("skipping stage") == 6


# --------------------------------------------------------------- the papers
# Wu et al. (2019) and the authors' commands (fairseq examples/
# pay_less_attention_paper), and Lioutas & Guo (2020) with theirs, in fairseq
# 0.12's flag names: the 2019 cosine --max-lr / --lr / --min-lr are now
# --lr / --min-lr / --stop-min-lr.
INVSQRT = {"--optimizer": "adam", "--adam-betas": "(0.9, 0.98)", "--lr": "0.0005", "--lr-scheduler": "inverse_sqrt",
           "--warmup-updates": "4000", "--warmup-init-lr": "1e-07", "--stop-min-lr": "1e-09", "--weight-decay": "0.0001",
           "--clip-norm": "0", "--criterion": "label_smoothed_cross_entropy", "--label-smoothing": "0.1"}
COSINE = {"--optimizer": "adam", "--adam-betas": "(0.9, 0.98)", "--lr": "0.001", "--min-lr": "1e-07",
          "--stop-min-lr": "1e-09", "--lr-scheduler": "cosine", "--warmup-updates": "10000", "--warmup-init-lr": "1e-07",
          "--lr-shrink": "1", "--t-mult": "1", "--weight-decay": "0.0", "--clip-norm": "0",
          "--criterion": "label_smoothed_cross_entropy", "--label-smoothing": "0.1", "--fp16": True,
          "--share-all-embeddings": True}
PAPERS = {
    # (setting, model): (train flags at the paper's GPU count, dropout/attention/weight, GLU,
    #                    generate flags, checkpoint used, paper score)
    ("iwslt14_de_en", "lightweightconv"): ({**INVSQRT, "--max-tokens": "4000", "--update-freq": "1", "--max-update": "50000"},
                                           (0.3, 0.1, 0.1), False, {"--beam": "4", "--lenpen": "1"}, "avg10", 34.8),
    ("iwslt14_de_en", "dynamicconv"): ({**INVSQRT, "--max-tokens": "4000", "--update-freq": "1", "--max-update": "50000"},
                                       (0.3, 0.1, 0.1), False, {"--beam": "4", "--lenpen": "1"}, "avg10", 35.2),
    ("iwslt14_de_en", "talk"): ({**INVSQRT, "--max-tokens": "4000", "--update-freq": "1", "--max-update": "85000",
                                 "--max-epoch": "52", "--fp16": True},
                                (0.3, 0.1, 0.1), False, {"--beam": "5", "--lenpen": "1.6"}, "avg10", 35.5),
    ("wmt16_en_de", "lightweightconv"): ({**COSINE, "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                         "--lr-period-updates": "20000"},
                                        (0.3, 0.1, 0.1), True, {"--beam": "5", "--lenpen": "0.5"}, "best", 28.9),
    ("wmt16_en_de", "dynamicconv"): ({**COSINE, "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                     "--lr-period-updates": "20000"},
                                    (0.3, 0.1, 0.1), True, {"--beam": "5", "--lenpen": "0.5"}, "best", 29.7),
    ("wmt16_en_de", "talk"): ({**COSINE, "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30243",
                              "--lr-period-updates": "20000"},
                             (0.3, 0.1, 0.1), True, {"--beam": "4", "--lenpen": "0.35"}, "avg10", 29.6),
    ("wmt14_en_fr", "lightweightconv"): ({**COSINE, "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                         "--lr-period-updates": "70000"},
                                        (0.1, 0.1, 0.1), True, {"--beam": "5", "--lenpen": "0.9"}, "best", 43.1),
    ("wmt14_en_fr", "dynamicconv"): ({**COSINE, "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                     "--lr-period-updates": "70000"},
                                    (0.1, 0.1, 0.1), True, {"--beam": "5", "--lenpen": "0.9"}, "best", 43.2),
    ("wmt14_en_fr", "talk"): ({**COSINE, "--max-tokens": "1800", "--update-freq": "32", "--max-update": "80000",
                              "--lr-period-updates": "70000"},
                             (0.1, 0.1, 0.1), True, {"--beam": "6", "--lenpen": "0.65"}, "avg10", 43.2),
    # No published Zh-En command: Wu et al. train it as En-De big, dropout 0.2.
    ("wmt17_zh_en", "lightweightconv"): ({**{k: v for k, v in COSINE.items() if k != "--share-all-embeddings"},
                                         "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                         "--lr-period-updates": "20000"},
                                        (0.2, 0.2, 0.2), True, {"--beam": "5"}, "best", 24.3),
    ("wmt17_zh_en", "dynamicconv"): ({**{k: v for k, v in COSINE.items() if k != "--share-all-embeddings"},
                                     "--max-tokens": "3584", "--update-freq": "16", "--max-update": "30000",
                                     "--lr-period-updates": "20000"},
                                    (0.2, 0.2, 0.2), True, {"--beam": "5"}, "best", 24.4),
}
PAPER_GPUS = {"iwslt14_de_en": 1, "wmt16_en_de": 8, "wmt14_en_fr": 8, "wmt17_zh_en": 8}


def flags(command: str) -> dict:
    """--flag value pairs of a command line; a flag followed by another flag is True."""
    words = shlex.split(command)
    out = {}
    for i, w in enumerate(words):
        if w.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else None
            out[w] = True if nxt is None or nxt.startswith("--") else nxt
    return out


@pytest.mark.parametrize("setting,model", sorted(PAPERS), ids=[f"{s}-{m}" for s, m in sorted(PAPERS)])
def test_dry_run_has_the_papers_settings(setting, model, tmp_path):
    train_flags, dropouts, glu, gen_flags, checkpoint, score = PAPERS[(setting, model)]
    proc = run(setting, "--workdir", tmp_path / "exp", "--model", model, "--dry-run", "--stage", "4",
               "--launcher", "torchrun", "--gpus", PAPER_GPUS[setting], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "exp").exists(), "a dry run created the work directory"
    lines = proc.stdout.splitlines()
    train = flags(next(line for line in lines if line.startswith("torchrun ")))
    for key, value in train_flags.items():
        assert train.get(key) == value, (key, train.get(key), value)
    if train_flags.get("--fp16") is None:
        assert "--fp16" not in train
    arch = argparse.Namespace()
    ARCH_CONFIG_REGISTRY[train["--arch"]](arch)
    assert (arch.dropout, arch.attention_dropout, arch.weight_dropout) == dropouts
    assert arch.encoder_glu == arch.decoder_glu == glu
    generate = flags(next(line for line in lines if line.startswith("fairseq-generate ")))
    for key, value in gen_flags.items():
        assert generate.get(key) == value, (key, generate.get(key), value)
    assert "--remove-bpe" in generate
    average = "average_checkpoints.py" in proc.stdout
    assert average == (checkpoint == "avg10")
    if average:
        assert "--num-epoch-checkpoints 10" in proc.stdout
    assert f"--paper {score}" in proc.stdout


def test_precision_option_forms_and_slurm_defaults_in_the_dry_run(tmp_path, monkeypatch):
    """--precision picks fairseq's flag (the --key=value form works like --key value), and the
    sbatch script takes its partition, account, time and constraint from the SBATCH_* variables
    unless given."""
    base = ("wmt16_en_de", "--workdir", tmp_path, "--dry-run", "--stage", "4", "--stop-stage", "4")
    for given, flag in ((["--precision=bf16"], "--bf16"), (["--precision", "fp16"], "--fp16"),
                        (["--precision=fp32"], None)):
        proc = run(*base, "--launcher", "torchrun", "--gpus", "2", *given)
        assert proc.returncode == 0, proc.stderr[-2000:]
        train = flags(next(line for line in proc.stdout.splitlines() if line.startswith("torchrun ")))
        assert {f for f in ("--bf16", "--fp16") if f in train} == ({flag} if flag else set()), (given, train)
    for var, value in (("SBATCH_PARTITION", "gpu"), ("SBATCH_ACCOUNT", "proj1"), ("SBATCH_TIMELIMIT", "2:00:00"),
                       ("SBATCH_CONSTRAINT", "a100")):
        monkeypatch.setenv(var, value)
    proc = run(*base, "--launcher", "slurm", "--gpus", "8", "--account=proj2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=proj2", "#SBATCH --time=2:00:00",
                 "#SBATCH --constraint=a100"):
        assert line in proc.stdout.splitlines(), line


def test_effective_batch_follows_the_gpu_count(tmp_path):
    proc = run("wmt16_en_de", "--workdir", tmp_path, "--dry-run", "--stage", "4", "--stop-stage", "4",
               "--launcher", "slurm", "--nodes", "2", "--gpus", "4", "--partition", "gpu", "--time", "1-00:00:00")
    assert proc.returncode == 0, proc.stderr
    assert "8 process(es) x 3584 tokens x update-freq 16 = 458752 tokens per update" in proc.stderr
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=1-00:00:00", "#SBATCH --requeue"):
        assert line in proc.stdout
    assert "--distributed-port" in proc.stdout
    # srun does not inherit --cpus-per-task from sbatch (SLURM >= 22.05): the script passes it on.
    script = proc.stdout
    assert "#SBATCH --cpus-per-task=10" in script
    assert 0 <= script.index("export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK") < script.index("srun ")
    one = run("wmt16_en_de", "--workdir", tmp_path, "--dry-run", "--stage", "4", "--stop-stage", "4",
              "--gpus", "1")
    assert "1 process(es) x 3584 tokens x update-freq 128 = 458752" in one.stderr


# --------------------------------------------------------------- bad input
def test_missing_archive_without_network(tmp_path):
    proc = run("iwslt14_de_en", "--workdir", tmp_path / "exp", "--stop-stage", "1", timeout=180)
    assert proc.returncode != 0
    assert "https://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz" in proc.stderr
    assert "stage 1 (download) failed" in proc.stderr


def test_corrupted_archive_fails_its_checksum(tmp_path):
    downloads = make_downloads("iwslt14_de_en", tmp_path / "dl")
    sums = write_checksum_file(downloads, tmp_path / "SHA256SUMS")
    corrupt(downloads / "de-en.tgz")
    proc = run("iwslt14_de_en", "--workdir", tmp_path / "exp", "--downloads", downloads, "--checksums", sums,
               "--stop-stage", "2")
    assert proc.returncode != 0
    assert "de-en.tgz" in proc.stderr and "checksum" in proc.stderr
    assert (downloads / "de-en.tgz").exists()  # the user's file is left alone


def test_truncated_archive_fails_in_prepare_and_keeps_stage_1(tmp_path):
    downloads = make_downloads("iwslt14_de_en", tmp_path / "dl")
    truncate(downloads / "de-en.tgz")
    workdir = tmp_path / "exp"
    proc = run("iwslt14_de_en", "--workdir", workdir, "--downloads", downloads, "--skip-checksums",
               "--stop-stage", "2")
    assert proc.returncode != 0
    assert re.search(r"de-en\.tgz: truncated or corrupt archive", proc.stderr), proc.stderr[-2000:]
    assert (workdir / ".done.stage1.download").exists()
    assert not (workdir / ".done.stage2.prepare").exists()


def test_talk_on_zh_en_names_the_settings_that_have_it(tmp_path):
    proc = run("wmt17_zh_en", "--workdir", tmp_path, "--model", "talk", "--dry-run")
    assert proc.returncode != 0
    assert "iwslt14_de_en, wmt16_en_de, wmt14_en_fr" in proc.stderr


def test_unknown_option_and_later_stage_on_empty_workdir(tmp_path):
    proc = run("wmt14_en_fr", "--workdir", tmp_path, "--no-such-thing", "1")
    assert proc.returncode != 0 and "unknown option --no-such-thing" in proc.stderr
    proc = run("wmt14_en_fr", "--workdir", tmp_path / "exp", "--stage", "4", "--cpu")
    assert proc.returncode != 0
    assert "run stage 3 (binarize) first" in proc.stderr
    assert "fairseq-train" not in proc.stderr
