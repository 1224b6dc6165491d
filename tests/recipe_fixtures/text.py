"""The synthetic text every fixture is written in, and its line layout.

A learnable synthetic parallel text: a fixed word lexicon shared by made-up
English-, German- and French-looking ASCII languages and real two-character
Chinese words (written without spaces), translated word for word in the same
order.  Sentences have 6-20 words and may contain one hyphenated compound
(hyphenated on every side but Chinese, so Moses ``-a`` splitting gives both
sides the same token count), an English ``doesn't`` (German ``nicht``, French
``ne ... pas``, Chinese ``不``) and French elision (``l'``).  Test sets (SGM and
IWSLT XML) also use the typographic apostrophe U+2019.

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
lexicon).
"""

from __future__ import annotations

import random

LANGS = ("en", "de", "fr", "zh")
BAD_LINES = {5: "empty_x", 17: "empty_en", 29: "long", 41: "long", 53: "short_x", 65: "short_en"}
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

