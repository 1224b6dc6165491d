"""Tokenisation and subwords for the translation recipes: Moses (sacremoses),
Chinese word segmentation (jieba), joint BPE (subword-nmt), and an
order-preserving process pool to run them over many lines."""

from __future__ import annotations

import collections
import itertools
import logging
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

import regex

from textproc import replace_typographic_apostrophe

__all__ = ["Tokenizer", "BpeApplier", "learn_joint_bpe", "ParallelMapper", "parallel_map"]

# remove-non-printing-char.perl: every Unicode "Other" character (controls,
# format characters, unassigned, private use) becomes a space.
_NON_PRINTING = regex.compile(r"\p{C}")


@dataclass
class Tokenizer:
    """One line in, one tokenised line out; picklable for parallel_map.

    Steps, in the order of the Moses pipelines: U+2019 -> ' (`apostrophe`,
    fairseq's test-set step), punctuation normalisation (`normalize`),
    non-printing removal (`remove_non_printing`), then Moses tokenisation
    (`aggressive`: -a, `escape`: Moses' XML escaping of & < > ' " | [ ]) or,
    for `segmenter="jieba"`, Chinese word segmentation, and `lowercase`.
    """

    lang: str
    normalize: bool = False
    remove_non_printing: bool = False
    aggressive: bool = False
    escape: bool = False
    lowercase: bool = False
    apostrophe: bool = False
    segmenter: str = "moses"
    _tools: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.segmenter not in ("moses", "jieba"):
            raise ValueError(f"Tokenizer: segmenter must be 'moses' or 'jieba', got {self.segmenter!r}")

    def options(self) -> dict:
        opts = asdict(self)
        opts.pop("_tools")
        return opts

    def __getstate__(self):
        # The sacremoses/jieba objects are rebuilt in each worker process.
        state = dict(self.__dict__)
        state["_tools"] = {}
        return state

    def _tool(self, name):
        tool = self._tools.get(name)
        if tool is None:
            if name == "normalizer":
                from sacremoses import MosesPunctNormalizer
                tool = MosesPunctNormalizer(lang=self.lang)
            elif name == "moses":
                from sacremoses import MosesTokenizer
                tool = MosesTokenizer(lang=self.lang)
            else:
                import jieba
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                tool = jieba
            self._tools[name] = tool
        return tool

    def __call__(self, line: str) -> str:
        if self.apostrophe:
            line = replace_typographic_apostrophe(line)
        if self.normalize:
            line = self._tool("normalizer").normalize(line)
        if self.remove_non_printing:
            line = _NON_PRINTING.sub(" ", line)
        if self.segmenter == "jieba":
            words = self._tool("jieba").cut(line.strip())
            line = " ".join(w for w in (w.strip() for w in words) if w)
        else:
            line = self._tool("moses").tokenize(
                line, aggressive_dash_splits=self.aggressive, return_str=True,
                escape=self.escape)
        if self.lowercase:
            line = line.lower()
        return line


class BpeApplier:
    """subword-nmt's apply_bpe on one line; picklable for parallel_map."""

    def __init__(self, codes: Path):
        self.codes = Path(codes)
        self._bpe = None

    def __getstate__(self):
        return {"codes": self.codes, "_bpe": None}

    def __call__(self, line: str) -> str:
        if self._bpe is None:
            from subword_nmt.apply_bpe import BPE
            with open(self.codes, encoding="utf-8") as f:
                self._bpe = BPE(f)
        return self._bpe.process_line(line)


def learn_joint_bpe(paths: Iterable[Path], codes_out, merges: int) -> None:
    """Learn `merges` BPE merge operations on the concatenation of `paths`
    (fairseq: learn_bpe.py -s N < train.src+train.tgt) and write the codes to
    the open text file `codes_out`."""
    from subword_nmt.learn_bpe import learn_bpe

    if merges < 1:
        raise ValueError(f"BPE merges must be >= 1, got {merges}")
    files = [open(p, encoding="utf-8") for p in paths]
    try:
        learn_bpe(itertools.chain.from_iterable(files), codes_out, merges)
    finally:
        for f in files:
            f.close()


# --- parallel map -----------------------------------------------------------

_worker_func: Callable | None = None


def _set_worker_func(func) -> None:
    global _worker_func
    _worker_func = func


def _run_chunk(chunk: list[str]) -> list[str]:
    return [_worker_func(line) for line in chunk]


class ParallelMapper:
    """func(line) for every line, in input order, on `workers` processes that
    live until close(), so that tools slow to load (jieba's dictionary) load
    once per process and not once per file.

    `func` must be picklable; it is sent once per worker.  At most a few chunks
    per worker are in flight: Pool.imap would read the whole (multi-GB) input
    ahead into its task queue.
    """

    def __init__(self, func: Callable[[str], str], workers: int = 1, chunk_size: int = 2000):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.func, self.workers, self.chunk_size = func, workers, chunk_size
        self._pool = None
        if workers > 1:
            import multiprocessing
            self._pool = multiprocessing.get_context("fork").Pool(
                workers, initializer=_set_worker_func, initargs=(func,))

    def map(self, lines: Iterable[str]) -> Iterator[str]:
        if self._pool is None:
            yield from map(self.func, lines)
            return
        pending: collections.deque = collections.deque()
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) >= self.chunk_size:
                pending.append(self._pool.apply_async(_run_chunk, (chunk,)))
                chunk = []
                while len(pending) > 4 * self.workers:
                    yield from pending.popleft().get()
        if chunk:
            pending.append(self._pool.apply_async(_run_chunk, (chunk,)))
        while pending:
            yield from pending.popleft().get()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parallel_map(func: Callable[[str], str], lines: Iterable[str], workers: int = 1,
                 chunk_size: int = 2000) -> Iterator[str]:
    """ParallelMapper for a single input."""
    with ParallelMapper(func, workers, chunk_size) as mapper:
        yield from mapper.map(lines)
