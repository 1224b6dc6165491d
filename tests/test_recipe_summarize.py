"""The summarisation recipe's data side: CNN-DailyMail stage 1 manifest, stage 2
(recipes/common/summarize_prepare.py) on the fixture of tests/recipe_fixtures/
(CNN_DM_LAYOUT gives the per-split kinds the counts below come from), and the
ROUGE scorer (recipes/common/rouge.py) against rouge-score called directly."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes" / "common"))

import rouge  # noqa: E402
import summarize_prepare as sp  # noqa: E402
from recipe_fixtures import (  # noqa: E402
    CNN_DM_LAYOUT, cnn_dailymail_stories, datasets, make_downloads, truncate)
from rouge_score import rouge_scorer  # noqa: E402
from textproc_tok import Tokenizer  # noqa: E402


def read(path):
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def unbpe(lines):
    return [re.sub(r"@@( |$)", "", line) for line in lines]


# --- stage 1 manifest -----------------------------------------------------------

def test_manifest_has_the_five_inputs_with_tfds_checksums():
    names = datasets.archive_names("cnn_dailymail")
    assert names == ("cnn_stories.tgz", "dailymail_stories.tgz", "all_train.txt", "all_val.txt",
                     "all_test.txt")
    sizes = {a.name: a.size for a in datasets.archives("cnn_dailymail")}
    assert sizes["cnn_stories.tgz"] == 158577824 and sizes["dailymail_stories.tgz"] == 375893739
    for a in datasets.archives("cnn_dailymail"):
        assert a.checksum[0] == "sha256" and len(a.sha256) == 64 and not a.manual
        assert "cnn_dailymail" in a.source and a.url.endswith("/" + a.name)


# --- one story --------------------------------------------------------------------

STORY = (
    "(CNN) -- The man left.  He came back\r\n"
    "\n"
    "   \t \n"
    "A photo of the house\n"
    "\n"
    'He said: "It\'s over."\n'
    "It ended (mostly)\n"
    "Wait\u2026\n"
    "\n"
    "@highlight\n"
    "\n"
    "Man leaves home\n"
    "\n"
    "@highlight\n"
    "\n"
    "He comes back!\n"
    "And this line too\n"
)


def test_parse_story_follows_see_et_al():
    article, highlights = sp.parse_story(STORY)
    assert article == [
        "(CNN) -- The man left. He came back .",  # whitespace collapsed, CR stripped
        "A photo of the house .",  # a caption: " ." added
        'He said: "It\'s over."',  # a closing quote ends a sentence
        "It ended (mostly) .",  # ")" does not (PTB made it -rrb-)
        "Wait\u2026",
    ]
    # Every line after the first @highlight is a highlight, not only the next one.
    assert highlights == ["Man leaves home .", "He comes back!", "And this line too ."]
    assert sp.parse_story(STORY, fix_periods=False)[1] == ["Man leaves home", "He comes back!",
                                                           "And this line too"]


def test_parse_story_edge_cases():
    assert sp.parse_story("@highlight\n\nOnly a highlight\n") == ([], ["Only a highlight ."])
    assert sp.parse_story("Only text\n\nMore text.\n") == (["Only text .", "More text."], [])
    assert sp.parse_story("") == ([], [])
    assert sp.fix_missing_period("") == "" and sp.fix_missing_period("@highlight") == "@highlight"


def test_process_story_tokenises_cased_then_lowercases_and_truncates():
    proc = sp.StoryProcessor(max_article_tokens=8)
    record = proc.process("He left. Then Mr. Smith came.\n\n@highlight\n\nSmith came\n\n@highlight\n\nGone!\n")
    # Cased tokenisation splits "left." before "Then"; lowercased first it would not.
    full = "he left . then mr. smith came ."
    assert record == {"article": " ".join(full.split()[:8]), "summary": "smith came . gone !",
                      "raw_summary": "Smith came <q> Gone!", "article_tokens": 8}
    assert sp.StoryProcessor(max_article_tokens=5).process(
        "He left. Then Mr. Smith came.\n")["article"] == "he left . then mr."
    assert sp.StoryProcessor(lowercase=False).process("He left.\n")["article"] == "He left ."
    key, _, line = proc("abc\nA b.\n\n@highlight\n\nc\n").partition("\t")
    assert key == "abc" and json.loads(line)["summary"] == "c ."
    assert sp.drop_reason({"article": "", "summary": ""}) == "empty_article"
    assert sp.drop_reason({"article": "a", "summary": ""}) == "no_highlight"


# --- stage 2 on the fixture ---------------------------------------------------------

EXPECTED = {  # from CNN_DM_LAYOUT, by hand
    "train": {"urls": 16, "stories": 11, "missing": 2, "truncated": 3,
              "dropped": {"empty_article": 2, "no_highlight": 1}},
    "valid": {"urls": 6, "stories": 4, "missing": 1, "truncated": 1,
              "dropped": {"empty_article": 0, "no_highlight": 1}},
    "test": {"urls": 6, "stories": 4, "missing": 1, "truncated": 1,
             "dropped": {"empty_article": 1, "no_highlight": 0}},
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cnndm")
    downloads = make_downloads("cnn_dailymail", root / "dl")
    out = root / "out"
    assert sp.main(["cnn_dailymail", "--downloads", str(downloads), "--out", str(out),
                    "--workers", "2"]) == 0
    return downloads, out


def test_fixture_layout_matches_its_documented_counts():
    stories = cnn_dailymail_stories()
    for split, expected in EXPECTED.items():
        kinds = [kind for _, kind in CNN_DM_LAYOUT[split]]
        assert len(kinds) == expected["urls"]
        assert kinds.count("missing") == expected["missing"]
        assert kinds.count("long") == expected["truncated"]
        assert kinds.count("normal") + kinds.count("long") == expected["stories"]
    assert [s.sha1 for s in stories] == [hashlib.sha1(s.url.encode()).hexdigest() for s in stories]


def test_prepare_counts_per_split(prepared):
    _, out = prepared
    report = json.loads((out / "prepare.json").read_text())
    assert report["splits"] == EXPECTED
    assert report["lines"] == {"train": 11, "valid": 4, "test": 4}
    # CNN: 6 + 3 + 3 listed URLs, 2 missing, plus the unlisted story; DM: 10 + 3 + 3, 2 missing.
    assert report["archives"] == {"cnn_stories.tgz": {"stories": 11, "listed": 10},
                                  "dailymail_stories.tgz": {"stories": 14, "listed": 14}}
    assert report["unlisted_stories"] == 1 and report["urls_in_several_lists"] == 0
    assert report["bpe_merges"] == 30000 and report["lowercase"] is True
    assert report["source_lang"] == "article" and report["target_lang"] == "summary"
    for split, n in report["lines"].items():
        for side in ("article", "summary"):
            assert len(read(out / f"{split}.{side}")) == n
    assert read(out / "bpecodes")[0].startswith("#version")
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left"


def test_prepare_text_order_and_truncation(prepared):
    _, out = prepared
    proc = sp.StoryProcessor()
    tok = Tokenizer("en")
    for split in ("train", "valid", "test"):
        kept = [s for s in cnn_dailymail_stories() if s.split == split and s.kind in ("normal", "long")]
        articles = unbpe(read(out / f"{split}.article"))
        summaries = unbpe(read(out / f"{split}.summary"))
        for story, article, summary in zip(kept, articles, summaries, strict=True):
            body, highlights = sp.parse_story(story.text)
            full = " ".join(tok(line) for line in body).lower().split()
            assert (len(full) > 400) == (story.kind == "long")
            assert article.split() == full[:400]  # list order, cut at 400 tokens
            assert summary == proc.process(story.text)["summary"]
            assert summary == summary.lower() and summary.endswith((" .", " !"))
        if split == "test":
            assert read(out / "test.raw.summary") == [
                " <q> ".join(sp.parse_story(s.text, fix_periods=False)[1]) for s in kept]


def test_prepare_errors_name_the_bad_input(tmp_path, capsys):
    downloads = make_downloads("cnn_dailymail", tmp_path / "dl")
    args = ["cnn_dailymail", "--downloads", str(downloads), "--out", str(tmp_path / "out"), "--workers", "1"]
    (downloads / "all_val.txt").unlink()
    assert sp.main(args) == 1
    err = capsys.readouterr().err
    assert "missing all_val.txt" in err and "url_lists/all_val.txt" in err
    make_downloads("cnn_dailymail", downloads)
    truncate(downloads / "dailymail_stories.tgz", 0.5)
    assert sp.main(args) == 1
    assert "dailymail_stories.tgz: truncated or corrupt archive" in capsys.readouterr().err
    assert not (tmp_path / "out" / "prepare.json").exists()


# --- ROUGE --------------------------------------------------------------------------

SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)


def test_rouge_identical_disjoint_and_partial():
    same = rouge.score_pair("the cat sat on the mat .", "the cat sat on the mat")
    assert all(f == pytest.approx(1.0) for _, _, f in same.values())
    none = rouge.score_pair("dogs bark loudly .", "the cat sat on the mat")
    assert all(f == 0 for _, _, f in none.values())
    # ref: the cat sat on the mat / hyp: the cat lay on a mat (6 tokens each)
    # unigrams in common: the, cat, on, mat -> 4/6; bigrams: "the cat" -> 1/5;
    # LCS: the cat on mat -> 4/6; one sentence each, so Lsum = L.
    part = rouge.score_pair("the cat lay on a mat .", "the cat sat on the mat")
    assert part["rouge1"] == pytest.approx((4 / 6, 4 / 6, 4 / 6))
    assert part["rouge2"] == pytest.approx((1 / 5, 1 / 5, 1 / 5))
    assert part["rougeL"] == pytest.approx((4 / 6, 4 / 6, 4 / 6))
    assert part["rougeLsum"] == pytest.approx(part["rougeL"])
    direct = SCORER.score("the cat sat on the mat", "the cat lay on a mat .")
    assert part["rouge2"] == pytest.approx(tuple(direct["rouge2"]))


def test_rouge_lsum_differs_from_l_on_reordered_sentences():
    ref = "police found the car <q> witnesses heard loud shouting"
    hyp = "witnesses heard loud shouting . police found the car ."
    scores = rouge.score_pair(hyp, ref)
    # Whole-text LCS: one sentence's 4 tokens of 8 -> 0.5; summary level: each
    # reference sentence is matched by a hypothesis sentence in full -> 1.0.
    assert scores["rougeL"][2] == pytest.approx(0.5)
    assert scores["rougeLsum"][2] == pytest.approx(1.0)
    assert scores["rouge1"][2] == pytest.approx(1.0)
    direct = SCORER.score("police found the car\nwitnesses heard loud shouting",
                          "witnesses heard loud shouting .\npolice found the car .")
    assert scores["rougeLsum"] == pytest.approx(tuple(direct["rougeLsum"]))
    assert scores["rougeL"] == pytest.approx(tuple(direct["rougeL"]))


def test_split_sentences():
    split = rouge.split_sentences
    assert split("a b . c d ! e f ? g") == ["a b .", "c d !", "e f ?", "g"]
    assert split('he said " go . " then left .') == ['he said " go . "', "then left ."]
    assert split("mr. smith of the u.s. left. j. doe stayed.") == [
        "mr. smith of the u.s. left.", "j. doe stayed."]
    assert split("one <q> two . three") == ["one", "two . three"]
    assert split("") == []


def test_corpus_scores_and_bootstrap():
    low, high = rouge.bootstrap_ci([0.3] * 20, resamples=50, seed=3)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)
    values = [0.1, 0.9, 0.4, 0.6, 0.2, 0.8]
    ci = rouge.bootstrap_ci(values, resamples=200, seed=7)
    assert ci == rouge.bootstrap_ci(values, resamples=200, seed=7)  # fixed seed
    assert ci[0] < sum(values) / len(values) < ci[1]
    per_doc = rouge.score_documents(["the cat sat on the mat .", "dogs bark ."],
                                    ["the cat sat on the mat", "the cat sat on the mat"])
    corpus = rouge.corpus_scores(per_doc, resamples=100)
    assert corpus["rouge1"]["f1"] == pytest.approx(50.0)
    with pytest.raises(rouge.RougeError):
        rouge.score_documents(["a"], [])


def test_rouge_cli(tmp_path, capsys):
    ref = tmp_path / "test.raw.summary"
    ref.write_text("police found the car <q> witnesses heard loud shouting\nthe cat sat on the mat\n")
    gen = tmp_path / "generate-test.txt"
    gen.write_text("S-1\tsrc\nH-1\t-0.1\tthe cat lay on a mat .\nD-1\t-0.1\tthe cat lay on a mat .\n"
                   "D-0\t-0.2\twitnesses heard loud shouting . police found the car .\n")
    out = tmp_path / "rouge.json"
    assert rouge.main(["--ref", str(ref), "--generate", str(gen), "--json-out", str(out),
                       "--resamples", "100"]) == 0
    last = capsys.readouterr().out.strip().split("\n")[-1]
    # Document 0 (the reordered pair): 6 of its 7 bigrams in common (not car-witnesses).
    r1, r2 = (1 + 4 / 6) / 2 * 100, (6 / 7 + 1 / 5) / 2 * 100
    lsum = (1 + 4 / 6) / 2 * 100
    assert last == f"ROUGE-1/2/Lsum = {r1:.2f}/{r2:.2f}/{lsum:.2f}"
    result = json.loads(out.read_text())
    assert result["documents"] == 2 and result["papers_rouge_l"] == "rougeLsum"
    assert result["scores"]["rougeL"]["f1"] == pytest.approx((0.5 + 4 / 6) / 2 * 100)
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("only one line\n")
    assert rouge.main(["--ref", str(ref), "--hyp", str(hyp)]) == 1
    assert "1 hypotheses but" in capsys.readouterr().err


def test_rouge_cli_paper_and_text_out(tmp_path, capsys):
    ref = tmp_path / "ref.txt"
    ref.write_text("the cat sat on the mat\n")
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("the cat sat on the mat\n")
    out, text = tmp_path / "r.json", tmp_path / "r.txt"
    assert rouge.main(["--ref", str(ref), "--hyp", str(hyp), "--json-out", str(out), "--text-out", str(text),
                       "--resamples", "10", "--paper", "39.84/16.25/36.73", "--paper-source", "Wu et al."]) == 0
    last = capsys.readouterr().out.strip().split("\n")[-1]
    assert last == "ROUGE-1/2/Lsum = 100.00/100.00/100.00 (paper ROUGE-1/2/L: 39.84/16.25/36.73)"
    assert text.read_text().strip().split("\n")[-1] == last
    paper = json.loads(out.read_text())["paper"]
    assert paper == {"rouge1": 39.84, "rouge2": 16.25, "rougeL": 36.73, "source": "Wu et al.",
                     "compare_rougeL_with": "rougeLsum"}
    for bad in ("39.84/16.25", "a/b/c", "39/16/136"):
        with pytest.raises(SystemExit):
            rouge.main(["--ref", str(ref), "--hyp", str(hyp), "--paper", bad])
        assert f"got {bad!r}" in capsys.readouterr().err
