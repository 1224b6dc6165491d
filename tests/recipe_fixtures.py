"""Small fake upstream archives for the translation recipe tests.

``make_downloads(setting, dest, seed=0)`` writes, under their upstream names
(recipes/common/datasets.py), archives with the upstream member layout and a
learnable synthetic parallel text: a fixed word lexicon shared by made-up
English-, German- and French-looking ASCII languages and real two-character
Chinese words (written without spaces), translated word for word in the same
order.  Sentences have 6-20 words and may contain one hyphenated compound
(hyphenated on every side but Chinese, so Moses ``-a`` splitting gives both
sides the same token count), an English ``doesn't`` (German ``nicht``, French
``ne ... pas``, Chinese ``不``) and French elision (``l'``).  Test sets (SGM and
IWSLT XML) also use the typographic apostrophe U+2019.  Same seed, same bytes
(tar/gzip/zip time stamps are fixed).

Line layout of every parallel training text file pair (X = the non-English
side; line numbers 1-based; every other line is a good pair):

  line 5   X empty                     -> dropped by cleaning (min length 1)
  line 17  English empty               -> dropped by cleaning
  line 29  260 words on each side      -> dropped (> 250, > 175, > 80 tokens)
  line 41  260 words on each side      -> dropped
  line 53  X 2 words + '.', English 15 -> dropped by ratio 1.5 (kept by ratio 9)
  line 65  X 15 words, English 2 + '.' -> dropped by ratio 1.5 (kept by ratio 9)

so cleaning with ratio 1.5 keeps exactly the good pairs, in order (for zh,
assuming jieba keeps each two-character word whole, which it does for this
lexicon).  ``corpus_lines(setting, member, seed)`` returns the lines written.

Good pairs per training text (total lines = good + 6):

  iwslt14_de_en  de-en.tgz: de-en/train.tags.de-en.{de,en}: 8 talks, each 6
                 metadata lines (<url>, <keywords>, <speaker>, <talkid>,
                 <title>, <description>) then 40 body lines; the 320 body lines
                 in order follow the layout above (314 good).  File: 368 lines;
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
  cnn_dailymail  not parallel text: cnn_stories.tgz, dailymail_stories.tgz and
                 all_{train,val,test}.txt; layout and counts at CNN_DM_LAYOUT
                 (train / valid / test: 16 / 6 / 6 URLs -> 11 / 4 / 4 stories).
  gbw_lm         not parallel text: the r13output tarball, 99 training and 50
                 held-out shards; wikitext103_lm: wikitext-103-v1.zip; layouts
                 and counts at GBW_TOP and WIKITEXT_ARTICLES.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import random
import re
import sys
import tarfile
import zipfile
from pathlib import Path



def _load_manifest():
    # Same private module name as fetch.py uses, so both see one manifest.
    name = "recipe_datasets"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent.parent / "recipes" / "common" / "datasets.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


datasets = _load_manifest()

LANGS = ("en", "de", "fr", "zh")
BAD_LINES = {5: "empty_x", 17: "empty_en", 29: "long", 41: "long", 53: "short_x", 65: "short_en"}
TALKS, TALK_BODY = 8, 40
LONG_WORDS = 260

# ---------------------------------------------------------------- lexicon ---

_ZH_WORDS = (
    "经济 国家 政府 世界 人民 发展 问题 社会 企业 市场 城市 学校 历史 文化 技术 科学 "
    "朋友 家庭 医生 学生 老师 银行 工作 音乐 电影 电话 汽车 报纸 公司 价格 "
    "支持 需要 提高 发现 讨论 解决 改变 建立 介绍 参加 了解 保护 "
    "重要 美丽 快乐 安全 困难 简单 年轻 传统 "
    "关于 通过 根据 对于 之间 以后"
).split()

_ONSETS = {
    "en": "b br cl d f gr h l m n p pl r s st t tr w sh th".split(),
    "de": "b br d f g gr h k kr l m n p pf r s sch st t tr w z".split(),
    "fr": "b br c ch d f g gr l m n p pl r s t tr v".split(),
}
_VOWELS = {"en": "a e i o u ea oo".split(), "de": "a e i o u ei au ie".split(),
           "fr": "a e i o ou ai oi".split()}
_CODAS = {"en": ["", "n", "nd", "t", "ck", "st", "ll", "r", "ng"],
          "de": ["", "n", "ch", "cht", "tz", "ng", "ss", "rt"],
          "fr": ["", "s", "nt", "r", "l", "ille", "ette"]}


def _lexicon():
    """{category: [{lang: word}]}, fixed (independent of the seed)."""
    rng = random.Random(20190101)
    used = {lang: set() for lang in LANGS}
    zh = iter(_ZH_WORDS)

    def word(lang, vowel_start=False):
        while True:
            parts = [] if vowel_start else [rng.choice(_ONSETS[lang])]
            for i in range(rng.choice((1, 2))):
                if i:
                    parts.append(rng.choice(_ONSETS[lang]))
                parts += [rng.choice(_VOWELS[lang]), rng.choice(_CODAS[lang])]
            w = "".join(parts)
            if len(w) >= 3 and w not in used[lang]:
                used[lang].add(w)
                return w

    lex = {}
    for cat, n in (("noun", 30), ("verb", 12), ("adj", 8), ("prep", 6)):
        entries = []
        for i in range(n):
            e = {lang: word(lang, vowel_start=(lang == "fr" and cat == "noun" and i % 4 == 0))
                 for lang in ("en", "de", "fr")}
            e["zh"] = next(zh)
            if cat == "noun":
                e["de"] = e["de"].capitalize()
            if cat == "verb":
                e["en"] += "s"
            entries.append(e)
        lex[cat] = entries
    return lex


LEXICON = _lexicon()
_DET = [{"en": "the", "de": "der", "fr": "le", "zh": "这个"},
        {"en": "a", "de": "ein", "fr": "un", "zh": "一个"}]
_AND = {"en": "and", "de": "und", "fr": "et", "zh": "而且"}
_NEG = {"en": "doesn't", "de": "nicht", "fr": "ne", "zh": "不"}
_PUNCT = {".": {"en": ".", "de": ".", "fr": ".", "zh": "。"},
          "?": {"en": "?", "de": "?", "fr": "?", "zh": "？"},
          "!": {"en": "!", "de": "!", "fr": "!", "zh": "！"}}
_COMMA = {"en": ",", "de": ",", "fr": ",", "zh": "，"}


class _Sentence:
    """A sentence as a list of concept tokens, rendered in any language.

    Token kinds: ("np", (det, adj or None, noun or (noun, noun))),
    ("verb", (verb, negated)), ("word", entry), ("punct", entry).
    """

    def __init__(self, tokens):
        self.tokens = tokens

    def render(self, lang, typographic=False):
        apos = "\u2019" if typographic else "'"
        out = []
        for kind, p in self.tokens:
            if kind == "np":
                det, adj, noun = p
                words = ([adj[lang]] if adj else []) + [_noun(noun, lang)]
                if lang == "fr" and det is _DET[0] and words[0][0] in "aeiou":
                    words[0] = "l" + apos + words[0]
                else:
                    words.insert(0, det[lang])
                out += words
            elif kind == "verb":
                verb, negated = p
                if not negated:
                    out.append(verb[lang])
                elif lang == "fr":
                    out += ["ne", verb[lang], "pas"]
                else:
                    out += [_NEG[lang].replace("'", apos), verb[lang]]
            else:
                out.append(p[lang])
        if lang == "zh":
            return "".join(out)
        text = " ".join(out)
        for mark in ",.?!":
            text = text.replace(" " + mark, mark)
        return text[:1].upper() + text[1:]

    def words(self, lang):
        return len(self.render(lang).split())


def _noun(noun, lang):
    if isinstance(noun, dict):
        return noun[lang]
    a, b = noun
    return a[lang] + b[lang] if lang == "zh" else a[lang] + "-" + b[lang]


def _sentence(rng, max_words=20):
    def np():
        noun = rng.choice(LEXICON["noun"])
        if rng.random() < 0.12:
            noun = (noun, rng.choice(LEXICON["noun"]))
        adj = rng.choice(LEXICON["adj"]) if rng.random() < 0.4 else None
        return [("np", (rng.choice(_DET), adj, noun))]

    def clause():
        toks = np() + [("verb", (rng.choice(LEXICON["verb"]), rng.random() < 0.15))] + np()
        if rng.random() < 0.4:
            toks += [("word", rng.choice(LEXICON["prep"]))] + np()
        return toks

    while True:
        toks = clause()
        if rng.random() < 0.3:
            toks += [("punct", _COMMA), ("word", _AND)] + clause()
        toks.append(("punct", _PUNCT[rng.choice(".....?!")]))
        s = _Sentence(toks)
        if 6 <= s.words("en") <= max_words:
            return s


def _short(rng):
    return _Sentence([("word", rng.choice(LEXICON["adj"])),
                      ("word", rng.choice(LEXICON["noun"])), ("punct", _PUNCT["."])])


def _n_words(rng, n):
    """Exactly n words then '.', for the bad lines."""
    pool = LEXICON["noun"] + LEXICON["verb"] + LEXICON["adj"]
    return _Sentence([("word", rng.choice(pool)) for _ in range(n)] + [("punct", _PUNCT["."])])


def parallel_text(x, n_good, seed, salt):
    """(x_lines, en_lines): n_good good pairs with BAD_LINES inserted."""
    if n_good + len(BAD_LINES) < max(BAD_LINES):
        raise ValueError(f"parallel_text: n_good must be >= {max(BAD_LINES) - len(BAD_LINES)}")
    rng = random.Random(f"{seed}/{salt}")
    xs, ens = [], []
    for lineno in range(1, n_good + len(BAD_LINES) + 1):
        kind = BAD_LINES.get(lineno)
        if kind is None:
            s = _sentence(rng)
            xs.append(s.render(x))
            ens.append(s.render("en"))
        elif kind == "empty_x":
            xs.append("")
            ens.append(_sentence(rng).render("en"))
        elif kind == "empty_en":
            xs.append(_sentence(rng).render(x))
            ens.append("")
        elif kind == "long":
            s = _n_words(rng, LONG_WORDS)
            xs.append(s.render(x))
            ens.append(s.render("en"))
        elif kind == "short_x":
            xs.append(_short(rng).render(x))
            ens.append(_n_words(rng, 15).render("en"))
        else:
            xs.append(_n_words(rng, 15).render(x))
            ens.append(_short(rng).render("en"))
    return xs, ens


def _test_set(x, n, seed, salt):
    rng = random.Random(f"{seed}/test/{salt}")
    sents = [_sentence(rng) for _ in range(n)]
    return ([s.render(x, typographic=True) for s in sents],
            [s.render("en", typographic=True) for s in sents])


# --------------------------------------------------------------- writers ---

def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def _tar(path: Path, members: dict[str, bytes], compress=True):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(_gz(buf.getvalue()) if compress else buf.getvalue())


def _zip(path: Path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)


def _lines(lines) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


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


# ---------------------------------------------------------- CNN-DailyMail ---
# Stories in the layout of cnn_stories.tgz / dailymail_stories.tgz
# (cnn/stories/<sha1(url)>.story, dailymail/stories/...), with See et al.'s
# URL lists.  Per split, in list order (CNN URLs first, then Daily Mail, as
# all_*.txt concatenate the two), each story is one of these kinds:
#
#   normal        3-6 paragraphs of 1-2 sentences (< 400 tokens), 2-4 highlights
#   long          40 paragraphs (> 400 tokens: the article is cut to 400)
#   empty_article "@highlight" blocks only                  -> dropped
#   no_highlight  paragraphs only                           -> dropped
#   missing       a URL whose story is in neither archive   -> counted as missing
#
#   split  URLs  normal  long  empty_article  no_highlight  missing  -> stories  truncated
#   train   16     8      3         2              1           2          11         3
#   valid    6     3      1         0              1           1           4         1
#   test     6     3      1         1              0           1           4         1
#
# CNN_DM_LAYOUT gives (source, kind) per split in list order.  One extra CNN
# story is in no list (unlisted): cnn_stories.tgz holds 11 stories (10 listed),
# dailymail_stories.tgz 14 (all listed).  Highlights mostly lack a final period, one
# ends in "!", paragraph lines sometimes lack one (image captions) or end in
# ")" or a closing quote, as upstream; members are written in sha1 order (not
# list order), and the tar files hold the folder entries too.
CNN_DM_LAYOUT = {
    "train": [("cnn", "normal"), ("cnn", "long"), ("cnn", "normal"), ("cnn", "empty_article"),
              ("cnn", "missing"), ("cnn", "normal"),
              ("dm", "normal"), ("dm", "long"), ("dm", "normal"), ("dm", "no_highlight"),
              ("dm", "normal"), ("dm", "long"), ("dm", "empty_article"), ("dm", "missing"),
              ("dm", "normal"), ("dm", "normal")],
    "valid": [("cnn", "normal"), ("cnn", "no_highlight"), ("cnn", "missing"),
              ("dm", "long"), ("dm", "normal"), ("dm", "normal")],
    "test": [("cnn", "normal"), ("cnn", "empty_article"), ("cnn", "long"),
             ("dm", "missing"), ("dm", "normal"), ("dm", "normal")],
}
CNN_DM_LISTS = {"train": "all_train.txt", "valid": "all_val.txt", "test": "all_test.txt"}


@dataclasses.dataclass(frozen=True)
class FixtureStory:
    url: str
    split: str  # "" for the unlisted story
    source: str  # "cnn" or "dm"
    kind: str
    text: str  # the .story file ("" for a missing one)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.url.encode("utf-8")).hexdigest()


def _story_text(rng, kind):
    paragraphs = []
    n_par = {"long": 40, "empty_article": 0}.get(kind, rng.randint(3, 6))
    for i in range(n_par):
        sents = [_sentence(rng).render("en") for _ in range(rng.randint(1, 2))]
        par = " ".join(sents)
        if i % 5 == 1:
            par = par[:-1]  # an image caption without final punctuation
        elif i % 5 == 3:
            par = f'He said: "{par}"' if i % 2 else f"{par[:-1]} (in {rng.choice(LEXICON['noun'])['en']})"
        paragraphs.append(par)
    highlights = []
    if kind != "no_highlight":
        for j in range(rng.randint(2, 4)):
            h = _sentence(rng, max_words=12).render("en")[:-1]
            highlights.append(h + "!" if j == 1 else h)
    out = "".join(p + "\n\n" for p in paragraphs)
    out += "".join(f"@highlight\n\n{h}\n\n" for h in highlights)
    return out


def cnn_dailymail_stories(seed: int = 0) -> list[FixtureStory]:
    """Every story of the fixture, in list order per split, then the unlisted one."""
    rng = random.Random(f"{seed}/cnn_dailymail")
    stories, n = [], 0
    for split, layout in CNN_DM_LAYOUT.items():
        for source, kind in layout:
            n += 1
            wayback = f"http://web.archive.org/web/2015{n:04d}id_/"
            if source == "cnn":
                url = f"{wayback}http://www.cnn.com/2015/01/{n:02d}/world/story-{n}/index.html"
            else:
                url = f"{wayback}http://www.dailymail.co.uk/news/article-{3000000 + n}/story-{n}.html"
            text = "" if kind == "missing" else _story_text(rng, kind)
            stories.append(FixtureStory(url, split, source, kind, text))
    stories.append(FixtureStory("http://www.cnn.com/2015/unlisted/index.html", "", "cnn", "normal",
                                _story_text(rng, "normal")))
    return stories


def _tar_with_dirs(path: Path, dirs, members: dict[str, bytes]):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(_gz(buf.getvalue()))


def _make_cnn_dailymail(dest, seed):
    stories = cnn_dailymail_stories(seed)
    for split, name in CNN_DM_LISTS.items():
        (dest / name).write_bytes(_lines(s.url for s in stories if s.split == split))
    for source, folder, archive in (("cnn", "cnn", "cnn_stories.tgz"),
                                    ("dm", "dailymail", "dailymail_stories.tgz")):
        kept = sorted((s for s in stories if s.source == source and s.kind != "missing"),
                      key=lambda s: s.sha1)
        _tar_with_dirs(dest / archive, [folder, f"{folder}/stories"],
                       {f"{folder}/stories/{s.sha1}.story": s.text.encode("utf-8") for s in kept})



# ------------------------------------------------------ language modelling ---
# One Billion Word, in the layout of the r13output tarball (GBW_TOP/...), one
# tokenised sentence per line, every sentence N words then " .":
#
#   training-monolingual.tokenized.shuffled/news.en-000{01..99}-of-00100
#       3 lines each, of 6, 8 and 10 words (+ ".")  -> 297 lines, 2673 words
#   heldout-monolingual.tokenized.shuffled/news.en.heldout-00000-of-00050 (test)
#       12 lines of 3..14 words (+ ".")             -> 12 lines, 114 words
#   .../news.en.heldout-00001-of-00050 (valid)      -> 8 lines of 9 words (+ "."): 80 words
#   .../news.en.heldout-000{02..49}-of-00050        -> 2 lines of 5 words (+ ".") each
#
# Words come from the fixture lexicon (English); besides, train holds
# "Zyxwv" once, "Qrstu" twice and "Mnopq" three times (each replaces a word,
# the counts above stay), and the test set holds "Unseenword", in no train
# line.  Members are written held-out shards first, 49 down to 0, then the
# odd training shards up and the even ones down, with the three folder
# entries first: the order of the tar, not of the names, is what a reader sees.
GBW_TOP = "1-billion-word-language-modeling-benchmark-r13output"
GBW_RARE = {"Zyxwv": [(7, 0)], "Qrstu": [(20, 1), (40, 2)], "Mnopq": [(5, 0), (50, 1), (95, 2)]}


def _gbw_words():
    return [e["en"] for cat in ("noun", "verb", "adj") for e in LEXICON[cat]]


def _gbw_sentence(rng, n_words, replace=None):
    words = [rng.choice(_gbw_words()) for _ in range(n_words)]
    words[0] = words[0].capitalize()
    if replace:
        words[1] = replace
    return " ".join(words + ["."])


def gbw_lm_shards(seed: int = 0) -> dict:
    """{("train", i) | ("heldout", i): [lines]} of the GBW fixture."""
    rng = random.Random(f"{seed}/gbw_lm")
    rare = {where: word for word, places in GBW_RARE.items() for where in places}
    shards = {}
    for i in range(1, 100):
        shards[("train", i)] = [_gbw_sentence(rng, 6 + 2 * j, rare.get((i, j))) for j in range(3)]
    shards[("heldout", 0)] = [_gbw_sentence(rng, 3 + k, "Unseenword" if k == 5 else None)
                              for k in range(12)]
    shards[("heldout", 1)] = [_gbw_sentence(rng, 9) for _ in range(8)]
    for i in range(2, 50):
        shards[("heldout", i)] = [_gbw_sentence(rng, 5) for _ in range(2)]
    return shards


def _gbw_member(kind, i):
    if kind == "train":
        return f"{GBW_TOP}/training-monolingual.tokenized.shuffled/news.en-{i:05d}-of-00100"
    return f"{GBW_TOP}/heldout-monolingual.tokenized.shuffled/news.en.heldout-{i:05d}-of-00050"


def _make_gbw_lm(dest, seed):
    shards = gbw_lm_shards(seed)
    order = ([("heldout", i) for i in range(49, -1, -1)] + [("train", i) for i in range(1, 100, 2)]
             + [("train", i) for i in range(98, 0, -2)])
    dirs = [GBW_TOP, f"{GBW_TOP}/training-monolingual.tokenized.shuffled",
            f"{GBW_TOP}/heldout-monolingual.tokenized.shuffled"]
    _tar_with_dirs(dest / datasets.GBW_ARCHIVE, dirs,
                   {_gbw_member(*key): _lines(shards[key]) for key in order})


# WikiText-103, in the layout of wikitext-103-v1.zip (a folder entry
# wikitext-103/ and wiki.{train,valid,test}.tokens in it).  Every line starts
# and ends with a space, as upstream; each article is 8 lines:
#
#   " "  " = Title Words = "  " "  paragraph A  " "  " = = Section = = "  " "  paragraph B
#
# i.e. 4 blank lines, a heading of 4 tokens, a section heading of 5 tokens,
# paragraph A of 30 tokens and B of 20 (words, "@-@", "@,@", "@.@", "<unk>"
# and punctuation, ending with "."): 59 words and 8 lines per article.
# Articles: train 30 (240 lines, 1770 words), valid 3 (24 lines, 177 words),
# test 4 (32 lines, 236 words).  The second word of the first train
# paragraph is "café" (UTF-8).
WIKITEXT_ARTICLES = {"train": 30, "valid": 3, "test": 4}
_WIKI_CHUNKS = (["1", "@,@", "000"], ["3", "@.@", "5"], ["<unk>"], [","], ["the"], ["of"])


def _wiki_paragraph(rng, n_tokens, second=None):
    words = _gbw_words()
    tokens = []
    while len(tokens) < n_tokens - 1:
        room = n_tokens - 1 - len(tokens)
        r = rng.random()
        if r < 0.15 and room >= 3:
            chunk = [rng.choice(words), "@-@", rng.choice(words)]
        elif r < 0.4:
            chunk = list(rng.choice(_WIKI_CHUNKS))
        else:
            chunk = [rng.choice(words)]
        tokens += chunk if len(chunk) <= room else [rng.choice(words)]
    tokens[0] = tokens[0].capitalize()
    if second:
        tokens[1] = second
    return " " + " ".join(tokens + ["."]) + " "


def wikitext103_lines(seed: int = 0) -> dict:
    """{split: [lines]} of the WikiText-103 fixture."""
    rng = random.Random(f"{seed}/wikitext103_lm")
    words = _gbw_words()
    out = {}
    for split, n in WIKITEXT_ARTICLES.items():
        lines = []
        for k in range(n):
            title = " ".join(w.capitalize() for w in rng.sample(words, 2))
            section = rng.choice(words).capitalize()
            first = "café" if split == "train" and k == 0 else None
            lines += [" ", f" = {title} = ", " ", _wiki_paragraph(rng, 30, first), " ",
                      f" = = {section} = = ", " ", _wiki_paragraph(rng, 20)]
        out[split] = lines
    return out


def _make_wikitext103(dest, seed):
    lines = wikitext103_lines(seed)
    with zipfile.ZipFile(dest / datasets.WIKITEXT103_ARCHIVE, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("wikitext-103/", date_time=(1980, 1, 1, 0, 0, 0)), b"")
        for split in ("train", "valid", "test"):
            z.writestr(zipfile.ZipInfo(f"wikitext-103/wiki.{split}.tokens", date_time=(1980, 1, 1, 0, 0, 0)),
                       _lines(lines[split]))


_MAKERS = {"iwslt14_de_en": _make_iwslt, "wmt16_en_de": _make_wmt16,
           "wmt14_en_fr": _make_wmt14, "wmt17_zh_en": _make_wmt17,
           "cnn_dailymail": _make_cnn_dailymail, "gbw_lm": _make_gbw_lm,
           "wikitext103_lm": _make_wikitext103}


def make_downloads(setting: str, dest: Path, *, seed: int = 0, google: bool = True) -> Path:
    """Write every archive of `setting` (optional ones included) into dest.

    google=False leaves out wmt16's wmt16_en_de.tar.gz (to test the raw route).
    """
    if setting not in _MAKERS:
        raise ValueError(f"unknown setting {setting!r} (choose from: {', '.join(_MAKERS)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if setting == "wmt16_en_de":
        _make_wmt16(dest, seed, google=google)
    else:
        _MAKERS[setting](dest, seed)
    expected = set(datasets.archive_names(setting)) - ({"wmt16_en_de.tar.gz"} if not google else set())
    written = {p.name for p in dest.iterdir()}
    assert expected <= written, f"fixture for {setting} lacks {sorted(expected - written)}"
    return dest


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


def corrupt(path: Path) -> Path:
    """Flip a few bytes in place; the size stays the same."""
    path = Path(path)
    data = bytearray(path.read_bytes())
    if not data:
        raise ValueError(f"corrupt: {path} is empty")
    for pos in {0, len(data) // 2, len(data) - 1}:
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut the file to `keep` of its size (as an interrupted download leaves it)."""
    path = Path(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fixture_checksums(dest: Path) -> dict[str, str]:
    """{file name: sha256} of every file in dest."""
    return {p.name: sha256_of(p) for p in sorted(Path(dest).iterdir()) if p.is_file()}


def write_checksum_file(dest: Path, path: Path | None = None) -> Path:
    """sha256sum-style file of dest's archives, for fetch.py --checksum-file.

    Written to `path` (default: dest/../SHA256SUMS.<dest name>, outside dest
    so that it is not taken for an archive).
    """
    dest = Path(dest)
    path = Path(path) if path else dest.parent / f"SHA256SUMS.{dest.name}"
    path.write_text("".join(f"{h}  {n}\n" for n, h in fixture_checksums(dest).items()))
    return path


# ------------------------------------------------------ released models ---
# The layout of the archives of Wu et al. (2019) as fairseq's hub loader reads
# them (fairseq/file_utils.py load_archive_file, hub_utils.from_pretrained):
# one top folder holding model.pt, dict.<src>.txt, dict.<tgt>.txt and the BPE
# codes; the binarised test sets (.tar.bz2) likewise hold one top folder with
# the test split and the same dictionaries. The top folders' names are not
# documented; the archive's name without its extension is used here.

def _top_folder(archive_name: str) -> str:
    return re.sub(r"\.tar\.(gz|bz2)$", "", archive_name)


def _tar_files(path: Path, top: str, files: dict[str, Path], mode: str):
    with tarfile.open(path, mode, format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)
        for name, src in files.items():
            data = Path(src).read_bytes()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))


def make_released_model(name: str, checkpoint: Path, bin_dir: Path, bpecodes: Path, dest: Path,
                        src: str, tgt: str) -> tuple[Path, Path]:
    """The model archive and binarised test-set archive of the release `name`
    (datasets.RELEASES), under their upstream names in dest, from a fairseq
    ``lightconv`` checkpoint and the fairseq-preprocess folder it was trained on.
    Returns (model archive, test-set archive)."""
    rel = datasets.RELEASES[name]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(bin_dir)
    dicts = {f"dict.{lang}.txt": bin_dir / f"dict.{lang}.txt" for lang in (src, tgt)}
    model = dest / rel.archive
    _tar_files(model, _top_folder(rel.archive),
               {"model.pt": checkpoint, **dicts, "bpecodes": bpecodes}, "w:gz")
    split = {f"test.{src}-{tgt}.{lang}.{ext}": bin_dir / f"test.{src}-{tgt}.{lang}.{ext}"
             for lang in (src, tgt) for ext in ("bin", "idx")}
    test_set = dest / rel.test_set
    _tar_files(test_set, _top_folder(rel.test_set), {**dicts, **split}, "w:bz2")
    return model, test_set
