"""Learning benchmark of the ``--conv-edge`` options against fairseq's own ``lightconv``.

What it measures: how well a small DynamicConv translator learns a task of
short sentences (3 to 15 words), where whole batches are often shorter than
the decoder's wider kernel, which is where the edge rules differ. Systems:

* ``ours-zeros``, ``ours-renorm``, ``ours-fairseq``: ``lcp_seq2seq`` with
  ``--conv-edge`` zeros / renorm / fairseq;
* ``fairseq``: fairseq 0.12's own ``lightconv`` with DynamicConv on both sides.

All have 2 + 2 blocks, d = 64, FFN 128, 4 heads, kernels [3, 7], GLU, the same
optimiser, schedule, batch, number of updates and seeds. Each (system, seed)
trains in its own process (one thread), then is scored with beam search
(BLEU, sacreBLEU on the raw test references) and with teacher forcing
(fairseq-validate on the test set: per-token NLL in bits, computed by each
model's own full forward pass).

The task, generated here from a fixed seed: a source sentence is 3 to 15 words
(``--max-words``)
from a 180-word vocabulary of nouns, adjectives and verbs; its translation maps
each word through a fixed lexicon, puts each adjective after the noun that
follows it, and marks every verb with the number (singular or plural particle)
of the closest noun before it. All three rules are local (within 7 words).

    python scripts/bench_learning.py                  # 5 seeds, 600 updates, all systems
    python scripts/bench_learning.py --seeds 3 --out bench_out/learning --jobs 2

Writes ``results.json`` (every run), ``summary.md`` (the table printed last)
and ``bleu.png`` under ``--out``. Runs are cached there: a re-run only trains
what is missing (more seeds or systems). Another setting (``--max-words``,
``--updates``, ...) needs another ``--out``: ``settings.json`` records the
folder's, and a run with other settings stops before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "lightconv_plugin"
BIN = Path(sys.executable).parent
SYSTEMS = ("ours-zeros", "ours-renorm", "ours-fairseq", "fairseq")

MODEL = (
    "--encoder-embed-dim", "64", "--decoder-embed-dim", "64",
    "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
    "--encoder-attention-heads", "4", "--decoder-attention-heads", "4",
    "--encoder-layers", "2", "--decoder-layers", "2",
    "--encoder-kernel-size-list", "[3,7]", "--decoder-kernel-size-list", "[3,7]",
    "--encoder-conv-type", "dynamic", "--decoder-conv-type", "dynamic",
    "--encoder-glu", "True", "--decoder-glu", "True",
)


def system_args(system: str) -> list:
    if system == "fairseq":
        return ["--arch", "lightconv", *MODEL]
    edge = system.split("-", 1)[1]
    return ["--arch", "lcp_seq2seq", "--conv-edge", edge, *MODEL]


# ----------------------------------------------------------------- the task
def _lexicon(rng):
    syll = ["ka", "lo", "mi", "ru", "te", "no", "sa", "vi", "do", "pe", "gu", "ze"]
    words = set()
    while len(words) < 2 * 180:
        words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 3))))
    words = sorted(words)
    rng.shuffle(words)
    src, tgt = words[:180], words[180:]
    classes = {"noun": (0, 80), "adj": (80, 130), "verb": (130, 180)}
    return {c: list(zip(src[a:b], tgt[a:b])) for c, (a, b) in classes.items()}


def _pair(lex, rng, max_words):
    """One (source, target) pair of 3 to ``max_words`` words."""
    n = rng.randint(3, max_words)
    cls = [rng.choice(("noun", "noun", "adj", "verb")) for _ in range(n)]
    plural = [rng.random() < 0.4 for _ in range(n)]
    words = [rng.choice(lex[c]) for c in cls]
    src = [w[0] + ("s" if c == "noun" and p else "") for w, c, p in zip(words, cls, plural)]
    tgt, i, number = [], 0, "sg"
    while i < n:
        if cls[i] == "adj" and i + 1 < n and cls[i + 1] == "noun":
            order = [i + 1, i]
            i += 2
        else:
            order = [i]
            i += 1
        for j in order:
            if cls[j] == "noun":
                number = "pl" if plural[j] else "sg"
                tgt.append(words[j][1] + ("en" if plural[j] else ""))
            elif cls[j] == "verb":
                tgt += [words[j][1], number]
            else:
                tgt.append(words[j][1])
    return " ".join(src), " ".join(tgt)


def make_corpus(raw: Path, train: int, max_words: int, seed: int = 1):
    rng = random.Random(f"bench-learning-{seed}")
    lex = _lexicon(rng)
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("test", 500), ("valid", 300), ("train", train)):
        pairs = [_pair(lex, rng, max_words) for _ in range(n)]
        for side, k in (("src", 0), ("tgt", 1)):
            (raw / f"{split}.{side}").write_text("".join(p[k] + "\n" for p in pairs))


# ------------------------------------------------------------------ running
def _env():
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", PYTHONWARNINGS="ignore")
    return e


def _run(cmd, log: Path) -> str:
    proc = subprocess.run([str(c) for c in cmd], env=_env(), capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n  log: {log}\n"
                         + (proc.stdout + proc.stderr)[-2000:])
    return proc.stdout + proc.stderr


def train_and_score(system: str, seed: int, data: Path, raw: Path, out: Path, a) -> dict:
    run_dir = out / "runs" / f"{system}-seed{seed}"
    result_file = run_dir / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoints"
    # Every command loads the plugin, for fairseq's model too: on current torch,
    # fairseq 0.12 alone cannot load its own checkpoints (weights_only) to resume
    # or score, and its generate drops the last batch (fairseq #5036). fairseq's
    # model stays fairseq's: the plugin registers only names of its own.
    extra = ["--user-dir", str(PLUGIN)]
    start = time.time()
    _run([BIN / "fairseq-train", data, *system_args(system), *extra, "--task", "translation",
          "--cpu", "--num-workers", "0", "--seed", seed, "--save-dir", ckpt,
          "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", a.lr,
          "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "100", "--warmup-init-lr", "1e-07",
          "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
          "--dropout", a.dropout, "--attention-dropout", a.weight_dropout, "--weight-dropout", a.weight_dropout,
          "--max-tokens", a.max_tokens, "--max-update", a.updates, "--no-epoch-checkpoints",
          "--save-interval-updates", a.updates, "--validate-interval", "1000", "--disable-validation",
          "--log-format", "simple", "--log-interval", "100", "--ddp-backend", "legacy_ddp"],
         run_dir / "train.log")
    train_s = time.time() - start
    model = ckpt / "checkpoint_last.pt"
    gen = _run([BIN / "fairseq-generate", data, "--path", model, *extra, "--cpu", "--gen-subset", "test",
                "--beam", "4", "--batch-size", "64", "--num-workers", "0"], run_dir / "generate.log")
    hyps = {int(m.group(1)): m.group(2) for m in re.finditer(r"^D-(\d+)\t[^\t]*\t(.*)$", gen, re.M)}
    refs = (raw / "test.tgt").read_text().splitlines()
    if sorted(hyps) != list(range(len(refs))):
        raise SystemExit(f"{run_dir}: {len(hyps)} hypotheses for {len(refs)} references")
    import sacrebleu

    bleu = sacrebleu.corpus_bleu([hyps[i] for i in range(len(refs))], [refs]).score
    val = _run([BIN / "fairseq-validate", data, "--task", "translation", "--path", model, *extra, "--cpu",
                "--valid-subset", "test",
                "--max-tokens", "2048", "--num-workers", "0", "--criterion", "cross_entropy"],
               run_dir / "validate.log")
    loss = float(re.findall(r"\| loss ([0-9.]+)", val)[-1])
    result = {"system": system, "seed": seed, "bleu": bleu, "test_nll_bits": loss, "train_s": train_s}
    result_file.write_text(json.dumps(result, indent=1))
    return result


# Everything a cached run or the corpus depends on; --seeds, --systems and --jobs only add or order runs.
SETTINGS = ("train_size", "max_words", "updates", "max_tokens", "lr", "dropout", "weight_dropout")


def check_settings(out: Path, a) -> None:
    """Runs and the corpus under --out are reused, so they must come from these settings.

    The first run records them in ``settings.json``; a later run with other
    settings (or a folder with runs but no record) stops here, before any work,
    instead of mixing the old runs into a table labelled with the new settings.
    """
    wanted = {k: getattr(a, k) for k in SETTINGS}
    record = out / "settings.json"
    if record.exists():
        held = json.loads(record.read_text())
        diff = {k: (held.get(k), v) for k, v in wanted.items() if held.get(k) != v}
        if diff:
            said = ", ".join(f"--{k.replace('_', '-')} {old} -> {new}" for k, (old, new) in diff.items())
            raise SystemExit(f"{out} holds runs of other settings ({said}); give another --out, or delete it")
        return
    if (out / "data-bin").exists() or (out / "runs").exists():
        raise SystemExit(f"{out} holds runs with no record of their settings ({record.name} is missing); "
                         "give another --out, or delete it")
    out.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(wanted, indent=1))


def summarise(results, a) -> str:
    lines = [
        f"Short-sentence task (3-{a.max_words} words), DynamicConv 2+2 blocks d=64 kernels [3,7], {a.updates} updates, "
        f"max-tokens {a.max_tokens}, lr {a.lr}, dropout {a.dropout}, weight dropout {a.weight_dropout}; "
        "beam 4 BLEU on 500 test sentences; teacher-forced test NLL (bits/token, each model's full forward).",
        "",
        "| system | BLEU per seed | BLEU mean | BLEU std | test NLL mean (bits) | train s/run |",
        "|---|---|---|---|---|---|",
    ]
    for system in a.systems:
        rows = sorted((r for r in results if r["system"] == system), key=lambda r: r["seed"])
        if not rows:
            continue
        bleu = [r["bleu"] for r in rows]
        std = statistics.stdev(bleu) if len(bleu) > 1 else 0.0
        lines.append(f"| {system} | {', '.join(f'{b:.1f}' for b in bleu)} | {statistics.mean(bleu):.1f} | "
                     f"{std:.1f} | {statistics.mean(r['test_nll_bits'] for r in rows):.3f} | "
                     f"{statistics.mean(r['train_s'] for r in rows):.0f} |")
    return "\n".join(lines)


def plot(results, systems, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, system in enumerate(systems):
        bleu = [r["bleu"] for r in results if r["system"] == system]
        ax.scatter([i] * len(bleu), bleu, alpha=0.7)
        if bleu:
            ax.hlines(statistics.mean(bleu), i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(systems)), systems)
    ax.set_ylabel("test BLEU (beam 4)")
    ax.set_title("Learning with each --conv-edge vs fairseq lightconv")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "bench_out" / "learning")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--updates", type=int, default=600)
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--max-words", type=int, default=15, help="longest source sentence (shortest: 3)")
    p.add_argument("--max-tokens", type=int, default=1024)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--weight-dropout", type=float, default=0.1, help="also the attention dropout")
    p.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (each one thread)")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.updates < 1 or a.jobs < 1:
        p.error("--seeds, --updates and --jobs must be >= 1")
    if a.max_words < 3:
        p.error(f"--max-words={a.max_words}: must be >= 3")
    return a


def main(argv=None):
    a = parse_args(argv)

    check_settings(a.out, a)
    raw, data = a.out / "raw", a.out / "data-bin"
    if not (data / "dict.tgt.txt").exists():
        make_corpus(raw, a.train_size, a.max_words)
        _run([BIN / "fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
              "--trainpref", raw / "train", "--validpref", raw / "valid", "--testpref", raw / "test",
              "--destdir", data, "--workers", "1"], a.out / "preprocess.log")
    jobs = [(s, seed) for seed in range(1, a.seeds + 1) for s in a.systems]
    with ThreadPoolExecutor(a.jobs) as pool:
        results = list(pool.map(lambda j: train_and_score(j[0], j[1], data, raw, a.out, a), jobs))
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    table = summarise(results, a)
    (a.out / "summary.md").write_text(table + "\n")
    plot(results, a.systems, a.out / "bleu.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
