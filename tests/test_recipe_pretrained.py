"""`run.sh --pretrained NAME`: a released model of Wu et al. (2019), downloaded,
converted and scored by a translation recipe.

The release is made here, in its upstream layout and under its upstream file
names (tests/recipe_fixtures/released.py): fairseq's own
``lightconv`` (DynamicConv, no GLU, IWSLT-like) trained for a few updates on
the IWSLT fixture as the recipe's stages 1-3 prepare and binarise it, and the
binarised test split with its dictionaries.

* The recipe runs end to end and prints the paper's metric last; the results
  file is written; stages 3 and 4 are skipped with a reason.
* Its hypotheses are those of fairseq-generate on fairseq's own checkpoint
  (not converted), same test set, same decoding flags (the paper's for IWSLT).
* The converted model folder loads through the hub interface and translates.
* A name the setting did not release is one error line listing the valid ones.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

import cli_helpers as fc
from recipe_fixtures import make_downloads, make_released_model
from test_convert import SMALL
from test_recipe_toy import _env

SETTING, NAME = "iwslt14_de_en", "dynamicconv.no_glu.iwslt14.de-en"
RUN_SH = fc.REPO / "recipes" / SETTING / "run.sh"
# The paper's IWSLT decoding, as the recipe passes it (recipes/iwslt14_de_en/run.sh).
DECODING = ("--gen-subset", "test", "--batch-size", "128", "--remove-bpe", "--beam", "4", "--lenpen", "1",
            "--cpu", "--num-workers", "0")
FAIRSEQ_MODEL = ("--task", "translation", "--source-lang", "de", "--target-lang", "en",
                 "--arch", "lightconv_iwslt_de_en", *SMALL,
                 "--encoder-conv-type", "dynamic", "--decoder-conv-type", "dynamic",
                 "--encoder-glu", "False", "--decoder-glu", "False",
                 "--optimizer", "adam", "--lr", "0.005", "--criterion", "label_smoothed_cross_entropy",
                 "--label-smoothing", "0.1", "--max-tokens", "1000", "--max-update", "60")


def recipe(*args, timeout=300):
    return subprocess.Popen(["bash", str(RUN_SH), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# Tests of one xdist group run on one worker, so that this module fixture is
# built once, not once per worker that runs one of its tests.
SHARES_RUN = pytest.mark.xdist_group("recipe_pretrained_run")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    data = root / "data"
    prepared = finish(recipe("--stop-stage", 3, "--skip-checksums", "--cpu", "--workers", 2,
                             "--downloads", make_downloads(SETTING, root / "corpus"), "--workdir", data))
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    bin_dir = data / "data" / "bin"
    fc.train(bin_dir, root / "fairseq", *FAIRSEQ_MODEL)
    checkpoint = root / "fairseq" / "checkpoint_last.pt"
    downloads = root / "downloads"
    make_released_model(NAME, checkpoint, bin_dir, data / "data" / "prepared" / "bpecodes", downloads,
                        "de", "en")

    workdir = root / "exp"
    proc = recipe("--pretrained", NAME, "--cpu", "--skip-checksums", "--downloads", downloads,
                  "--workdir", workdir)
    try:  # fairseq's own model decodes meanwhile, on the other core
        theirs = fc.run("fairseq-generate", bin_dir, "--path", checkpoint, "--user-dir", fc.PLUGIN_DIR,
                        *DECODING)
    finally:
        done = finish(proc)
    return {"proc": done, "workdir": workdir, "theirs": theirs}


@SHARES_RUN
def test_runs_end_to_end_and_prints_the_metric_last(run):
    proc, workdir = run["proc"], run["workdir"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.fullmatch(r"tokenised BLEU = \d+\.\d\d \(paper: 35\.2\)", proc.stdout.strip().splitlines()[-1]), \
        proc.stdout
    assert "skipping stage 3 (binarize)" in proc.stderr and "skipping stage 4 (train)" in proc.stderr
    assert "fairseq-train" not in proc.stderr and "fairseq-preprocess" not in proc.stderr
    result = json.loads((workdir / "results" / f"{NAME}.json").read_text())
    assert result["primary"] == "tok_bleu" and result["sentences"] == 130
    assert result["paper"]["score"] == 35.2
    assert any("convert_fairseq_checkpoint.py" in c for c in result["commands"])
    model = workdir / "model" / NAME
    assert {p.name for p in model.iterdir()} == {"model.pt", "dict.de.txt", "dict.en.txt", "bpecodes"}


@SHARES_RUN
def test_hypotheses_are_fairseqs(run):
    ours = (run["workdir"] / "decode" / NAME / "generate-test.txt").read_text()
    h_ours, h_theirs = fc.hypotheses(ours), fc.hypotheses(run["theirs"])
    assert sorted(h_theirs) == list(range(130)), "fairseq-generate skipped sentences"
    assert len({h for _, h in h_theirs.values()}) > 1, "degenerate model: all hypotheses equal"
    assert {i: h for i, (_, h) in h_ours.items()} == {i: h for i, (_, h) in h_theirs.items()}
    for i, (score, _) in h_theirs.items():
        assert abs(h_ours[i][0] - score) <= 1e-4, (i, h_ours[i][0], score)


@SHARES_RUN
def test_model_folder_loads_through_the_hub_interface(run):
    from lightconv_plugin.models.seq2seq import ConvSeq2SeqModel

    folder = run["workdir"] / "model" / NAME
    hub = ConvSeq2SeqModel.from_pretrained(str(folder), checkpoint_file="model.pt", tokenizer="moses",
                                           bpe="subword_nmt", bpe_codes=str(folder / "bpecodes"),
                                           source_lang="de", target_lang="en")
    out = hub.translate("der mann sieht ein haus .")
    assert isinstance(out, str) and out


def test_a_name_of_another_setting_is_one_error_line(tmp_path):
    proc = finish(recipe("--pretrained", "dynamicconv.glu.wmt14.en-fr", "--workdir", tmp_path / "exp"),
                  timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "lightconv.no_glu.iwslt14.de-en, dynamicconv.no_glu.iwslt14.de-en" in lines[0]
    assert "wmt14_en_fr" in lines[0]
    assert not (tmp_path / "exp").exists()
