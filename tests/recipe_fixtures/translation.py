"""Fake upstream archives of the translation settings: IWSLT14 and WMT16/14/17.

``corpus_lines(setting, member, seed)`` returns the lines a training text holds.

Good pairs per training text (total lines = good + 6):

  iwslt14_de_en  de-en.tgz: de-en/train.tags.de-en.{de,en}: 8 talks, each 6
                 metadata lines (<url>, <keywords>, <speaker>, <talkid>,
                 <title>, <description>) then 40 body lines; the 320 body lines
                 in order follow the line layout of :mod:`.text` (314 good).  File: 368 lines;
                 minus url/keywords/talkid: 344; after cleaning 338 (314 body +
                 8 x speaker/title/description, which are parallel and short).
                 XML: IWSLT14.TED.dev2010 30 segs, tst2010 30, tst2011 25,
                 tst2012 25, IWSLT14.TEDX.dev2012 20 (test = 130).
  wmt16_en_de    europarl-v7 de-en 200, commoncrawl de-en 120, nc-v11 de-en 100;
                 dev.tgz: dev/newstest2009..2012.{de,en} 20 lines each,
                 dev/newstest2013.{de,en} 60, dev/newstest2014-deen-{src.de,ref.en}.sgm
                 50 segs, dev/newstest2015-deen-... 30; test.tgz:
                 test/newstest2016-{deen-src.de,deen-ref.en,ende-src.en,ende-ref.de}.sgm 30.
                 wmt16_en_de.tar.gz (Google's layout, flat): the three corpora
                 above tokenised (sacremoses, no -a, escaped), cleaned 1..80
                 ratio 9 (so 420 good + 3 x 2 ratio lines = 426 lines), BPE
                 (subword-nmt, 300 merges, joint): train.tok.clean.bpe.32000.{en,de};
                 newstest2009..2016.{en,de} raw, .tok.{en,de}, .tok.bpe.32000.{en,de};
                 bpe.32000 (codes), vocab.bpe.32000 (<unk>, <s>, </s>, then tokens).
  wmt14_en_fr    europarl-v7 fr-en 250, commoncrawl fr-en 150, un/undoc.2000 fr-en
                 150, nc-v9 fr-en 150, giga-fren 650 (1350 good, 1380 lines in
                 that order, so one line is the 1333rd); test-full.tgz:
                 test-full/newstest2014-fren-{src.en,ref.fr,src.fr,ref.en}.sgm 50 segs;
                 dev.tgz (optional): dev/newstest2012.{fr,en}, dev/newstest2013.{fr,en} 30.
                 europarl-v7 and commoncrawl also hold the de-en pair of wmt16.
  wmt17_zh_en    nc-v12 zh-en 200, UNv1.0 en-zh 200, CWMT (each text file pair):
                 casia2015 80, casict2011 parts A and B 70 each, casict2015 80,
                 datum2015 80, datum2017 Book1 and Book2 70 each, neu2017 80;
                 dev.tgz: dev/newsdev2017-zhen-{src.zh,ref.en}.sgm 40 segs;
                 test.tgz: test/newstest2017-zhen-{src.zh,ref.en}.sgm 50 segs.
"""

from __future__ import annotations

import contextlib
import io
import random
import re

from .archives import _gz, _lines, _tar, _zip
from .text import BAD_LINES, LEXICON, _sentence, _test_set, parallel_text

# ------------------------------------------------------- SGM test sets ---

def _sgm(kind, setid, lang, docs, srclang="any"):
    """WMT SGM: kind is 'src' or 'ref'; docs is [(docid, [segments])]."""
    if kind == "src":
        out = [f'<srcset setid="{setid}" srclang="{srclang}">']
    else:
        out = [f'<refset setid="{setid}" srclang="{srclang}" trglang="{lang}">']
    for i, (docid, segs) in enumerate(docs):
        out.append(f'<doc sysid="{"ref" if kind == "ref" else "src"}" docid="{docid}" '
                   f'genre="news" origlang="{lang}">')
        wrap = i % 2 == 1  # some documents wrap segments in <p>, as upstream does
        if wrap:
            out.append("<p>")
        out += [f'<seg id="{j}">{_xml_escape(s)}</seg>' for j, s in enumerate(segs, 1)]
        if wrap:
            out.append("</p>")
        out.append("</doc>")
    out.append("</srcset>" if kind == "src" else "</refset>")
    return _lines(out)


def _xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _split_docs(segs, ndocs, prefix):
    step = -(-len(segs) // ndocs)
    return [(f"{prefix}-{k}", segs[k * step:(k + 1) * step]) for k in range(ndocs)]


def _sgm_pair(x, n, seed, setid, members, path_fmt, pair, directions):
    """Write SGM files of a WMT test set; path_fmt takes (pair, kind, lang)."""
    xs, ens = _test_set(x, n, seed, setid + pair)
    text = {x: xs, "en": ens}
    for src, ref in directions:
        members[path_fmt.format(pair=pair, kind="src", lang=src)] = _sgm(
            "src", setid, src, _split_docs(text[src], 3, setid), src)
        members[path_fmt.format(pair=pair, kind="ref", lang=ref)] = _sgm(
            "ref", setid, ref, _split_docs(text[ref], 3, setid), src)


# ----------------------------------------------------------------- IWSLT ---

TALKS, TALK_BODY = 8, 40


def _iwslt_train(seed):
    body_x, body_en = parallel_text("de", TALKS * TALK_BODY - len(BAD_LINES), seed, "iwslt-train")
    rng = random.Random(f"{seed}/iwslt-meta")
    de, en = [], []
    for t in range(TALKS):
        talkid = 100 + 7 * t
        speaker = f"{rng.choice(LEXICON['noun'])['en'].capitalize()} {rng.choice(LEXICON['adj'])['en'].capitalize()}"
        title = _sentence(rng, max_words=8)
        desc = _sentence(rng, max_words=14)
        url = f"<url>http://www.ted.com/talks/lang/de/talk_{talkid}.html</url>"
        keywords = "<keywords>talks, " + ", ".join(
            e["en"] for e in rng.sample(LEXICON["noun"], 3)) + "</keywords>"
        for lines, lang, intro in ((de, "de", "TED Talk Untertitel und Transkript: "),
                                   (en, "en", "TED Talk Subtitles and Transcript: ")):
            lines += [
                url,
                keywords,
                f"<speaker>{speaker}</speaker>",
                f"<talkid>{talkid}</talkid>",
                f"<title>{speaker}: {title.render(lang)}</title>",
                f"<description>{intro}{desc.render(lang)}</description>",
            ]
        de += body_x[t * TALK_BODY:(t + 1) * TALK_BODY]
        en += body_en[t * TALK_BODY:(t + 1) * TALK_BODY]
    return de, en


IWSLT_XML = {"IWSLT14.TED.dev2010": 30, "IWSLT14.TED.tst2010": 30, "IWSLT14.TED.tst2011": 25,
             "IWSLT14.TED.tst2012": 25, "IWSLT14.TEDX.dev2012": 20}


def _iwslt_xml(name, lang, segs):
    setid = "iwslt2014-" + name.split(".")[-1]
    if lang == "de":
        out = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
               f'<srcset setid="{setid}" srclang="german">']
    else:
        out = ['<?xml version="1.0" encoding="UTF-8"?>', "<mteval>",
               f'<refset setid="{setid}" srclang="german" trglang="english" refid="ref">']
    half = (len(segs) + 1) // 2
    for d, (lo, hi) in enumerate(((0, half), (half, len(segs)))):
        talkid = 500 + d
        out += [f'<doc docid="{talkid}" genre="lectures">',
                f"<url>http://www.ted.com/talks/talk_{talkid}.html</url>",
                "<description>TED Talk Subtitles and Transcript: a talk.</description>",
                "<keywords>talks, science</keywords>",
                f"<talkid>{talkid}</talkid>",
                f"<title>Talk {talkid}</title>",
                "<reviewer></reviewer>", "<translator></translator>"]
        out += [f'<seg id="{i}"> {_xml_escape(segs[i - 1])} </seg>' for i in range(lo + 1, hi + 1)]
        out.append("</doc>")
    out += ["</srcset>" if lang == "de" else "</refset>", "</mteval>"]
    return _lines(out)


def _make_iwslt(dest, seed):
    de, en = _iwslt_train(seed)
    members = {"de-en/train.tags.de-en.de": _lines(de), "de-en/train.tags.de-en.en": _lines(en)}
    for name, n in IWSLT_XML.items():
        xs, ens = _test_set("de", n, seed, name)
        members[f"de-en/{name}.de-en.de.xml"] = _iwslt_xml(name, "de", xs)
        members[f"de-en/{name}.de-en.en.xml"] = _iwslt_xml(name, "en", ens)
    _tar(dest / "de-en.tgz", members)


# ------------------------------------------------------------------- WMT ---

# (archive, member path of the X side with {x} and {lang}, good pairs per pair)
_EUROPARL = ("training-parallel-europarl-v7.tgz", "training/europarl-v7.{x}-en.{lang}")
_COMMONCRAWL = ("training-parallel-commoncrawl.tgz", "commoncrawl.{x}-en.{lang}")
SIZES = {
    "wmt16_en_de": {"europarl": 200, "commoncrawl": 120, "nc-v11": 100},
    "wmt14_en_fr": {"europarl": 250, "commoncrawl": 150, "un": 150, "nc-v9": 150, "giga": 650},
    "wmt17_zh_en": {"nc-v12": 200, "un": 200},
}
CWMT_FILES = {
    "casia2015.zip": [("casia2015/casia2015_ch.txt", "casia2015/casia2015_en.txt", 80)],
    "casict2011.zip": [("casict2011/casict-A_ch.txt", "casict2011/casict-A_en.txt", 70),
                       ("casict2011/casict-B_ch.txt", "casict2011/casict-B_en.txt", 70)],
    "casict2015.zip": [("casict2015/casict2015_ch.txt", "casict2015/casict2015_en.txt", 80)],
    "datum2015.zip": [("datum2015/datum_ch.txt", "datum2015/datum_en.txt", 80)],
    "datum2017.zip": [("datum2017/Book1_cn.txt", "datum2017/Book1_en.txt", 70),
                      ("datum2017/Book2_cn.txt", "datum2017/Book2_en.txt", 70)],
    "neu2017.zip": [("neu2017/NEU_cn.txt", "neu2017/NEU_en.txt", 80)],
}
_GOOD = lambda n: n - len(BAD_LINES)  # noqa: E731


def _pair_members(x, n_good, seed, salt, fmt):
    xs, ens = parallel_text(x, n_good, seed, salt)
    return {fmt.format(x=x, lang=x): _lines(xs), fmt.format(x=x, lang="en"): _lines(ens)}


def _shared_corpora(dest, seed):
    """europarl-v7 and commoncrawl hold both pairs, as upstream; same bytes for every setting."""
    e16, e14 = SIZES["wmt16_en_de"], SIZES["wmt14_en_fr"]
    for (archive, fmt), key in ((_EUROPARL, "europarl"), (_COMMONCRAWL, "commoncrawl")):
        members = {}
        members.update(_pair_members("de", e16[key], seed, key + "de", fmt))
        members.update(_pair_members("fr", e14[key], seed, key + "fr", fmt))
        _tar(dest / archive, members)


def _wmt16_dev_test(seed):
    dev, test = {}, {}
    for year in range(2009, 2014):
        n = 60 if year == 2013 else 20
        de, en = _test_set("de", n, seed, f"newstest{year}")
        dev[f"dev/newstest{year}.de"], dev[f"dev/newstest{year}.en"] = _lines(de), _lines(en)
    for year, n in ((2014, 50), (2015, 30)):
        _sgm_pair("de", n, seed, f"newstest{year}", dev, f"dev/newstest{year}-{{pair}}-{{kind}}.{{lang}}.sgm",
                  "deen", [("de", "en")])
    _sgm_pair("de", 30, seed, "newstest2016", test, "test/newstest2016-{pair}-{kind}.{lang}.sgm",
              "deen", [("de", "en")])
    _sgm_pair("de", 30, seed, "newstest2016", test, "test/newstest2016-{pair}-{kind}.{lang}.sgm",
              "ende", [("en", "de")])
    return dev, test


def _make_wmt16(dest, seed, google=True):
    _shared_corpora(dest, seed)
    _tar(dest / "training-parallel-nc-v11.tgz", _pair_members(
        "de", SIZES["wmt16_en_de"]["nc-v11"], seed, "nc-v11",
        "training-parallel-nc-v11/news-commentary-v11.{x}-en.{lang}"))
    dev, test = _wmt16_dev_test(seed)
    _tar(dest / "dev.tgz", dev)
    _tar(dest / "test.tgz", test)
    if google:
        _make_google_tarball(dest, seed, dev, test)


def _sgm_text(data: bytes):
    return [re.sub(r"^<seg id=\"\d+\">\s*|\s*</seg>\s*$", "", line)
            .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
            for line in data.decode("utf-8").splitlines() if line.startswith("<seg id")]


def _make_google_tarball(dest, seed, dev, test):
    from sacremoses import MosesTokenizer
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    tok = {lang: MosesTokenizer(lang=lang) for lang in ("de", "en")}
    raw = {"de": [], "en": []}
    e16 = SIZES["wmt16_en_de"]
    for key, fmt in (("europarl", _EUROPARL[1]), ("commoncrawl", _COMMONCRAWL[1]),
                     ("nc-v11", "x")):
        salt = key + "de" if key != "nc-v11" else "nc-v11"
        xs, ens = parallel_text("de", e16[key], seed, salt)
        raw["de"] += xs
        raw["en"] += ens
    tokd = {lang: [tok[lang].tokenize(s, return_str=True) for s in raw[lang]] for lang in raw}
    keep = [i for i in range(len(raw["de"]))
            if 1 <= len(tokd["de"][i].split()) <= 80 and 1 <= len(tokd["en"][i].split()) <= 80
            and max(len(tokd["de"][i].split()), len(tokd["en"][i].split()))
            / min(len(tokd["de"][i].split()), len(tokd["en"][i].split())) <= 9]
    train = {lang: [tokd[lang][i] for i in keep] for lang in raw}
    codes = io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        learn_bpe(io.StringIO("\n".join(train["de"] + train["en"]) + "\n"), codes, 300)
    codes_text = codes.getvalue()
    bpe = BPE(io.StringIO(codes_text))
    members = {}

    def add(stem, lang, lines):
        t = [tok[lang].tokenize(s, return_str=True) for s in lines]
        members[f"{stem}.{lang}"] = _lines(lines)
        members[f"{stem}.tok.{lang}"] = _lines(t)
        members[f"{stem}.tok.bpe.32000.{lang}"] = _lines(bpe.process_line(s) for s in t)

    bpe_train = {lang: [bpe.process_line(s) for s in train[lang]] for lang in raw}
    for lang in ("en", "de"):
        members[f"train.tok.clean.bpe.32000.{lang}"] = _lines(bpe_train[lang])
    for year in range(2009, 2017):
        for lang in ("en", "de"):
            if year <= 2013:
                lines = dev[f"dev/newstest{year}.{lang}"].decode().splitlines()
            else:
                src = dev if year < 2016 else test
                kind = "src" if lang == "de" else "ref"
                lines = _sgm_text(src[f"{'dev' if year < 2016 else 'test'}/newstest{year}-deen-{kind}.{lang}.sgm"])
            add(f"newstest{year}", lang, lines)
    counts = {}
    for line in bpe_train["en"] + bpe_train["de"]:
        for w in line.split():
            counts[w] = counts.get(w, 0) + 1
    vocab = ["<unk>", "<s>", "</s>"] + sorted(counts, key=lambda w: (-counts[w], w))
    members["vocab.bpe.32000"] = _lines(vocab)
    members["bpe.32000"] = codes_text.encode("utf-8")
    _tar(dest / "wmt16_en_de.tar.gz", members)


def _make_wmt14(dest, seed):
    s = SIZES["wmt14_en_fr"]
    _shared_corpora(dest, seed)
    _tar(dest / "training-parallel-un.tgz",
         _pair_members("fr", s["un"], seed, "un", "un/undoc.2000.{x}-en.{lang}"))
    _tar(dest / "training-parallel-nc-v9.tgz",
         _pair_members("fr", s["nc-v9"], seed, "nc-v9", "training/news-commentary-v9.{x}-en.{lang}"))
    gf = _pair_members("fr", s["giga"], seed, "giga", "giga-fren.release2.fixed.{lang}")
    _tar(dest / "training-giga-fren.tar", {k + ".gz": _gz(v) for k, v in gf.items()}, compress=False)
    members = {}
    _sgm_pair("fr", 50, seed, "newstest2014", members, "test-full/newstest2014-{pair}-{kind}.{lang}.sgm",
              "fren", [("en", "fr"), ("fr", "en")])
    _tar(dest / "test-full.tgz", members)
    dev = {}
    for year in (2012, 2013):
        fr, en = _test_set("fr", 30, seed, f"newstest{year}")
        dev[f"dev/newstest{year}.fr"], dev[f"dev/newstest{year}.en"] = _lines(fr), _lines(en)
    _tar(dest / "dev.tgz", dev)


def _make_wmt17(dest, seed):
    s = SIZES["wmt17_zh_en"]
    _tar(dest / "training-parallel-nc-v12.tgz", _pair_members(
        "zh", s["nc-v12"], seed, "nc-v12", "training/news-commentary-v12.{x}-en.{lang}"))
    _tar(dest / "UNv1.0.en-zh.tar.gz",
         _pair_members("zh", s["un"], seed, "un-zh", "en-zh/UNv1.0.en-zh.{lang}"))
    for archive, parts in CWMT_FILES.items():
        members = {}
        for zh_path, en_path, n in parts:
            zh, en = parallel_text("zh", _GOOD(n), seed, zh_path)
            members[zh_path], members[en_path] = _lines(zh), _lines(en)
        _zip(dest / archive, members)
    dev, test = {}, {}
    _sgm_pair("zh", 40, seed, "newsdev2017", dev, "dev/newsdev2017-{pair}-{kind}.{lang}.sgm",
              "zhen", [("zh", "en")])
    _sgm_pair("zh", 50, seed, "newstest2017", test, "test/newstest2017-{pair}-{kind}.{lang}.sgm",
              "zhen", [("zh", "en")])
    _tar(dest / "dev.tgz", dev)
    _tar(dest / "test.tgz", test)



def corpus_lines(setting: str, corpus: str, seed: int = 0):
    """(x_lines, en_lines) written for a training corpus of `setting`.

    corpus: a SIZES key (europarl, commoncrawl, nc-v11, un, nc-v9, giga,
    nc-v12), a CWMT text member path (e.g. "casia2015/casia2015_ch.txt"), or
    "train.tags" (IWSLT: the whole files, metadata lines included).
    """
    if setting == "iwslt14_de_en" and corpus == "train.tags":
        return _iwslt_train(seed)
    x = {"wmt16_en_de": "de", "wmt14_en_fr": "fr", "wmt17_zh_en": "zh"}.get(setting)
    if setting == "wmt17_zh_en":
        for parts in CWMT_FILES.values():
            for zh_path, _en, n in parts:
                if corpus == zh_path:
                    return parallel_text("zh", _GOOD(n), seed, zh_path)
    sizes = SIZES.get(setting, {})
    if corpus not in sizes:
        raise ValueError(f"unknown corpus {corpus!r} for setting {setting!r}")
    salt = {"europarl": "europarl" + x, "commoncrawl": "commoncrawl" + x,
            "un": "un-zh" if x == "zh" else "un"}.get(corpus, corpus)
    return parallel_text(x, sizes[corpus], seed, salt)

