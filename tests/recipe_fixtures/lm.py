"""Fake language-modelling downloads: One Billion Word and WikiText-103."""

from __future__ import annotations

import random
import zipfile

from .archives import _lines, _tar_with_dirs
from .manifest import datasets
from .text import LEXICON

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
