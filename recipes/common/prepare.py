#!/usr/bin/env python
"""Stage 2 of the translation recipes: upstream archives -> text for fairseq-preprocess.

    python recipes/common/prepare.py SETTING --downloads DIR --out DIR [--workers N] [--bpe-merges N]

Reads the upstream archives, under their upstream file names, from --downloads
(nothing is downloaded) and writes into --out:

  train.{S,T} valid.{S,T} test.{S,T}  tokenised, cleaned, BPE applied (S, T: language codes)
  bpecodes                            BPE codes (fairseq --bpe subword_nmt --bpe-codes)
  test.raw.{S,T}                      the test set as in the SGM/XML files
  test.tok.T                          tokenised reference without BPE
  prepare.json                        settings, options and line counts; written last

Each file appears under its final name only when complete, and prepare.json
is removed at the start and written at the end: a directory without it holds
an unfinished run.  Each setting's processing is described by its Plan below.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from textproc import (  # noqa: E402
    ArchiveError, CleanStats, atomic_write, clean_pairs, iter_member_lines, list_members,
    parse_iwslt_tags, parse_seg_lines, positive_int, read_lines, write_lines)
from textproc_tok import BpeApplier, ParallelMapper, Tokenizer, learn_joint_bpe  # noqa: E402


class PrepareError(RuntimeError):
    """Bad input: a missing archive, mismatched line counts, a bad option."""


# --- the settings -------------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """A parallel training corpus: one member per language in one archive."""
    label: str
    archive: str | tuple[str, ...]  # upstream file name, or alternatives
    members: dict
    reader: str = "plain"  # or "iwslt_tags"


@dataclass(frozen=True)
class EvalSet:
    """A dev/test set; members[lang] lists candidate member names, first found wins."""
    label: str
    archive: str
    members: dict


@dataclass(frozen=True)
class Plan:
    name: str
    src: str
    tgt: str
    merges: int
    train: tuple
    test_sets: tuple
    train_tokenizers: dict
    eval_tokenizers: dict
    valid_sets: tuple = ()
    valid_every: int | None = None  # valid = every Nth training pair
    clean_before_bpe: tuple | None = None  # (min, max, ratio)
    clean_after_bpe: tuple | None = None  # train (and valid when split from train)
    lowercase: bool = False
    cwmt: bool = False  # add the CWMT zips (each holds one or more text pairs)
    google_tarball: str | None = None
    alternative: str = ""  # said when an archive is missing
    notes: str = ""

    def archives(self) -> list:
        names = [c.archive for c in self.train] + [e.archive for e in self.test_sets + self.valid_sets]
        if self.cwmt:
            names += [f"{name}.zip" for name in CWMT]
        return list(dict.fromkeys(names))

    def with_merges(self, merges: int) -> "Plan":
        return dataclasses.replace(self, merges=merges)

    def with_escape(self, escape: bool) -> "Plan":
        def redo(toks):
            return {lang: dataclasses.replace(t, escape=escape) for lang, t in toks.items()}
        return dataclasses.replace(self, train_tokenizers=redo(self.train_tokenizers),
                                   eval_tokenizers=redo(self.eval_tokenizers))

    def describe(self, workers: int) -> dict:
        def clean(rule):
            return rule and dict(zip(("min_tokens", "max_tokens", "ratio"), rule))
        return {
            "setting": self.name, "source_lang": self.src, "target_lang": self.tgt,
            "lowercase": self.lowercase, "bpe_merges": self.merges, "bpe": "joint (subword-nmt)",
            "tokenizer": {"train": {k: t.options() for k, t in self.train_tokenizers.items()},
                          "valid_test": {k: t.options() for k, t in self.eval_tokenizers.items()}},
            "valid": (f"every training pair whose 1-based number is a multiple of {self.valid_every} "
                      "(removed from train)"
                      if self.valid_every else [e.label for e in self.valid_sets]),
            "test": [e.label for e in self.test_sets],
            "clean_rules": {"before_bpe": clean(self.clean_before_bpe),
                            "after_bpe": clean(self.clean_after_bpe)},
            "workers": workers, "notes": self.notes,
        }


def _pair(src: str, tgt: str, pattern: str) -> dict:
    return {lang: pattern.format(lang=lang) for lang in (src, tgt)}


def _iwslt14() -> Plan:
    tests = ("TED.dev2010", "TEDX.dev2012", "TED.tst2010", "TED.tst2011", "TED.tst2012")
    return Plan(
        name="iwslt14_de_en", src="de", tgt="en", merges=10000, lowercase=True,
        train=(Corpus("train.tags", "de-en.tgz", _pair("de", "en", "de-en/train.tags.de-en.{lang}"),
                      reader="iwslt_tags"),),
        test_sets=tuple(EvalSet(t, "de-en.tgz", {lang: (f"de-en/IWSLT14.{t}.de-en.{lang}.xml",)
                                                 for lang in ("de", "en")}) for t in tests),
        train_tokenizers={lang: Tokenizer(lang, lowercase=True) for lang in ("de", "en")},
        eval_tokenizers={lang: Tokenizer(lang, lowercase=True, apostrophe=True) for lang in ("de", "en")},
        valid_every=23, clean_before_bpe=(1, 175, 1.5),
        notes="fairseq prepare-iwslt14.sh: tokenise, clean 1..175 ratio 1.5, lowercase, "
              "valid = every 23rd cleaned pair, test = dev2010+TEDX.dev2012+tst2010+tst2011+tst2012")


def _wmt16() -> Plan:
    langs = ("en", "de")
    return Plan(
        name="wmt16_en_de", src="en", tgt="de", merges=32000,
        google_tarball="wmt16_en_de.tar.gz",
        alternative="or put Google's preprocessed wmt16_en_de.tar.gz there instead",
        train=(
            Corpus("europarl-v7", ("training-parallel-europarl-v7.tgz", "de-en.tgz"),
                   _pair("en", "de", "europarl-v7.de-en.{lang}")),
            Corpus("commoncrawl", "training-parallel-commoncrawl.tgz",
                   _pair("en", "de", "commoncrawl.de-en.{lang}")),
            Corpus("news-commentary-v11", "training-parallel-nc-v11.tgz",
                   _pair("en", "de", "news-commentary-v11.de-en.{lang}")),
        ),
        valid_sets=(EvalSet("newstest2013", "dev.tgz", {
            "en": ("newstest2013-src.en.sgm", "newstest2013-ref.en.sgm", "newstest2013.en"),
            "de": ("newstest2013-ref.de.sgm", "newstest2013-src.de.sgm", "newstest2013.de")}),),
        test_sets=(EvalSet("newstest2014", "dev.tgz", {
            "en": ("newstest2014-deen-src.en.sgm", "newstest2014-deen-ref.en.sgm"),
            "de": ("newstest2014-deen-ref.de.sgm", "newstest2014-deen-src.de.sgm")}),),
        train_tokenizers={lang: Tokenizer(lang) for lang in langs},
        eval_tokenizers={lang: Tokenizer(lang) for lang in langs},
        clean_before_bpe=(1, 80, 9.0),
        notes="Google's wmt16_en_de.sh, rebuilt: Moses tokenizer (no -a, no normalisation), "
              "clean 1..80 with clean-corpus-n's default ratio 9, joint BPE 32000 on train; "
              "valid newstest2013, test newstest2014 (tokenised, BPE, not cleaned)")


def _wmt14_en_fr() -> Plan:
    langs = ("en", "fr")
    corpora = (
        ("europarl-v7", "training-parallel-europarl-v7.tgz", "training/europarl-v7.fr-en.{lang}", "wmt13"),
        ("commoncrawl", "training-parallel-commoncrawl.tgz", "commoncrawl.fr-en.{lang}", "wmt13"),
        ("un", "training-parallel-un.tgz", "un/undoc.2000.fr-en.{lang}", "wmt13"),
        ("news-commentary-v9", "training-parallel-nc-v9.tgz", "training/news-commentary-v9.fr-en.{lang}", "wmt14"),
        ("giga-fren", "training-giga-fren.tar", "giga-fren.release2.fixed.{lang}.gz", "wmt10"),
    )
    return Plan(
        name="wmt14_en_fr", src="en", tgt="fr", merges=40000,
        train=tuple(Corpus(label, archive, _pair("en", "fr", member)) for label, archive, member, _ in corpora),
        test_sets=(EvalSet("newstest2014", "test-full.tgz", {
            "en": ("test-full/newstest2014-fren-src.en.sgm",),
            "fr": ("test-full/newstest2014-fren-ref.fr.sgm",)}),),
        train_tokenizers={lang: Tokenizer(lang, normalize=True, remove_non_printing=True, aggressive=True)
                          for lang in langs},
        eval_tokenizers={lang: Tokenizer(lang, aggressive=True, apostrophe=True) for lang in langs},
        valid_every=1333, clean_after_bpe=(1, 250, 1.5),
        notes="fairseq prepare-wmt14en2fr.sh: normalise punctuation, remove non-printing, tokenise -a; "
              "valid = every 1333rd pair; joint BPE 40000; clean train and valid after BPE 1..250 ratio 1.5")


UN_ZH = "UNv1.0.en-zh.tar.gz"
CWMT = ("casia2015", "casict2011", "casict2015", "datum2015", "datum2017", "neu2017")


def _wmt17_zh_en() -> Plan:
    zh_tok = Tokenizer("zh", remove_non_printing=True, segmenter="jieba")
    return Plan(
        name="wmt17_zh_en", src="zh", tgt="en", merges=32000, cwmt=True,
        train=(
            Corpus("news-commentary-v12", "training-parallel-nc-v12.tgz",
                   _pair("zh", "en", "training/news-commentary-v12.zh-en.{lang}")),
            Corpus("un-v1.0", UN_ZH, {"zh": "en-zh/UNv1.0.en-zh.zh", "en": "en-zh/UNv1.0.en-zh.en"}),
        ),
        valid_sets=(EvalSet("newsdev2017", "dev.tgz", {
            "zh": ("newsdev2017-zhen-src.zh.sgm",), "en": ("newsdev2017-zhen-ref.en.sgm",)}),),
        test_sets=(EvalSet("newstest2017", "test.tgz", {
            "zh": ("newstest2017-zhen-src.zh.sgm",), "en": ("newstest2017-zhen-ref.en.sgm",)}),),
        train_tokenizers={"zh": zh_tok, "en": Tokenizer("en", normalize=True, remove_non_printing=True,
                                                        aggressive=True)},
        eval_tokenizers={"zh": zh_tok, "en": Tokenizer("en", aggressive=True, apostrophe=True)},
        clean_after_bpe=(1, 250, 1.5),
        notes="no public recipe; choices: jieba for Chinese, Moses normalise+tokenise -a for English "
              "(as fairseq's WMT recipes), joint BPE 32000 (separate dictionaries at fairseq-preprocess), "
              "clean train after BPE 1..250 ratio 1.5, valid newsdev2017, test newstest2017; "
              "training data = News Commentary v12 + UN v1.0 + the six CWMT zips")


SETTINGS = {p.name: p for p in (_iwslt14(), _wmt16(), _wmt14_en_fr(), _wmt17_zh_en())}


def _how_to_get(setting: str, name: str) -> str:
    # The stage-1 manifest (datasets.py) knows each archive's URL or manual route.
    try:
        import datasets
        archive = datasets.archive(setting, name)
    except (ImportError, ValueError, AttributeError):
        return ""
    return archive.how_to_get if archive.manual else f"download {archive.url}"


def find_archive(downloads: Path, names, plan: Plan):
    """Path of the first of `names` in `downloads`, or the list of its parts
    (NAME.00, NAME.01, ...) when only those are there."""
    names = (names,) if isinstance(names, str) else tuple(names)
    for name in names:
        path = downloads / name
        if path.is_file():
            return path
        parts = sorted(downloads.glob(f"{name}.[0-9][0-9]"))
        if parts:
            return parts
    hints = [h for h in (_how_to_get(plan.name, names[0]), plan.alternative) if h]
    alt = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
    raise PrepareError(f"missing {names[0]}{alt} in {downloads}" + (f" -- {'; '.join(hints)}" if hints else ""))


# --- the pipeline -------------------------------------------------------------

def log(msg: str) -> None:
    print(f"prepare: {msg}", file=sys.stderr, flush=True)


def _write_pairs(paths, pairs) -> int:
    n = 0
    with atomic_write(paths[0]) as fs, atomic_write(paths[1]) as ft:
        for s, t in pairs:
            fs.write(s + "\n")
            ft.write(t + "\n")
            n += 1
    return n


class Preparer:
    """Raw corpora -> outputs; intermediate files live in OUT/.prepare-tmp."""

    def __init__(self, plan: Plan, downloads: Path, out: Path, workers: int):
        self.plan, self.downloads, self.out, self.workers = plan, downloads, out, workers
        self.tmp = out / ".prepare-tmp"
        self._members: dict = {}
        self._mappers: dict = {}

    def mapper(self, func) -> ParallelMapper:
        """One pool per tokeniser, kept for every file it processes."""
        key = id(func)
        if key not in self._mappers:
            self._mappers[key] = (func, ParallelMapper(func, self.workers))
        return self._mappers[key][1]

    def close(self) -> None:
        for _, mapper in self._mappers.values():
            mapper.close()
        self._mappers.clear()

    def archive(self, names):
        return find_archive(self.downloads, names, self.plan)

    def members(self, archive) -> list[str]:
        key = str(archive)
        if key not in self._members:
            self._members[key] = list_members(archive)
        return self._members[key]

    def _stems(self, stem: str, directory: Path | None = None):
        directory = directory or self.tmp
        return directory / f"{stem}.{self.plan.src}", directory / f"{stem}.{self.plan.tgt}"

    def _pairs(self, stem: str):
        a, b = self._stems(stem)
        return zip(read_lines(a), read_lines(b))

    # --- dev/test sets --------------------------------------------------
    def _eval_lines(self, eval_set: EvalSet, lang: str) -> list[str]:
        archive = self.archive(eval_set.archive)
        candidates = eval_set.members[lang]
        member = candidates[0]
        if len(candidates) > 1:
            names = {m.rsplit("/", 1)[-1] for m in self.members(archive)}
            found = [c for c in candidates if c.rsplit("/", 1)[-1] in names]
            if not found:
                raise ArchiveError(f"{archive}: has none of {', '.join(candidates)}")
            member = found[0]
        lines = iter_member_lines(archive, member)
        if member.endswith((".sgm", ".xml")):
            lines = parse_seg_lines(lines)
        lines = list(lines)
        log(f"{eval_set.label}.{lang}: {len(lines)} segments ({member})")
        return lines

    def eval_split(self, split: str, eval_sets) -> int:
        """Concatenated sets -> tmp/{split}.pre.*; test also -> test.raw.*, test.tok.TGT."""
        plan, counts = self.plan, {}
        for lang in (plan.src, plan.tgt):
            raw = [line for es in eval_sets for line in self._eval_lines(es, lang)]
            counts[lang] = len(raw)
            tok = list(self.mapper(plan.eval_tokenizers[lang]).map(raw))
            write_lines(self.tmp / f"{split}.pre.{lang}", tok)
            if split == "test":
                write_lines(self.out / f"test.raw.{lang}", raw)
                if lang == plan.tgt:
                    write_lines(self.out / f"test.tok.{lang}", tok)
        if counts[plan.src] != counts[plan.tgt]:
            raise PrepareError(f"{split} set ({', '.join(e.label for e in eval_sets)}): "
                               f"{counts[plan.src]} {plan.src} segments but {counts[plan.tgt]} {plan.tgt}")
        return counts[plan.src]

    # --- training corpora -----------------------------------------------
    def train_corpora(self) -> list[Corpus]:
        corpora = list(self.plan.train)
        if self.plan.cwmt:
            corpora += self._cwmt_corpora()
        return corpora

    def _cwmt_corpora(self) -> list[Corpus]:
        """In each CWMT zip, X_ch.txt or X_cn.txt pairs with X_en.txt."""
        corpora = []
        for name in CWMT:
            archive = self.archive(f"{name}.zip")
            by_stem: dict = {}
            for member in self.members(archive):
                match = re.match(r"(.*)_(ch|cn|en)\.txt$", member)
                if match:
                    by_stem.setdefault(match.group(1), {})["en" if match.group(2) == "en" else "zh"] = member
            pairs = {stem: sides for stem, sides in sorted(by_stem.items()) if len(sides) == 2}
            if not pairs:
                raise ArchiveError(f"{archive}: no X_ch.txt (or X_cn.txt) + X_en.txt pair in it")
            corpora += [Corpus(f"cwmt/{stem.rsplit('/', 1)[-1]}", f"{name}.zip", sides)
                        for stem, sides in pairs.items()]
        return corpora

    def _corpus_lines(self, corpus: Corpus, lang: str):
        lines = iter_member_lines(self.archive(corpus.archive), corpus.members[lang])
        return parse_iwslt_tags(lines) if corpus.reader == "iwslt_tags" else lines

    def tokenise_train(self) -> dict:
        plan, counts = self.plan, {}
        corpora = self.train_corpora()
        for lang in (plan.src, plan.tgt):
            with atomic_write(self.tmp / f"train.tok.{lang}") as f:
                for corpus in corpora:
                    n = 0
                    for line in self.mapper(plan.train_tokenizers[lang]).map(self._corpus_lines(corpus, lang)):
                        f.write(line + "\n")
                        n += 1
                    counts.setdefault(corpus.label, {})[lang] = n
                    log(f"{corpus.label}.{lang}: {n} lines")
        for label, n in counts.items():
            if n[plan.src] != n[plan.tgt]:
                raise PrepareError(f"training corpus {label}: {n[plan.src]} {plan.src} lines but "
                                   f"{n[plan.tgt]} {plan.tgt} lines (damaged or mismatched archive?)")
        return {label: n[plan.src] for label, n in counts.items()}

    def clean_and_split(self, report: dict) -> None:
        """tmp/train.tok -> tmp/train.pre, and tmp/valid.pre when valid is every Nth pair."""
        plan = self.plan
        pairs = self._pairs("train.tok")
        if plan.clean_before_bpe:
            stats = CleanStats()
            pairs = clean_pairs(pairs, *plan.clean_before_bpe, stats=stats)
        if plan.valid_every:
            (ts_path, tt_path), (vs_path, vt_path) = self._stems("train.pre"), self._stems("valid.pre")
            with atomic_write(ts_path) as ts, atomic_write(tt_path) as tt, \
                    atomic_write(vs_path) as vs, atomic_write(vt_path) as vt:
                for i, (s, t) in enumerate(pairs, start=1):
                    fs, ft = (vs, vt) if i % plan.valid_every == 0 else (ts, tt)
                    fs.write(s + "\n")
                    ft.write(t + "\n")
        else:
            _write_pairs(self._stems("train.pre"), pairs)
        if plan.clean_before_bpe:
            # Before the valid split: these counts cover train and valid together.
            report["cleaning"]["train+valid" if plan.valid_every else "train"] = stats.as_dict()

    def bpe(self, report: dict) -> None:
        plan, codes = self.plan, self.out / "bpecodes"
        log(f"learning {plan.merges} joint BPE merges on train.{plan.src} + train.{plan.tgt}")
        with atomic_write(codes) as f:
            learn_joint_bpe(self._stems("train.pre"), f, plan.merges)
        applier = self.mapper(BpeApplier(codes))
        for split in ("train", "valid", "test"):
            for lang in (plan.src, plan.tgt):
                lines = applier.map(read_lines(self.tmp / f"{split}.pre.{lang}"))
                write_lines(self.tmp / f"{split}.bpe.{lang}", lines)
            pairs, stats = self._pairs(f"{split}.bpe"), None
            if plan.clean_after_bpe and (split == "train" or (split == "valid" and plan.valid_every)):
                stats = CleanStats()
                pairs = clean_pairs(pairs, *plan.clean_after_bpe, stats=stats)
            report["lines"][split] = _write_pairs(self._stems(split, self.out), pairs)
            if stats:
                report["cleaning"][split] = stats.as_dict()

    def run(self) -> dict:
        plan = self.plan
        for names in plan.archives():
            self.archive(names)  # a missing archive fails before hours of work
        report = plan.describe(self.workers)
        report.update(source="raw corpora", lines={}, cleaning={}, corpora={})
        report["test_segments"] = self.eval_split("test", plan.test_sets)
        if plan.valid_sets:
            report["valid_segments"] = self.eval_split("valid", plan.valid_sets)
        report["corpora"] = self.tokenise_train()
        self.clean_and_split(report)
        self.bpe(report)
        return report


GOOGLE_MEMBERS = {"train": "train.tok.clean.bpe.32000", "valid": "newstest2013.tok.bpe.32000",
                  "test": "newstest2014.tok.bpe.32000", "test.raw": "newstest2014"}


def prepare_google_tarball(tarball: Path, out: Path, plan: Plan) -> dict:
    """wmt16_en_de from Google's tarball: its files are already tokenised, cleaned and BPE'd."""
    report = plan.describe(workers=1)
    report.update(source=tarball.name, bpe_merges=32000, lines={}, corpora={}, tokenizer={
        "note": "tokenised upstream (tokenizer.perl -q: no -a, Moses escaping)"}, cleaning={
        "note": "cleaned upstream (clean-corpus-n.perl 1..80); nothing dropped here"})
    for split, stem in GOOGLE_MEMBERS.items():
        counts = [write_lines(out / f"{split}.{lang}", iter_member_lines(tarball, f"{stem}.{lang}"))
                  for lang in (plan.src, plan.tgt)]
        if counts[0] != counts[1]:
            raise PrepareError(f"{tarball}: {stem}: {counts[0]} {plan.src} lines but {counts[1]} {plan.tgt}")
        report["lines"][split] = counts[0]
    report["test_segments"] = report["lines"].pop("test.raw")
    write_lines(out / f"test.tok.{plan.tgt}", iter_member_lines(tarball, f"newstest2014.tok.{plan.tgt}"))
    write_lines(out / "bpecodes", iter_member_lines(tarball, "bpe.32000"))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Stage 2 of the translation recipes: upstream archives -> text for fairseq-preprocess.")
    parser.add_argument("setting", choices=sorted(SETTINGS))
    parser.add_argument("--downloads", type=Path, required=True, help="folder with the upstream archives")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--workers", type=positive_int, default=min(8, os.cpu_count() or 1),
                        help="tokeniser/BPE processes [%(default)s]")
    parser.add_argument("--bpe-merges", type=positive_int, default=None, help="BPE merge operations [" + ", ".join(
        f"{k}: {v.merges}" for k, v in sorted(SETTINGS.items())) + "]")
    parser.add_argument("--moses-escape", action="store_true",
                        help="Moses' XML escaping (&apos; &quot; ...), as the Perl tokenizer's default and "
                             "fairseq's published data; off by default")
    args = parser.parse_args(argv)
    if not args.downloads.is_dir():
        parser.error(f"--downloads {args.downloads}: no such directory")
    plan = SETTINGS[args.setting]
    if args.bpe_merges is not None:
        plan = plan.with_merges(args.bpe_merges)
    if args.moses_escape:
        plan = plan.with_escape(True)

    args.out.mkdir(parents=True, exist_ok=True)
    done = args.out / "prepare.json"
    done.unlink(missing_ok=True)  # no prepare.json: unfinished
    preparer = Preparer(plan, args.downloads, args.out, args.workers)
    shutil.rmtree(preparer.tmp, ignore_errors=True)
    preparer.tmp.mkdir()
    try:
        tarball = args.downloads / plan.google_tarball if plan.google_tarball else None
        if tarball is not None and tarball.is_file():
            if args.bpe_merges not in (None, 32000) or args.moses_escape:
                raise PrepareError(f"{tarball} is already tokenised with 32000 BPE merges; move it out of "
                                   "--downloads to rebuild from the raw corpora with other options")
            log(f"using the preprocessed {tarball}")
            report = prepare_google_tarball(tarball, args.out, plan)
        else:
            report = preparer.run()
    except (PrepareError, ArchiveError) as exc:
        print(f"prepare.py {args.setting}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        preparer.close()
        shutil.rmtree(preparer.tmp, ignore_errors=True)
    with atomic_write(done) as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    lines = report["lines"]
    log(f"done: {args.out}: train {lines['train']}, valid {lines['valid']}, test {lines['test']} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
