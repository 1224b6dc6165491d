#!/usr/bin/env python
"""Stage 2 of the language-model recipes: an upstream archive -> train.txt, valid.txt, test.txt.

    python recipes/common/lm_prepare.py SETTING --downloads DIR --out DIR
        [--min-count N] [--valid-shard K]

SETTING is one of:

  gbw_lm          One Billion Word, from the r13output tarball: train = the 99
                  training shards news.en-000{01..99}-of-00100 in shard order;
                  test = news.en.heldout-00000-of-00050 (the benchmark's test
                  set); valid = held-out shard K (--valid-shard, default 1).
  wikitext103_lm  WikiText-103, from wikitext-103-v1.zip: wiki.{train,valid,test}.tokens.

Both corpora come tokenised and the models are word-level, so the text is
copied as it is, one line per line (GBW: a sentence; WikiText: a paragraph,
a heading or a blank line).  Writes into --out:

  train.txt valid.txt test.txt   for fairseq-preprocess --only-source
  prepare.json                   per split: lines, words, blank lines and the
                                 tokens fairseq-eval-lm scores (every word plus
                                 one end-of-sentence per line, blank lines
                                 included); the word types of train and how
                                 many occur at least --min-count times (the
                                 dictionary fairseq-preprocess --thresholdsrc
                                 N builds); written last, removed first

Two repairs, neither visible to fairseq's tokeniser, are counted in
prepare.json: a carriage return becomes a space (fairseq-preprocess reads text
with universal newlines and would end the line there, scoring one more
end-of-sentence than the benchmark), and invalid UTF-8 becomes U+FFFD
(fairseq-preprocess would stop on it).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import shutil
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textproc import READ_ERRORS, atomic_write, open_tar_stream, positive_int  # noqa: E402

SPLITS = ("train", "valid", "test")
GBW_ARCHIVE = "1-billion-word-language-modeling-benchmark-r13output.tar.gz"
GBW_TOP = "1-billion-word-language-modeling-benchmark-r13output"
GBW_TRAIN_SHARDS = range(1, 100)  # shard 00000 of 100 became the 50 held-out shards
GBW_HELDOUT_SHARDS = 50
WIKITEXT_ARCHIVE = "wikitext-103-v1.zip"
# fairseq's Dictionary starts with these: text tokens spelled so (WikiText's
# <unk>) count towards them and add no type.
FAIRSEQ_SPECIALS = frozenset({"<s>", "<pad>", "</s>", "<unk>"})


class PrepareError(RuntimeError):
    """Bad input: a missing or damaged archive, a missing member."""


def log(message: str) -> None:
    print(f"lm_prepare.py: {message}", file=sys.stderr, flush=True)


def gbw_train_member(i: int) -> str:
    return f"{GBW_TOP}/training-monolingual.tokenized.shuffled/news.en-{i:05d}-of-00100"


def gbw_heldout_member(i: int) -> str:
    return f"{GBW_TOP}/heldout-monolingual.tokenized.shuffled/news.en.heldout-{i:05d}-of-00050"


def wikitext_member(split: str) -> str:
    return f"wikitext-103/wiki.{split}.tokens"


@dataclasses.dataclass
class SplitStats:
    lines: int = 0
    words: int = 0
    blank_lines: int = 0
    carriage_returns: int = 0  # lines that had one
    invalid_utf8: int = 0  # lines that had some

    def clean(self, raw: bytes) -> str:
        """The line (without its newline) as written out; counted."""
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("utf-8", errors="replace")
            self.invalid_utf8 += 1
        if "\r" in line:
            line = line.replace("\r", " ")
            self.carriage_returns += 1
        n = len(line.split())
        self.lines += 1
        self.words += n
        self.blank_lines += n == 0
        return line

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        # fairseq-preprocess ends every line with </s>, and fairseq-eval-lm
        # scores each target token, that </s> included, as the benchmarks count.
        out["scored_tokens"] = self.words + self.lines
        return out


def copy_lines(data, dest, stats: SplitStats, counter: collections.Counter | None) -> None:
    """Lines of the binary stream `data` into the open text file `dest`."""
    for raw in data:
        line = stats.clean(raw)
        if counter is not None:
            counter.update(line.split())
        dest.write(line + "\n")


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def prepare_gbw(archive: Path, out: Path, valid_shard: int, counter: collections.Counter) -> dict:
    roles = {gbw_train_member(i): ("train", i) for i in GBW_TRAIN_SHARDS}
    roles[gbw_heldout_member(0)] = ("test", 0)
    roles[gbw_heldout_member(valid_shard)] = ("valid", valid_shard)
    stats = {split: SplitStats() for split in SPLITS}
    shards = out / ".train-shards"
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir()
    found = set()
    try:
        # One pass over the 1.7 GB tarball: the training shards go to
        # separate files, joined in shard order afterwards whatever the
        # order of the members.
        with open_tar_stream(archive) as tar:
            for info in tar:
                name = _member_name(info.name)
                if not info.isfile() or name not in roles:
                    continue
                split, shard = roles[name]
                path = shards / f"{shard:05d}" if split == "train" else out / f"{split}.txt"
                with atomic_write(path) as dest:
                    copy_lines(tar.extractfile(info), dest, stats[split],
                               counter if split == "train" else None)
                found.add(name)
                if split == "train" and len(found) % 10 == 0:
                    log(f"{len(found)} of {len(roles)} members read")
        missing = [name for name in roles if name not in found]
        if missing:
            raise PrepareError(f"{archive}: {len(missing)} member(s) missing, e.g. {missing[0]} "
                               "(is this the r13output tarball, complete?)")
        with atomic_write(out / "train.txt") as dest:
            for i in GBW_TRAIN_SHARDS:
                with open(shards / f"{i:05d}", encoding="utf-8", newline="\n") as src:
                    shutil.copyfileobj(src, dest, 1 << 20)
    finally:
        shutil.rmtree(shards, ignore_errors=True)
    return {
        "splits": {split: s.as_dict() for split, s in stats.items()},
        "sources": {"train": [gbw_train_member(GBW_TRAIN_SHARDS[0]) + " .. "
                              + gbw_train_member(GBW_TRAIN_SHARDS[-1]).rsplit("/", 1)[1] + " (in shard order)"],
                    "valid": [gbw_heldout_member(valid_shard)], "test": [gbw_heldout_member(0)]},
        "notes": "one sentence per line; test = news.en.heldout-00000-of-00050, the benchmark's; "
                 f"valid = held-out shard {valid_shard:05d} (the paper names none: a shard other than "
                 "the test one, so that choosing the checkpoint never sees the test set)",
    }


def prepare_wikitext(archive: Path, out: Path, counter: collections.Counter) -> dict:
    stats = {split: SplitStats() for split in SPLITS}
    with zipfile.ZipFile(archive) as zf:
        members = {_member_name(i.filename): i for i in zf.infolist() if not i.is_dir()}
        for split in SPLITS:
            member = wikitext_member(split)
            if member not in members:
                raise PrepareError(f"{archive}: no member {member} (is this wikitext-103-v1.zip?)")
            with zf.open(members[member]) as data, atomic_write(out / f"{split}.txt") as dest:
                copy_lines(data, dest, stats[split], counter if split == "train" else None)
    return {
        "splits": {split: s.as_dict() for split, s in stats.items()},
        "sources": {split: [wikitext_member(split)] for split in SPLITS},
        "notes": "the .tokens files as they are: headings ' = Title = ', blank lines, "
                 "@-@ @,@ @.@ and <unk> kept (word level)",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", choices=("gbw_lm", "wikitext103_lm"))
    parser.add_argument("--downloads", type=Path, required=True, help="folder with the upstream archive")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--min-count", type=positive_int, default=1,
                        help="count the train types seen at least this often (the dictionary of "
                             "fairseq-preprocess --thresholdsrc with the same number) [1]")
    parser.add_argument("--valid-shard", type=positive_int, default=1,
                        help=f"gbw_lm: held-out shard used as valid, 1..{GBW_HELDOUT_SHARDS - 1} [1]")
    args = parser.parse_args(argv)
    if args.valid_shard >= GBW_HELDOUT_SHARDS:
        parser.error(f"--valid-shard must be 1..{GBW_HELDOUT_SHARDS - 1} "
                     f"(0 is the test shard), got {args.valid_shard}")
    if not args.downloads.is_dir():
        parser.error(f"--downloads {args.downloads}: no such directory")
    name = GBW_ARCHIVE if args.setting == "gbw_lm" else WIKITEXT_ARCHIVE
    archive = args.downloads / name
    args.out.mkdir(parents=True, exist_ok=True)
    done = args.out / "prepare.json"
    done.unlink(missing_ok=True)  # no prepare.json: unfinished
    counter = collections.Counter()
    try:
        if not archive.is_file():
            raise PrepareError(f"missing {archive} -- run stage 1 (download) first, or pass --downloads DIR")
        if args.setting == "gbw_lm":
            report = prepare_gbw(archive, args.out, args.valid_shard, counter)
        else:
            report = prepare_wikitext(archive, args.out, counter)
    except READ_ERRORS as exc:
        print(f"lm_prepare.py {args.setting}: error: {archive}: truncated or corrupt archive ({exc})",
              file=sys.stderr)
        return 1
    except PrepareError as exc:
        print(f"lm_prepare.py {args.setting}: error: {exc}", file=sys.stderr)
        return 1
    types = [w for w in counter if w not in FAIRSEQ_SPECIALS]
    report = {
        "setting": args.setting, "archive": name, **report,
        "lines": {split: s["lines"] for split, s in report["splits"].items()},
        "vocabulary": {"train_types": len(types), "min_count": args.min_count,
                       "kept_types": sum(counter[w] >= args.min_count for w in types),
                       "note": "word types of train.txt, fairseq's special symbols (<unk> ...) "
                               "not counted; kept: seen at least min_count times"},
    }
    with atomic_write(done) as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    s = report["splits"]
    log(f"done: {args.out}: lines train {s['train']['lines']}, valid {s['valid']['lines']}, "
        f"test {s['test']['lines']}; test tokens scored {s['test']['scored_tokens']} "
        f"({s['test']['words']} words + {s['test']['lines']} end-of-sentence); "
        f"{report['vocabulary']['kept_types']} of {len(types)} train types kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
