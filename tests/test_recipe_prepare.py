"""Stage 2 of the translation recipes (recipes/common/prepare.py) on the small
fixture archives of tests/recipe_fixtures/, whose text.py gives the line
layout the expected counts below are computed from: every parallel text has 6
bad lines (two with an empty side, two of 260 words, two with a 3:16 token
ratio) and otherwise good pairs."""

from __future__ import annotations

import gzip
import io
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes" / "common"))

import prepare  # noqa: E402
import textproc  # noqa: E402
from recipe_fixtures import corpus_lines, make_downloads, truncate  # noqa: E402
from textproc import (  # noqa: E402
    ArchiveError, CleanStats, clean_pairs, iter_member_lines, parse_iwslt_tags, parse_seg_lines)
from textproc_tok import BpeApplier, ParallelMapper, Tokenizer  # noqa: E402

SIDES = {"iwslt14_de_en": ("de", "en"), "wmt16_en_de": ("en", "de"),
         "wmt14_en_fr": ("en", "fr"), "wmt17_zh_en": ("zh", "en")}


def run_prepare(setting, downloads, out, *extra, workers=1):
    return prepare.main([setting, "--downloads", str(downloads), "--out", str(out),
                         "--workers", str(workers), *extra])


def read(path):
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def unbpe(lines):
    return [re.sub(r"@@( |$)", "", line) for line in lines]


def member_text(archive, basename):
    with tarfile.open(archive) as tar:
        for info in tar:
            if info.name.rsplit("/", 1)[-1] == basename:
                return tar.extractfile(info).read().decode("utf-8")
    raise KeyError(basename)


def seg_texts(xml):
    return [m.group(1).strip() for m in re.finditer(r'<seg id="\d+">(.*?)</seg>', xml)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """{name: (downloads, out)}, each setting prepared once for the module."""
    cache = {}

    def get(name):
        if name not in cache:
            root = tmp_path_factory.mktemp(name)
            setting = "wmt16_en_de" if name.startswith("wmt16") else name
            downloads = make_downloads(setting, root / "dl", google=(name != "wmt16_raw"))
            workers = 2 if name == "iwslt14_de_en" else 1
            assert run_prepare(setting, downloads, root / "out", workers=workers) == 0
            cache[name] = (downloads, root / "out")
        return cache[name]

    return get


def check_common(out, setting, train, valid, test):
    src, tgt = SIDES[setting]
    report = json.loads((out / "prepare.json").read_text())
    assert report["lines"] == {"train": train, "valid": valid, "test": test}
    assert report["source_lang"] == src and report["target_lang"] == tgt
    for split, n in (("train", train), ("valid", valid), ("test", test)):
        for lang in (src, tgt):
            assert len(read(out / f"{split}.{lang}")) == n, f"{split}.{lang}"
    for lang in (src, tgt):
        assert len(read(out / f"test.raw.{lang}")) == test
    assert len(read(out / f"test.tok.{tgt}")) == test
    codes = read(out / "bpecodes")
    assert codes[0].startswith("#version") and len(codes) > 10
    if report["source"] == "raw corpora":
        # The paper's 10k-40k merges exhaust these tiny corpora: few or no words
        # are split, so check that the codes were applied rather than look for @@.
        bpe = BpeApplier(out / "bpecodes")
        assert read(out / f"test.{tgt}") == [bpe(line) for line in read(out / f"test.tok.{tgt}")]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "temporary files left"
    return report


# --- IWSLT14 ------------------------------------------------------------------

def iwslt_expected(lang):
    """The cleaned training text, in order: per talk, the speaker line as it
    is, title and description without tags (url, keywords, talkid dropped),
    then the good body lines; tokenised and lowercased."""
    lines = corpus_lines("iwslt14_de_en", "train.tags")[0 if lang == "de" else 1]
    tok = Tokenizer(lang, lowercase=True)
    kept, body = [], 0
    for i, line in enumerate(lines):
        if i % 46 < 6:
            if i % 46 in (2, 4, 5):
                kept.append(re.sub(r"</?(title|description)>", "", line))
        else:
            body += 1
            if body not in (5, 17, 29, 41, 53, 65):
                kept.append(line)
    return [tok(line) for line in kept]


def test_iwslt14_counts_split_and_text(prepared):
    downloads, out = prepared("iwslt14_de_en")
    # 368 lines - 8 x (url, keywords, talkid) = 344; cleaning drops the 6 bad
    # body lines; 338 = 314 body + 8 x (speaker, title, description).
    report = check_common(out, "iwslt14_de_en", train=324, valid=14, test=130)
    assert report["lowercase"] is True and report["bpe_merges"] == 10000
    assert report["cleaning"]["train+valid"] == {
        "before": 344, "after": 338,
        "dropped": {"empty": 2, "too_long": 2, "too_short": 0, "ratio": 2, "long_word": 0}}
    for lang in ("de", "en"):
        train, valid = unbpe(read(out / f"train.{lang}")), unbpe(read(out / f"valid.{lang}"))
        merged = []
        for k in range(len(train) + len(valid)):
            merged.append(valid.pop(0) if (k + 1) % 23 == 0 else train.pop(0))
        assert merged == iwslt_expected(lang)
        for name in (f"train.{lang}", f"valid.{lang}", f"test.{lang}", f"test.raw.{lang}"):
            text = (out / name).read_text(encoding="utf-8")
            # Only the <speaker> lines keep tags, as in fairseq's data; the
            # dropped metadata and the title/description tags are gone.
            for tag in ("url", "keywords", "talkid", "title", "description"):
                assert f"< {tag} >" not in text and f"<{tag}>" not in text, (name, tag)
            assert all("speaker" in line for line in text.splitlines() if "<" in line), name
            if "raw" not in name:
                assert text == text.lower(), name


def test_iwslt14_test_order_and_raw_text(prepared):
    downloads, out = prepared("iwslt14_de_en")
    order = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")
    for lang in ("de", "en"):
        raw = []
        for name in order:
            raw += seg_texts(member_text(downloads / "de-en.tgz", f"IWSLT14.{name}.de-en.{lang}.xml"))
        assert read(out / f"test.raw.{lang}") == raw
    assert any("\u2019" in line for line in read(out / "test.raw.en"))
    tok = read(out / "test.tok.en")
    assert not any("\u2019" in line for line in tok) and any(" 't " in line for line in tok)
    assert unbpe(read(out / "test.en")) == tok


# --- WMT16 En-De --------------------------------------------------------------

def test_wmt16_google_tarball(prepared):
    downloads, out = prepared("wmt16_en_de")
    report = check_common(out, "wmt16_en_de", train=426, valid=60, test=50)
    assert report["source"] == "wmt16_en_de.tar.gz"
    tarball = downloads / "wmt16_en_de.tar.gz"
    assert (out / "train.de").read_text() == member_text(tarball, "train.tok.clean.bpe.32000.de")
    assert (out / "valid.en").read_text() == member_text(tarball, "newstest2013.tok.bpe.32000.en")
    assert (out / "test.raw.de").read_text() == member_text(tarball, "newstest2014.de")
    assert (out / "test.tok.de").read_text() == member_text(tarball, "newstest2014.tok.de")
    assert (out / "bpecodes").read_text() == member_text(tarball, "bpe.32000")


def test_wmt16_raw_route(prepared, tmp_path, capsys):
    downloads, out = prepared("wmt16_raw")
    report = check_common(out, "wmt16_en_de", train=426, valid=60, test=50)
    assert report["source"] == "raw corpora" and report["bpe_merges"] == 32000
    # 206 + 126 + 106 lines; ratio 9 keeps the 3:16 lines.
    assert report["cleaning"]["train"] == {
        "before": 438, "after": 426,
        "dropped": {"empty": 6, "too_long": 6, "too_short": 0, "ratio": 0, "long_word": 0}}
    assert report["corpora"] == {"europarl-v7": 206, "commoncrawl": 126, "news-commentary-v11": 106}
    sgm = member_text(downloads / "dev.tgz", "newstest2014-deen-ref.en.sgm")
    assert read(out / "test.raw.en") == seg_texts(sgm)
    assert read(out / "valid.en") != [] and not any("@-@" in line for line in read(out / "train.en"))
    # Google's tarball fixes the merges: another value is refused.
    google_dl, _ = prepared("wmt16_en_de")
    assert run_prepare("wmt16_en_de", google_dl, tmp_path / "o", "--bpe-merges", "7000") == 1
    assert "wmt16_en_de.tar.gz" in capsys.readouterr().err


# --- WMT14 En-Fr --------------------------------------------------------------

def test_wmt14_en_fr(prepared):
    downloads, out = prepared("wmt14_en_fr")
    report = check_common(out, "wmt14_en_fr", train=1349, valid=1, test=50)
    assert report["bpe_merges"] == 40000
    # 256 + 156 + 156 + 156 + 656 = 1380 lines; line 1333 (giga-fren line 609,
    # a good one) is the valid set; cleaning after BPE drops the 30 bad lines.
    assert report["corpora"] == {"europarl-v7": 256, "commoncrawl": 156, "un": 156,
                                 "news-commentary-v9": 156, "giga-fren": 656}
    assert report["cleaning"]["train"] == {
        "before": 1379, "after": 1349,
        "dropped": {"empty": 10, "too_long": 10, "too_short": 0, "ratio": 10, "long_word": 0}}
    assert report["cleaning"]["valid"]["before"] == report["cleaning"]["valid"]["after"] == 1
    fr, en = corpus_lines("wmt14_en_fr", "giga")
    tok = Tokenizer("en", normalize=True, remove_non_printing=True, aggressive=True)
    assert unbpe(read(out / "valid.en")) == [tok(en[608])]
    assert any(" @-@ " in line for line in read(out / "train.en"))
    sgm = member_text(downloads / "test-full.tgz", "newstest2014-fren-ref.fr.sgm")
    assert read(out / "test.raw.fr") == seg_texts(sgm)


def test_bpe_merges_option(prepared, tmp_path):
    downloads, _ = prepared("wmt14_en_fr")
    assert run_prepare("wmt14_en_fr", downloads, tmp_path, "--bpe-merges", "100") == 0
    assert json.loads((tmp_path / "prepare.json").read_text())["bpe_merges"] == 100
    assert len(read(tmp_path / "bpecodes")) == 101  # version line + merges
    for name in ("train.en", "train.fr", "test.fr"):
        assert any("@@ " in line for line in read(tmp_path / name)), name


# --- WMT17 Zh-En --------------------------------------------------------------

def test_wmt17_zh_en(prepared):
    downloads, out = prepared("wmt17_zh_en")
    report = check_common(out, "wmt17_zh_en", train=952, valid=40, test=50)
    assert report["bpe_merges"] == 32000
    corpora = report["corpora"]
    assert corpora["news-commentary-v12"] == corpora["un-v1.0"] == 206
    assert sum(corpora.values()) == 1012 and len(corpora) == 10  # + 8 CWMT text pairs
    assert report["cleaning"]["train"] == {
        "before": 1012, "after": 952,
        "dropped": {"empty": 20, "too_long": 20, "too_short": 0, "ratio": 20, "long_word": 0}}
    raw_zh = read(out / "test.raw.zh")
    assert not any(" " in line for line in raw_zh)
    assert all(" " in line for line in unbpe(read(out / "test.zh")))  # segmented by jieba
    assert "".join(unbpe(read(out / "test.zh"))[0].split()) == raw_zh[0]


def test_missing_manual_archive_is_named(prepared, tmp_path, capsys):
    downloads, _ = prepared("wmt17_zh_en")
    partial = tmp_path / "dl"
    partial.mkdir()
    for p in downloads.iterdir():
        if p.name != "UNv1.0.en-zh.tar.gz":
            (partial / p.name).symlink_to(p)
    capsys.readouterr()  # drop what building the fixture printed, if this test built it
    assert run_prepare("wmt17_zh_en", partial, tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "UNv1.0.en-zh.tar.gz" in err[0] and "uncorpus" in err[0]
    assert not (tmp_path / "out" / "prepare.json").exists()


def test_truncated_archive_is_named(prepared, tmp_path, capsys):
    downloads, _ = prepared("iwslt14_de_en")
    (tmp_path / "dl").mkdir()
    broken = shutil.copy(downloads / "de-en.tgz", tmp_path / "dl" / "de-en.tgz")
    truncate(Path(broken), keep=0.5)
    out = tmp_path / "out"
    capsys.readouterr()  # drop what building the fixture printed, if this test built it
    assert run_prepare("iwslt14_de_en", tmp_path / "dl", out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "de-en.tgz" in err[0] and "truncated or corrupt" in err[0]
    assert not (out / "prepare.json").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]


def test_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        run_prepare("iwslt14_de_en", tmp_path, tmp_path / "o", "--workers", "0")
    with pytest.raises(SystemExit):
        run_prepare("iwslt14_de_en", tmp_path / "nowhere", tmp_path / "o")
    with pytest.raises(SystemExit):
        run_prepare("wmt15_xx", tmp_path, tmp_path / "o")


# --- textproc units -------------------------------------------------------------

def test_clean_pairs_rules():
    pairs = [
        ("a  b c", " x y z "),          # kept, whitespace collapsed
        ("", "x"),                       # empty
        ("a b", "   "),                  # empty after trimming
        ("a " * 6, "x"),                 # 6 > max 5
        ("a b c d", "x y"),              # ratio 2 > 1.5
        ("a b c", "x y"),                # ratio 1.5: kept
        ("a|b c", "x y z"),              # '|' removed (not a factored corpus)
        ("w" * 12, "x"),                 # token longer than max_word_length
    ]
    stats = CleanStats()
    kept = list(clean_pairs(pairs, 1, 5, 1.5, stats=stats, max_word_length=10))
    assert kept == [("a b c", "x y z"), ("a b c", "x y"), ("ab c", "x y z")]
    assert stats.as_dict() == {"before": 8, "after": 3, "dropped": {
        "empty": 2, "too_long": 1, "too_short": 0, "ratio": 1, "long_word": 1}}
    assert list(clean_pairs([("a b c", "x")], 2, 5, None)) == []  # too short, no ratio test
    with pytest.raises(ValueError, match="length range"):
        list(clean_pairs([], 3, 2, 1.5))


def test_parse_iwslt_tags():
    lines = ["<url>http://x</url>", "<keywords>a, b</keywords>", "<speaker>Al Gore</speaker>",
             "<talkid>1</talkid>", "<title>Al Gore: On things</title>",
             "<description>TED Talk: about</description>", '<reviewer href="r">R</reviewer>',
             '<doc docid="1">', "Plain text with <b>bold</b>.", "</doc>", "Second line."]
    assert list(parse_iwslt_tags(lines)) == [
        "<speaker>Al Gore</speaker>", "Al Gore: On things", "TED Talk: about", '<reviewer href="r">R</reviewer>',
        '<doc docid="1">', "Plain text with <b>bold</b>.", "</doc>", "Second line."]


def test_parse_seg_lines():
    lines = ['<doc docid="d">', '<seg id="1"> Hello  world. </seg>', "<p>",
             '<seg id="2">It\u2019s &amp; more</seg>', "</p>", "<seg id=3>no quotes</seg>", "</doc>"]
    assert list(parse_seg_lines(lines)) == ["Hello world.", "It\u2019s &amp; more", "no quotes"]
    assert textproc.replace_typographic_apostrophe("It\u2019s") == "It's"


def test_parallel_mapper_keeps_order():
    lines = [f"line {i}" for i in range(5000)]
    with ParallelMapper(str.upper, workers=2, chunk_size=37) as mapper:
        assert list(mapper.map(lines)) == [s.upper() for s in lines]
        assert list(mapper.map(["a", "b"])) == ["A", "B"]  # the pool is reused
    with pytest.raises(ValueError, match="workers"):
        ParallelMapper(str.upper, workers=0)


def _tar_bytes(members, gz=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_iter_member_lines(tmp_path):
    data = "a\rb\u2028c\nsecond\n".encode()  # only \n ends a line
    archive = tmp_path / "x.tgz"
    archive.write_bytes(_tar_bytes({"dir/f.txt": data, "g.txt.gz": gzip.compress(b"z1\nz2\n")}))
    assert list(iter_member_lines(archive, "f.txt")) == ["a\rb\u2028c", "second"]
    assert list(iter_member_lines(archive, "dir/f.txt")) == ["a\rb\u2028c", "second"]
    assert list(iter_member_lines(archive, "g.txt.gz")) == ["z1", "z2"]
    with pytest.raises(ArchiveError, match="x.tgz: no member named 'nope'"):
        list(iter_member_lines(archive, "nope"))
    # An archive in parts reads as the whole.
    blob = archive.read_bytes()
    parts = [tmp_path / "x.tgz.00", tmp_path / "x.tgz.01"]
    parts[0].write_bytes(blob[:100])
    parts[1].write_bytes(blob[100:])
    assert list(iter_member_lines(parts, "g.txt.gz")) == ["z1", "z2"]
    # Damaged: one error naming the archive.
    big = tmp_path / "big.tgz"
    big.write_bytes(_tar_bytes({"f.txt": b"".join(b"line %d\n" % i for i in range(20000))}))
    truncate(big, keep=0.5)
    with pytest.raises(ArchiveError, match="big.tgz: truncated or corrupt"):
        list(iter_member_lines(big, "f.txt"))
