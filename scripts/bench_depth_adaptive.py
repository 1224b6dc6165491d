"""BLEU against the average exit (AE) of the Depth-Adaptive decoder, on the toy corpus.

For each model (DynamicConv and the attention mixer by default) the toy
recipe (recipes/toy/run.sh, stages 1-5) trains ``<model>_toy`` with a deeper
decoder and an output classifier after every block (--exit-classifiers
shared, criterion depth_adaptive_cross_entropy, aligned training), then this
script decodes the test set (beam 5) once per exit threshold (--exit-mode
confidence: a token leaves at the first block whose top probability exceeds
the threshold; 1 never leaves early, the full-depth decoder) and scores it
with sacreBLEU. Writes results.json, results.md and bleu_vs_ae.png under
--out and prints the table: BLEU, AE and the decoder FLOPs saved per threshold.

    python scripts/bench_depth_adaptive.py [--out bench_out/depth_adaptive] [--models dynamicconv attention]

About 10 minutes per model on 2 CPU cores at the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
THRESHOLDS = [1.0, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
AE_LINE = re.compile(r"average exit \(AE\) ([\d.]+) of (\d+) blocks.*FLOPs saved (-?[\d.]+)% per token "
                     r"\((-?[\d.]+)% as computed")


def run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return proc


def train(args, model: str, workdir: Path):
    layers = args.decoder_layers
    kernels = "[" + ",".join(str(k) for k in ([3, 5, 7, 7, 7, 7, 7, 7] * 4)[:layers]) + "]"
    train_args = (f"--decoder-layers {layers} --decoder-kernel-size-list {kernels} "
                  f"--exit-classifiers shared --exit-mode confidence "
                  f"--criterion depth_adaptive_cross_entropy --label-smoothing 0.1")
    run(["bash", REPO / "recipes/toy/run.sh", "--model", model, "--workdir", workdir, "--stop-stage", 5,
         "--max-epoch", args.max_epoch, "--seed", args.seed, "--train-args", train_args])
    return workdir / "model" / model / "checkpoint_best.pt"


def decode(checkpoint: Path, workdir: Path, threshold: float, beam: int):
    out = workdir / "decode-da" / f"t{threshold}"
    out.mkdir(parents=True, exist_ok=True)
    proc = run(["fairseq-generate", workdir / "data/bin", "--user-dir", REPO / "lightconv_plugin",
                "--task", "translation", "--source-lang", "src", "--target-lang", "tgt",
                "--path", checkpoint, "--gen-subset", "test", "--beam", beam, "--batch-size", 128,
                "--cpu", "--num-workers", 0, "--results-path", out,
                "--model-overrides", repr({"exit_threshold": str(threshold)})])
    m = AE_LINE.search(proc.stderr)
    if not m:
        sys.exit(f"no depth-adaptive report in fairseq-generate's stderr:\n{proc.stderr[-2000:]}")
    score = run([sys.executable, REPO / "recipes/common/score_generate.py", "--generate-output",
                 out / "generate-test.txt", "--ref", workdir / "data/raw/test.tgt",
                 "--hyp-out", out / "hyp.txt", "--json-out", out / "bleu.json"])
    bleu = float(re.search(r"^BLEU = ([\d.]+)", score.stdout + score.stderr, re.M).group(1))
    return {"threshold": threshold, "bleu": bleu, "ae": float(m.group(1)), "blocks": int(m.group(2)),
            "flops_saved_pct": float(m.group(3)), "flops_saved_batched_pct": float(m.group(4))}


def markdown(results: dict, args) -> str:
    lines = [f"Toy corpus (recipes/toy), {args.decoder_layers}-block decoders, {args.max_epoch} epochs, "
             f"beam {args.beam}, confidence exits; one run per model (seed {args.seed}).", ""]
    for model, rows in results.items():
        full = rows[0]
        lines += [f"**{model}** (full depth: BLEU {full['bleu']:.2f})", "",
                  "| threshold | BLEU | AE | decoder FLOPs saved per token | as computed (batched) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['threshold']} | {r['bleu']:.2f} | {r['ae']:.2f} of {r['blocks']} | "
                  f"{r['flops_saved_pct']:.1f}% | {r['flops_saved_batched_pct']:.1f}% |" for r in rows]
        good = [r for r in rows if r["ae"] <= r["blocks"] / 2 and r["bleu"] >= full["bleu"] - 1]
        verdict = (f"AE {good[-1]['ae']:.2f} (at most half the depth) with BLEU {good[-1]['bleu']:.2f}, within 1 of full depth"
                   if good else "no threshold reaches AE <= half the depth within 1 BLEU of full depth")
        lines += ["", f"Goal: {verdict}.", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for model, rows in results.items():
        ax.plot([r["ae"] for r in rows], [r["bleu"] for r in rows], marker="o", label=model)
    ax.set_xlabel("average exit (decoder blocks)")
    ax.set_ylabel("test BLEU")
    ax.set_title("Depth-Adaptive decoding on the toy corpus")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "bench_out" / "depth_adaptive")
    p.add_argument("--models", nargs="+", default=["dynamicconv", "attention"])
    p.add_argument("--decoder-layers", type=int, default=6)
    p.add_argument("--max-epoch", type=int, default=3)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS)
    args = p.parse_args(argv)
    if args.decoder_layers < 2:
        p.error(f"--decoder-layers must be >= 2, got {args.decoder_layers}")
    if sorted(args.thresholds, reverse=True) != args.thresholds or args.thresholds[0] < 1:
        p.error(f"--thresholds: give them in decreasing order starting at 1 or more (full depth), got {args.thresholds}")
    os.environ.setdefault("PATH", "")
    os.environ["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"
    results = {}
    for model in args.models:
        workdir = args.out / model
        checkpoint = train(args, model, workdir)
        results[model] = []
        for t in args.thresholds:
            results[model].append(decode(checkpoint, workdir, t, args.beam))
            r = results[model][-1]
            print(f"{model} threshold {t}: BLEU {r['bleu']:.2f} AE {r['ae']:.2f} saved {r['flops_saved_pct']:.1f}%",
                  file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results, args)
    (args.out / "results.md").write_text(text + "\n")
    plot(results, args.out / "bleu_vs_ae.png")
    print(text)


if __name__ == "__main__":
    main()
