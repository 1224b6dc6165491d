"""Text handling for the translation recipes (stage 2, prepare.py).

Reading lines out of upstream archives, parsing IWSLT/WMT file formats, Moses
clean-corpus-n.perl cleaning, atomic output files and an order-preserving
process pool.  Tokenisers and BPE are in textproc_tok.py.

Lines are split on "\\n" only: corpora such as CommonCrawl contain lone "\\r"
and other Unicode line separators, and Python's universal newlines would split
on those and misalign the two sides of a parallel corpus (the Perl tools read
up to "\\n").
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import io
import os
import re
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Iterator, Sequence

__all__ = [
    "ArchiveError", "iter_member_lines", "list_members", "parse_iwslt_tags",
    "parse_seg_lines", "replace_typographic_apostrophe", "clean_pairs",
    "CleanStats", "atomic_write",
]


class ArchiveError(RuntimeError):
    """An archive is unreadable (truncated, corrupt) or lacks a member."""


class _NoMember(Exception):
    pass


class _ConcatReader(io.RawIOBase):
    """Several files read as one stream (archives distributed in parts)."""

    def __init__(self, paths: Sequence[Path]):
        self._paths = list(paths)
        self._current = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self._current is None:
                if not self._paths:
                    return 0
                self._current = open(self._paths.pop(0), "rb")
            n = self._current.readinto(buffer)
            if n:
                return n
            self._current.close()
            self._current = None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


class _ForwardOnly(io.RawIOBase):
    """A tar member read in stream mode: forward reads only.  (tarfile's own
    file object claims to be seekable and fails when TextIOWrapper asks.)"""

    def __init__(self, fileobj):
        self._f = fileobj

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._f.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _archive_name(archive) -> str:
    if isinstance(archive, (list, tuple)):
        return f"{archive[0]} (+{len(archive) - 1} more parts)"
    return str(archive)


def _member_matches(name: str, wanted: str) -> bool:
    # Upstream archives differ in their leading folder ("dev/", "./", none);
    # a bare file name matches at any depth.
    name = name[2:] if name.startswith("./") else name
    if "/" in wanted:
        return name == wanted or name.endswith("/" + wanted)
    return name.rsplit("/", 1)[-1] == wanted


# What a damaged archive raises while tarfile/gzip read it.
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile,
                OSError)


@contextlib.contextmanager
def open_tar_stream(archive):
    raw = _ConcatReader(archive) if isinstance(archive, (list, tuple)) else open(archive, "rb")
    try:
        # Stream mode ("r|*"): one forward pass, no index of the whole archive
        # (building one would decompress a 500 MB tarball before the first line).
        with tarfile.open(fileobj=io.BufferedReader(raw, 1 << 20), mode="r|*") as tar:
            yield tar
    finally:
        raw.close()


def _is_zip(archive) -> bool:
    return not isinstance(archive, (list, tuple)) and str(archive).endswith(".zip")


def list_members(archive) -> list[str]:
    """Names of the regular-file members of a tar or zip archive."""
    try:
        if _is_zip(archive):
            with zipfile.ZipFile(archive) as zf:
                return [i.filename for i in zf.infolist() if not i.is_dir()]
        with open_tar_stream(archive) as tar:
            return [info.name for info in tar if info.isfile()]
    except READ_ERRORS as exc:
        raise ArchiveError(f"{_archive_name(archive)}: truncated or corrupt archive ({exc})") from exc


def _text_lines(data) -> Iterator[str]:
    text = io.TextIOWrapper(data, encoding="utf-8", errors="replace", newline="\n")
    first = True
    for line in text:
        if first:
            line = line.lstrip("\ufeff")
            first = False
        yield line[:-1] if line.endswith("\n") else line


def iter_member_lines(archive, member: str) -> Iterator[str]:
    """Lines (without the "\\n") of `member` of a tar, tgz or zip `archive`.

    `archive` is a path or a list of paths of consecutive parts.  `member` is a
    path inside the archive or a bare file name.  A member ending in ".gz" is
    decompressed.  Invalid UTF-8 is replaced by U+FFFD rather than failing a
    multi-hour run on one bad byte.  Raises ArchiveError naming the archive if
    it is damaged or has no such member.
    """
    name = _archive_name(archive)
    try:
        if _is_zip(archive):
            yield from _zip_member_lines(archive, member)
        else:
            yield from _tar_member_lines(archive, member)
    except READ_ERRORS as exc:
        raise ArchiveError(f"{name}: truncated or corrupt archive ({exc})") from exc
    except _NoMember:
        raise ArchiveError(f"{name}: no member named {member!r} (is this the right archive?)") from None


def _zip_member_lines(archive, member):
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.is_dir() and _member_matches(info.filename, member):
                with zf.open(info) as data:
                    yield from _text_lines(data)
                return
    raise _NoMember(member)


def _tar_member_lines(archive, member):
    with open_tar_stream(archive) as tar:
        for info in tar:
            if info.isfile() and _member_matches(info.name, member):
                data = io.BufferedReader(_ForwardOnly(tar.extractfile(info)), 1 << 20)
                if info.name.endswith(".gz"):
                    data = gzip.GzipFile(fileobj=data)
                yield from _text_lines(data)
                return
    raise _NoMember(member)


# --- file formats -----------------------------------------------------------

_SPACES = re.compile(r"\s+")

# fairseq's prepare-iwslt14.sh drops these three; later IWSLT releases add
# <speaker>, <reviewer>, <translator>, <doc> lines, dropped too below.
_IWSLT_DROP = ("<url>", "<talkid>", "<keywords>")
_IWSLT_KEEP_TEXT = re.compile(r"</?(?:title|description)>")


def parse_iwslt_tags(lines: Iterable[str]) -> Iterator[str]:
    """Text lines of an IWSLT train.tags.* file.

    Exactly fairseq's rule, which the papers' data went through: lines
    containing <url>, <talkid> or <keywords> are dropped; <title> and
    <description> lose their tags but keep their text; every other line,
    other metadata such as <speaker> included, is kept as it is (the paper's
    training set has them, so its pair counts do too).
    """
    for line in lines:
        if any(tag in line for tag in _IWSLT_DROP):
            continue
        yield _IWSLT_KEEP_TEXT.sub("", line)


_SEG = re.compile(r"<seg\b[^>]*>(.*?)(?:</seg>|$)", re.IGNORECASE)


def parse_seg_lines(lines: Iterable[str]) -> Iterator[str]:
    """The text of every <seg id=...> line of an XML (IWSLT) or SGM (WMT) file.

    Tags removed, whitespace runs collapsed and trimmed, entities left as they
    are: the text sacreBLEU takes as its reference from the same file.
    """
    for line in lines:
        if "<seg" not in line.lower():
            continue
        match = _SEG.search(line)
        if match:
            yield _SPACES.sub(" ", match.group(1)).strip(" ")


def replace_typographic_apostrophe(text: str) -> str:
    """fairseq's scripts turn U+2019 into ' in test sets before tokenising."""
    return text.replace("\u2019", "'")


# --- clean-corpus-n.perl ----------------------------------------------------

# Reasons in the order clean-corpus-n.perl tests them (a pair counts once,
# under the first rule it breaks).
CLEAN_RULES = ("empty", "too_long", "too_short", "ratio", "long_word")


class CleanStats:
    def __init__(self):
        self.input = 0
        self.kept = 0
        self.dropped = collections.Counter({rule: 0 for rule in CLEAN_RULES})

    def as_dict(self) -> dict:
        return {"before": self.input, "after": self.kept, "dropped": dict(self.dropped)}


def clean_pairs(pairs: Iterable[tuple[str, str]], min_len: int, max_len: int,
                ratio: float | None, stats: CleanStats | None = None,
                max_word_length: int = 1000) -> Iterator[tuple[str, str]]:
    """Moses clean-corpus-n.perl on (src, tgt) pairs.

    Whitespace is collapsed and trimmed in the output as the Perl script
    does; it also removes "|" (factor separator) unless the first pair has
    one.  A pair is dropped when a side is empty, has more than `max_len` or
    fewer than `min_len` space-separated tokens, when the token-count ratio
    exceeds `ratio` either way (None: no ratio test), or when a token is longer
    than `max_word_length` characters.
    """
    if min_len < 0 or max_len < min_len:
        raise ValueError(f"clean_pairs: bad length range {min_len}..{max_len}")
    if ratio is not None and ratio <= 0:
        raise ValueError(f"clean_pairs: ratio must be > 0, got {ratio}")
    stats = stats if stats is not None else CleanStats()
    factored = None
    for src, tgt in pairs:
        stats.input += 1
        if factored is None:
            factored = "|" in src or "|" in tgt
        if not factored:
            src, tgt = src.replace("|", ""), tgt.replace("|", "")
        src = _SPACES.sub(" ", src).strip(" ")
        tgt = _SPACES.sub(" ", tgt).strip(" ")
        reason = _drop_reason(src, tgt, min_len, max_len, ratio, max_word_length)
        if reason:
            stats.dropped[reason] += 1
            continue
        stats.kept += 1
        yield src, tgt


def _drop_reason(src, tgt, min_len, max_len, ratio, max_word_length):
    if not src or not tgt:
        return "empty"
    src_words, tgt_words = src.split(" "), tgt.split(" ")
    ns, nt = len(src_words), len(tgt_words)
    if ns > max_len or nt > max_len:
        return "too_long"
    if ns < min_len or nt < min_len:
        return "too_short"
    if ratio is not None and (ns / nt > ratio or nt / ns > ratio):
        return "ratio"
    if any(len(w) > max_word_length for w in src_words + tgt_words):
        return "long_word"
    return None


# --- output -----------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: Path):
    """Text file opened for writing under a temporary name, renamed to `path`
    only when the block completes, so a killed run never leaves a partial file
    under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_lines(path: Path):
    """Lines of a text file without their newline; only \\n ends a line (other
    Unicode line separators inside a sentence must not split it)."""
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            yield line[:-1] if line.endswith("\n") else line


def write_lines(path: Path, lines) -> int:
    """Write lines atomically (see atomic_write); returns how many."""
    n = 0
    with atomic_write(path) as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
