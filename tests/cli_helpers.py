"""Helpers for the tests that drive fairseq's command-line tools.

Synthetic corpora, ``fairseq-preprocess``, ``fairseq-train`` and friends run
as subprocesses from the virtual environment of the running interpreter, on
CPU, one thread each. A failing command prints its whole output.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "lightconv_plugin"
BIN = Path(sys.executable).parent

# Words of the synthetic languages: the target is the source reversed with
# each word mapped, so that a few dozen updates already learn something.
SRC_WORDS = [f"s{i}" for i in range(24)]
TGT_WORDS = [f"t{i}" for i in range(24)]
SPLITS = {"train": 300, "valid": 20, "test": 12}

_cache: dict = {}


# One thread per process: for models this small the second OpenMP thread only
# spins (measured: a 6-update fairseq-train took 10 s CPU and wall with one
# thread, 14-21 s with two).
THREADS = 1


def env() -> dict:
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore")
    return e


def _command(tool: str, args) -> list:
    exe = sys.executable if tool == "python" else str(BIN / tool)
    return [exe, *map(str, args)]


def _start(cmd):
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(cmd, proc) -> str:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        print(f"$ {' '.join(cmd)}\n{out}")
        raise subprocess.CalledProcessError(proc.returncode, cmd, out)
    return out


def run(tool: str, *args) -> str:
    """Run a fairseq CLI (``fairseq-train``, ...) or ``python`` with ``args``; returns stdout+stderr."""
    cmd = _command(tool, args)
    return _finish(cmd, _start(cmd))


def run_parallel(*jobs) -> list:
    """Run several (tool, *args) jobs at once; their outputs, in order.

    Each keeps one core busy (mostly importing fairseq), so two jobs on two
    cores take about the time of one.
    """
    cmds = [_command(tool, args) for tool, *args in jobs]
    procs = [_start(cmd) for cmd in cmds]
    try:
        return [_finish(cmd, proc) for cmd, proc in zip(cmds, procs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _sentences(rng: random.Random, n: int, words, lo=3, hi=9):
    return [[rng.choice(words) for _ in range(rng.randint(lo, hi))] for _ in range(n)]


def write_parallel_corpus(root: Path, seed: int = 0) -> Path:
    """{train,valid,test}.{src,tgt}: target = source reversed, word i -> t(i)."""
    rng = random.Random(seed)
    mapping = dict(zip(SRC_WORDS, TGT_WORDS))
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in SPLITS.items():
        src = _sentences(rng, n, SRC_WORDS)
        (raw / f"{split}.src").write_text("".join(" ".join(s) + "\n" for s in src))
        (raw / f"{split}.tgt").write_text(
            "".join(" ".join(mapping[w] for w in reversed(s)) + "\n" for s in src))
    return raw


def write_lm_corpus(root: Path, seed: int = 0) -> Path:
    """{train,valid,test}.txt: sentences of a tiny grammar (repeating patterns)."""
    rng = random.Random(seed)
    raw = root / "raw_lm"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in SPLITS.items():
        lines = []
        for _ in range(n):
            start, step = rng.randrange(len(SRC_WORDS)), rng.choice([1, 2, 3])
            length = rng.randint(4, 12)
            lines.append(" ".join(SRC_WORDS[(start + step * i) % len(SRC_WORDS)] for i in range(length)))
        (raw / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return raw


def preprocess_translation_job(root: Path) -> tuple:
    raw = write_parallel_corpus(root)
    return ("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
            "--trainpref", raw / "train", "--validpref", raw / "valid", "--testpref", raw / "test",
            "--destdir", root / "data-bin", "--workers", "1")


def preprocess_lm_job(root: Path) -> tuple:
    raw = write_lm_corpus(root)
    return ("fairseq-preprocess", "--only-source", "--trainpref", raw / "train.txt",
            "--validpref", raw / "valid.txt", "--testpref", raw / "test.txt",
            "--destdir", root / "data-bin", "--workers", "1")


def binarised(tmp_path_factory, *kinds) -> list:
    """data-bin folders of the "translation" and/or "lm" corpora, each built once per session."""
    todo = {}
    for kind in kinds:
        if kind not in _cache:
            root = tmp_path_factory.mktemp(kind)
            todo[kind] = (root / "data-bin",
                          (preprocess_translation_job if kind == "translation" else preprocess_lm_job)(root))
    if todo:
        run_parallel(*(job for _, job in todo.values()))
        for kind, (dest, _) in todo.items():
            _cache[kind] = dest
    return [_cache[kind] for kind in kinds]


# Flags every training run shares: CPU, no worker processes, a fixed seed, a
# log line at every update, no validation or checkpoint until training stops
# (it then validates and writes checkpoint_last.pt and checkpoint_best.pt).
# One process never wraps the model in DDP, but --criterion adaptive_loss
# refuses the default --ddp-backend all the same.
TRAIN_COMMON = (
    "--cpu", "--num-workers", "0", "--seed", "1", "--log-format", "simple", "--log-interval", "1",
    "--save-interval", "1000", "--validate-interval", "1000", "--no-epoch-checkpoints",
    "--ddp-backend", "legacy_ddp",
)


def train_job(data: Path, save_dir: Path, *args) -> tuple:
    """fairseq-train with our plugin loaded (its torch.load fix is needed to resume)."""
    return ("fairseq-train", data, "--save-dir", save_dir, "--user-dir", PLUGIN_DIR, *TRAIN_COMMON, *args)


def generate_job(data: Path, checkpoint: Path, *args) -> tuple:
    """fairseq-generate on the test split with beam search, plugin loaded (its torch.load fix,
    and its fix of fairseq #5036, without which the last 4 of the 12 sentences are skipped)."""
    return ("fairseq-generate", data, "--path", checkpoint, "--user-dir", PLUGIN_DIR,
            "--cpu", "--gen-subset", "test", "--beam", "4", "--batch-size", "8",
            "--num-workers", "0", *args)


# One-call forms.


def translation_data(tmp_path_factory) -> Path:
    return binarised(tmp_path_factory, "translation")[0]


def lm_data(tmp_path_factory) -> Path:
    return binarised(tmp_path_factory, "lm")[0]


def train(data: Path, save_dir: Path, *args) -> str:
    return run(*train_job(data, save_dir, *args))


def generate(data: Path, checkpoint: Path, *args) -> str:
    return run(*generate_job(data, checkpoint, *args))


def tagged(output: str, tag: str) -> dict:
    """{sentence id: [fields after the id]} of fairseq-generate's ``tag`` lines (S, T, H, D, P)."""
    lines = {}
    for line in output.splitlines():
        head, _, rest = line.partition("\t")
        if head.startswith(f"{tag}-") and head[len(tag) + 1:].isdigit():
            lines[int(head[len(tag) + 1:])] = rest.split("\t")
    return lines


def hypotheses(output: str) -> dict:
    """{sentence id: (score, hypothesis)} from the H- lines of fairseq-generate."""
    return {i: (float(f[0]), f[1] if len(f) > 1 else "") for i, f in tagged(output, "H").items()}
