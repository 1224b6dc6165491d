#!/usr/bin/env python
"""Stage 2 of the summarisation recipe: CNN-DailyMail stories -> text for fairseq-preprocess.

    python recipes/common/summarize_prepare.py cnn_dailymail --downloads DIR --out DIR
        [--workers N] [--bpe-merges N] [--max-article-tokens N] [--cased]

Reads from --downloads (nothing is downloaded) cnn_stories.tgz and
dailymail_stories.tgz (members cnn/stories/<sha1>.story,
dailymail/stories/<sha1>.story) and See et al.'s URL lists all_train.txt,
all_val.txt, all_test.txt: the story of a URL is the file named by the SHA-1 of
the URL in hex.  Writes into --out:

  {train,valid,test}.{article,summary}  tokenised, lowercased, BPE applied, in URL-list order
                                        (fairseq-preprocess --source-lang article --target-lang summary)
  bpecodes                              joint BPE codes (fairseq --bpe subword_nmt --bpe-codes)
  test.raw.summary                      reference summaries as in the story files: one per line,
                                        highlights separated by " <q> " (rouge.py splits on it)
  prepare.json                          options and counts; written last

Processing (See et al.'s make_datafiles.py, then Wu et al.):

* a .story file: lines stripped; blank lines skipped; every line before the
  first "@highlight" line is article text, every non-blank line after it a
  highlight (See et al.'s rule: not only the line after each marker);
* a line whose last character is not sentence-final gets " ." (see
  SENTENCE_FINAL for the set and why ")" is not in it);
* each line Moses-tokenised (sacremoses, no -a, no escaping), then lowercased
  (See et al.'s data is lowercased; Wu et al. cite it and say nothing else);
  article = its lines joined, cut to its first 400 tokens (See et al.; Wu et
  al.); summary = the highlights joined, not cut;
* a story with an empty article or no highlight is dropped, in every split
  (See et al.'s data loader skips empty articles; TFDS and Hugging Face drop
  both kinds, which is how the standard 287,113 / 13,368 / 11,490 arise);
  a listed URL with no story is counted as missing; both reported per split;
* joint BPE (subword-nmt) with 30,000 merges learnt on train.article +
  train.summary (truncated articles: what the model reads), applied to all.

Tokeniser: See et al. used Stanford CoreNLP's PTBTokenizer (Java).  Moses is
used here, as in the translation recipes: the differences (PTB writes
-lrb- -rrb- `` '' and splits "do n't") vanish under ROUGE, whose tokeniser
keeps only [a-z0-9] runs, and the 400-token cut moves by a few tokens.

Each output appears under its final name only when complete; prepare.json is
removed first and written last, so a folder without it holds an unfinished run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textproc import (  # noqa: E402
    READ_ERRORS, ArchiveError, atomic_write, open_tar_stream, positive_int, read_lines, write_lines)
from textproc_tok import BpeApplier, ParallelMapper, Tokenizer, learn_joint_bpe  # noqa: E402

SETTING = "cnn_dailymail"
ARCHIVES = ("cnn_stories.tgz", "dailymail_stories.tgz")
# Output split name -> See et al.'s URL list.
URL_LISTS = {"train": "all_train.txt", "valid": "all_val.txt", "test": "all_test.txt"}
MERGES = 30000
MAX_ARTICLE_TOKENS = 400
SENTENCE_SEP = " <q> "
HIGHLIGHT = "@highlight"

# See et al. test line[-1] against . ! ? ' ` " \u2019 \u201d ) -- on text that
# PTBTokenizer had already rewritten: ")" had become "-rrb-" (so a line ending
# in a parenthesis did get " ." in their data) and "\u2026" had become "..."
# (so it did not).  Their check is reproduced on raw text with that mapping.
SENTENCE_FINAL = frozenset(".!?'`\"\u2019\u201d\u2026")

_SPACES = re.compile(r"\s+")
_STORY_NAME = re.compile(r"(?:^|/)([0-9a-f]{40})\.story$")


class PrepareError(RuntimeError):
    """Bad input: a missing archive or URL list, an empty split."""


def log(msg: str) -> None:
    print(f"summarize_prepare: {msg}", file=sys.stderr, flush=True)


# --- one story ------------------------------------------------------------

def fix_missing_period(line: str) -> str:
    """See et al.: a non-empty line not ending a sentence gets " ."."""
    if not line or HIGHLIGHT in line or line[-1] in SENTENCE_FINAL:
        return line
    return line + " ."


def parse_story(text: str, fix_periods: bool = True) -> tuple[list[str], list[str]]:
    """(article lines, highlights) of a .story file's text, whitespace collapsed."""
    article, highlights, in_highlights = [], [], False
    for line in text.split("\n"):
        line = _SPACES.sub(" ", line).strip()
        if fix_periods:
            line = fix_missing_period(line)
        if not line:
            continue
        if line.startswith(HIGHLIGHT):
            in_highlights = True
        elif in_highlights:
            highlights.append(line)
        else:
            article.append(line)
    return article, highlights


def story_hash(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()


@dataclass
class StoryProcessor:
    """'<sha1>\\n<story text>' -> '<sha1>\\t<JSON record>'; picklable for ParallelMapper."""

    lowercase: bool = True
    max_article_tokens: int = MAX_ARTICLE_TOKENS
    tokenizer: Tokenizer = field(default_factory=lambda: Tokenizer("en"))

    def tokenize(self, line: str) -> str:
        line = self.tokenizer(line)
        # Tokenised cased: Moses keeps "word." whole before a lowercase word.
        return line.lower() if self.lowercase else line

    def process(self, text: str) -> dict:
        article_lines, highlights = parse_story(text)
        article = " ".join(self.tokenize(line) for line in article_lines).split()
        summary = " ".join(self.tokenize(line) for line in highlights).split()
        raw = parse_story(text, fix_periods=False)[1]
        return {"article": " ".join(article[:self.max_article_tokens]),
                "summary": " ".join(summary), "raw_summary": SENTENCE_SEP.join(raw),
                "article_tokens": len(article)}

    def __call__(self, item: str) -> str:
        key, _, text = item.partition("\n")
        return f"{key}\t{json.dumps(self.process(text), ensure_ascii=False)}"


def drop_reason(record: dict) -> str | None:
    """Why a processed story is not used: first of empty_article, no_highlight."""
    if not record["article"]:
        return "empty_article"
    if not record["summary"]:
        return "no_highlight"
    return None


# --- inputs ---------------------------------------------------------------

def find_input(downloads: Path, name: str):
    """The file `name` in downloads, or the sorted list of its parts NAME.00, ..."""
    path = downloads / name
    if path.is_file():
        return path
    parts = sorted(downloads.glob(f"{name}.[0-9][0-9]"))
    if parts:
        return parts
    hint = ""
    try:
        import datasets  # recipes/common/datasets.py: first on sys.path
        hint = f" -- download {datasets.archive(SETTING, name).url} (or run stage 1)"
    except (ImportError, ValueError, AttributeError):
        pass
    raise PrepareError(f"missing {name} in {downloads}{hint}")


def read_url_list(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
            urls = [line.strip() for line in f]
    except OSError as exc:
        raise PrepareError(f"{path}: {exc.strerror}") from None
    urls = [u for u in urls if u]
    if not urls:
        raise PrepareError(f"{path}: no URL in it (is this See et al.'s URL list?)")
    return urls


def iter_stories(archive):
    """(sha1, text) of every <sha1>.story member; other members are skipped."""
    n = 0
    try:
        with open_tar_stream(archive) as tar:
            for info in tar:
                match = _STORY_NAME.search(info.name) if info.isfile() else None
                if not match:
                    continue
                data = tar.extractfile(info).read()
                n += 1
                yield match.group(1), data.decode("utf-8", errors="replace").lstrip("\ufeff")
    except READ_ERRORS as exc:
        name = archive[0] if isinstance(archive, list) else archive
        raise ArchiveError(f"{name}: truncated or corrupt archive ({exc})") from exc
    if n == 0:
        raise ArchiveError(f"{archive}: no <sha1>.story member (is this a CNN-DailyMail stories archive?)")


# --- the pipeline ---------------------------------------------------------


class SummarizePreparer:
    def __init__(self, downloads: Path, out: Path, workers: int = 1, merges: int = MERGES,
                 max_article_tokens: int = MAX_ARTICLE_TOKENS, lowercase: bool = True):
        self.downloads, self.out, self.workers, self.merges = downloads, out, workers, merges
        self.processor = StoryProcessor(lowercase=lowercase, max_article_tokens=max_article_tokens)
        self.tmp = out / ".prepare-tmp"

    def describe(self) -> dict:
        return {
            "setting": SETTING, "source_lang": "article", "target_lang": "summary",
            "lowercase": self.processor.lowercase, "bpe_merges": self.merges, "bpe": "joint (subword-nmt)",
            "tokenizer": self.processor.tokenizer.options(),
            "max_article_tokens": self.processor.max_article_tokens,
            "sentence_final": "".join(sorted(SENTENCE_FINAL)),
            "reference_sentence_separator": SENTENCE_SEP.strip(),
            "workers": self.workers,
            "notes": "See et al. make_datafiles.py (period fix, article/highlight split, lowercase), "
                     "Moses instead of PTBTokenizer, article cut to its first N tokens, stories with "
                     "an empty article or no highlight dropped in every split (TFDS, Hugging Face); "
                     "joint BPE on train article+summary (Wu et al.: 30k)",
        }

    def run(self) -> dict:
        inputs = {name: find_input(self.downloads, name) for name in (*ARCHIVES, *URL_LISTS.values())}
        report = self.describe()
        wanted, lists = {}, {}
        for split, name in URL_LISTS.items():
            urls = read_url_list(inputs[name])
            lists[split] = [story_hash(u) for u in urls]
            for h in lists[split]:
                wanted.setdefault(h, set()).add(split)
            log(f"{name}: {len(urls)} URLs")
        report["urls_in_several_lists"] = sum(len(s) > 1 for s in wanted.values())
        if report["urls_in_several_lists"]:
            log(f"warning: {report['urls_in_several_lists']} URLs are in more than one list")

        offsets, per_archive, unlisted, duplicates = self._process_archives(inputs, wanted)
        report["archives"] = per_archive
        report["unlisted_stories"] = unlisted
        report["duplicate_stories"] = duplicates
        report["splits"], report["lines"] = {}, {}
        for split, hashes in lists.items():
            stats = self._write_split(split, hashes, offsets)
            report["splits"][split] = stats
            report["lines"][split] = stats["stories"]
            if not stats["stories"]:
                raise PrepareError(f"{URL_LISTS[split]}: none of its {len(hashes)} URLs has a usable story "
                                   "in the archives (wrong archives or list?)")
            log(f"{split}: {stats['stories']} stories ({stats['missing']} missing, "
                f"dropped {stats['dropped']}, {stats['truncated']} articles truncated)")
        self._bpe()
        return report

    def _process_archives(self, inputs, wanted):
        """Every listed story, processed, as one JSON line in tmp/stories.jsonl (archive order);
        returns {sha1: byte offset}, per-archive counts, unlisted and duplicate counts."""
        offsets, per_archive, unlisted, duplicates = {}, {}, 0, 0
        seen: set = set()
        mapper = ParallelMapper(self.processor, self.workers, chunk_size=200)
        try:
            with open(self.tmp / "stories.jsonl", "wb") as out:
                for name in ARCHIVES:
                    counts = {"stories": 0, "listed": 0}

                    def items():
                        nonlocal unlisted, duplicates
                        for key, text in iter_stories(inputs[name]):
                            counts["stories"] += 1
                            if key not in wanted:
                                unlisted += 1
                            elif key in seen:
                                duplicates += 1
                            else:
                                seen.add(key)
                                counts["listed"] += 1
                                yield f"{key}\n{text}"

                    for line in mapper.map(items()):
                        key, _, record = line.partition("\t")
                        offsets[key] = out.tell()
                        out.write(record.encode("utf-8") + b"\n")
                    per_archive[name] = counts
                    log(f"{name}: {counts['stories']} stories, {counts['listed']} listed")
        finally:
            mapper.close()
        return offsets, per_archive, unlisted, duplicates

    def _write_split(self, split: str, hashes: list[str], offsets: dict) -> dict:
        stats = {"urls": len(hashes), "stories": 0, "missing": 0,
                 "dropped": {"empty_article": 0, "no_highlight": 0}, "truncated": 0}
        limit = self.processor.max_article_tokens
        paths = {k: self.tmp / f"{split}.tok.{k}" for k in ("article", "summary")}
        with contextlib.ExitStack() as stack:
            records = stack.enter_context(open(self.tmp / "stories.jsonl", "rb"))
            fa = stack.enter_context(atomic_write(paths["article"]))
            fs = stack.enter_context(atomic_write(paths["summary"]))
            f_raw = stack.enter_context(atomic_write(self.out / "test.raw.summary")) if split == "test" else None
            for h in hashes:
                if h not in offsets:
                    stats["missing"] += 1
                    continue
                records.seek(offsets[h])
                record = json.loads(records.readline())
                reason = drop_reason(record)
                if reason:
                    stats["dropped"][reason] += 1
                    continue
                stats["stories"] += 1
                stats["truncated"] += record["article_tokens"] > limit
                fa.write(record["article"] + "\n")
                fs.write(record["summary"] + "\n")
                if f_raw:
                    f_raw.write(record["raw_summary"] + "\n")
        return stats

    def _bpe(self) -> None:
        codes = self.out / "bpecodes"
        log(f"learning {self.merges} joint BPE merges on train.article + train.summary")
        with atomic_write(codes) as f:
            learn_joint_bpe([self.tmp / "train.tok.article", self.tmp / "train.tok.summary"], f, self.merges)
        with ParallelMapper(BpeApplier(codes), self.workers) as applier:
            for split in URL_LISTS:
                for side in ("article", "summary"):
                    write_lines(self.out / f"{split}.{side}",
                                 applier.map(read_lines(self.tmp / f"{split}.tok.{side}")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Stage 2 of the summarisation recipe: CNN-DailyMail stories -> text for fairseq-preprocess.")
    parser.add_argument("setting", choices=[SETTING])
    parser.add_argument("--downloads", type=Path, required=True,
                        help="folder with the story archives and the URL lists")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--workers", type=positive_int, default=min(8, os.cpu_count() or 1),
                        help="tokeniser/BPE processes [%(default)s]")
    parser.add_argument("--bpe-merges", type=positive_int, default=MERGES,
                        help="joint BPE merge operations [%(default)s]")
    parser.add_argument("--max-article-tokens", type=positive_int, default=MAX_ARTICLE_TOKENS,
                        help="articles are cut to this many tokens [%(default)s]")
    parser.add_argument("--cased", action="store_true", help="do not lowercase (See et al. did)")
    args = parser.parse_args(argv)
    if not args.downloads.is_dir():
        parser.error(f"--downloads {args.downloads}: no such directory")

    args.out.mkdir(parents=True, exist_ok=True)
    done = args.out / "prepare.json"
    done.unlink(missing_ok=True)
    preparer = SummarizePreparer(args.downloads, args.out, args.workers, args.bpe_merges,
                                 args.max_article_tokens, lowercase=not args.cased)
    shutil.rmtree(preparer.tmp, ignore_errors=True)
    preparer.tmp.mkdir()
    try:
        report = preparer.run()
    except (PrepareError, ArchiveError) as exc:
        print(f"summarize_prepare.py {args.setting}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(preparer.tmp, ignore_errors=True)
    with atomic_write(done) as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    lines = report["lines"]
    log(f"done: {args.out}: train {lines['train']}, valid {lines['valid']}, test {lines['test']} stories")
    return 0


if __name__ == "__main__":
    sys.exit(main())
