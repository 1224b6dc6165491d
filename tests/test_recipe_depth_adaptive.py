"""--depth-adaptive in the translation recipes: the IWSLT14 De-En setting of
Elbayad et al. (2020) in a dry run, stage 6's threshold sweep end to end on
the fixture, its report, and bad input."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from recipe_fixtures import make_downloads
from test_recipes_translation import INVSQRT, TINY, flags, last_line, run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes" / "common"))
import depth_adaptive_report  # noqa: E402


def test_iwslt_dry_run_has_the_papers_depth_adaptive_setting(tmp_path):
    proc = run("iwslt14_de_en", "--workdir", tmp_path / "exp", "--model", "attention", "--depth-adaptive",
               "token-geometric", "--dry-run", "--stage", "4", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    train = flags(next(x for x in lines if x.startswith("fairseq-train ")))
    expected = {**INVSQRT, "--criterion": "depth_adaptive_cross_entropy", "--arch": "attention_iwslt_de_en",
                "--max-tokens": "4096", "--max-update": "50000", "--share-decoder-input-output-embed": True,
                "--exit-classifiers": "shared", "--exit-mode": "token-geometric", "--da-training": "aligned",
                "--halting-oracle": "token-correctness", "--oracle-sigma": "1", "--label-smoothing": "0.1"}
    for key, value in expected.items():
        assert train.get(key) == value, (key, train.get(key), value)
    generates = [flags(x) for x in lines if x.startswith("fairseq-generate ")]
    assert [g["--model-overrides"] for g in generates] == [
        f"{{'exit_threshold': '{t}'}}" for t in ("1.0", "0.9", "0.8", "0.7", "0.6", "0.5", "0.4", "0.3")]
    assert all(g["--beam"] == "5" for g in generates)
    report = flags(next(x for x in lines if "depth_adaptive_report.py" in x))
    assert report["--paper"] == "34.73@1.42"
    assert "/checkpoints/attention-da-token-geometric" in train["--save-dir"]


def test_threshold_sweep_end_to_end_on_the_fixture(tmp_path):
    downloads = make_downloads("iwslt14_de_en", tmp_path / "downloads")
    workdir = tmp_path / "exp"
    proc = run("iwslt14_de_en", "--workdir", workdir, "--downloads", downloads, *TINY,
               "--depth-adaptive", "confidence", "--exit-thresholds", "1.0 0.05")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.match(r"^tokenised BLEU = \d+\.\d\d at average exit [\d.]+ of 2 \(threshold (1|0\.05); "
                    r"full depth \d+\.\d\d\)$", last_line(proc)), proc.stdout
    result = json.loads((workdir / "results" / "dynamicconv-da-confidence.json").read_text())
    assert [r["threshold"] for r in result["runs"]] == [1.0, 0.05]
    assert result["full_depth"]["ae"] == 2.0  # dynamicconv_toy: 2 decoder blocks
    assert result["runs"][1]["ae"] < 2.0  # an untrained model is confident beyond 5% somewhere
    assert any("--model-overrides" in c for c in result["commands"])


def _write_run(tmp_path, t, bleu, ae, saved):
    score = tmp_path / f"s{t}.json"
    score.write_text(json.dumps({"primary": "tok_bleu", "metrics": {"tok_bleu": {"score": bleu}}}))
    log = tmp_path / f"g{t}.log"
    log.write_text(f"x\ndepth-adaptive decoding: 9 tokens, average exit (AE) {ae} of 6 blocks; tokens per exit "
                   f"block: 1; decoder FLOPs saved {saved}% per token (3.0% as computed here, whole "
                   f"batches per block; estimated from the layer shapes, full depth 2.00 MFLOPs per token)\n")
    return f"{t}={score}={log}"


def test_report_picks_the_lowest_exit_within_one_bleu(tmp_path, capsys):
    runs = [_write_run(tmp_path, 1.0, 30.0, 6.0, 0.0), _write_run(tmp_path, 0.8, 29.5, 3.1, 40.0),
            _write_run(tmp_path, 0.5, 29.2, 2.2, 55.5), _write_run(tmp_path, 0.2, 25.0, 1.1, 70.0)]
    out, text = tmp_path / "r.json", tmp_path / "r.txt"
    depth_adaptive_report.main([*runs, "--paper", "34.73@1.42", "--json-out", str(out), "--text-out", str(text)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("tokenised BLEU = 29.20 at average exit 2.20 of 6 (threshold 0.5; full depth 30.00) "
                    "(paper: 34.73 at AE 1.42)")
    assert json.loads(out.read_text())["headline"]["threshold"] == 0.5
    with pytest.raises(SystemExit):
        depth_adaptive_report.main([runs[1], "--json-out", str(out), "--text-out", str(text)])


@pytest.mark.parametrize("args,message", [
    (["--depth-adaptive", "fast"], "--depth-adaptive must be one of"),
    (["--depth-adaptive", "confidence", "--exit-thresholds", "0.9 0.5"], "include 1.0"),
    (["--depth-adaptive", "confidence", "--exit-thresholds", "1.0 x"], "expected numbers >= 0, got 'x'"),
])
def test_bad_depth_adaptive_options(tmp_path, args, message):
    proc = run("iwslt14_de_en", "--workdir", tmp_path / "exp", "--dry-run", *args, timeout=60)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
