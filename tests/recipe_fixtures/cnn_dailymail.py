"""Fake CNN-DailyMail downloads: the story archives and See et al.'s URL lists."""

from __future__ import annotations

import dataclasses
import hashlib
import random

from .archives import _lines, _tar_with_dirs
from .text import LEXICON, _sentence

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


