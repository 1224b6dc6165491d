#!/usr/bin/env python3
"""Stage 6 of a --depth-adaptive translation recipe: BLEU against the average exit.

    python recipes/common/depth_adaptive_report.py T=SCORE_JSON=GENERATE_LOG ...
        [--paper BLEU@AE] [--paper-source TEXT] [--checkpoint PATH]
        [--commands LOGDIR --scope NAME] --json-out FILE --text-out FILE

One argument per exit threshold T: evaluate.py's result at that threshold
and the fairseq-generate log whose last Depth-Adaptive line gives the average
exit (AE, counted 1..N as the paper) and the estimated decoder FLOPs saved.
The threshold >= 1 (full depth) is the reference. The headline (last line)
is the lowest AE whose BLEU is within 1 point of full depth, the paper's
trade-off, with the paper's pair when --paper gives it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import METRIC_NAMES, commands, write_result  # noqa: E402

AE_LINE = re.compile(r"average exit \(AE\) ([\d.]+) of (\d+) blocks.*FLOPs saved (-?[\d.]+)% per token "
                     r"\((-?[\d.]+)% as computed")


def read_run(spec: str) -> dict:
    try:
        threshold, score_path, log_path = spec.split("=", 2)
        t = float(threshold)
    except ValueError:
        raise SystemExit(f"depth_adaptive_report.py: expected T=SCORE_JSON=GENERATE_LOG, got {spec!r}") from None
    with open(score_path, encoding="utf-8") as f:
        score = json.load(f)
    with open(log_path, encoding="utf-8") as f:
        found = AE_LINE.findall(f.read())
    if not found:
        raise SystemExit(f"{log_path}: no 'average exit (AE)' line: was the model trained with --exit-classifiers?")
    ae, blocks, saved, batched = found[-1]
    primary = score["primary"]
    return {"threshold": t, "bleu": score["metrics"][primary]["score"], "metric": primary,
            "ae": float(ae), "blocks": int(blocks), "flops_saved_pct": float(saved),
            "flops_saved_batched_pct": float(batched)}


def paper_pair(text: str):
    if not text:
        return None
    m = re.fullmatch(r"([\d.]+)@([\d.]+)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected BLEU@AE, e.g. 34.73@1.42, got {text!r}")
    return {"bleu": float(m.group(1)), "ae": float(m.group(2))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="T=SCORE_JSON=GENERATE_LOG, one per threshold")
    p.add_argument("--paper", type=paper_pair, default=None, help="the paper's BLEU@AE")
    p.add_argument("--paper-source", default="")
    p.add_argument("--checkpoint", default="")
    p.add_argument("--commands", default="")
    p.add_argument("--scope", default="")
    p.add_argument("--json-out", required=True)
    p.add_argument("--text-out", required=True)
    a = p.parse_args(argv)
    runs = sorted((read_run(s) for s in a.runs), key=lambda r: -r["threshold"])
    full = next((r for r in runs if r["threshold"] >= 1), None)
    if full is None:
        p.error("no run at a threshold >= 1 (the full-depth reference)")
    near = [r for r in runs if r["bleu"] >= full["bleu"] - 1]
    best = min(near, key=lambda r: (r["ae"], -r["bleu"]))
    name = METRIC_NAMES[full["metric"]]
    lines = [f"threshold {r['threshold']:g}: {name} {r['bleu']:.2f}, average exit {r['ae']:.2f} of {r['blocks']}, "
             f"decoder FLOPs saved {r['flops_saved_pct']:.1f}% per token ({r['flops_saved_batched_pct']:.1f}% batched)"
             for r in runs]
    paper = f" (paper: {a.paper['bleu']} at AE {a.paper['ae']})" if a.paper else ""
    lines.append(f"{name} = {best['bleu']:.2f} at average exit {best['ae']:.2f} of {best['blocks']} "
                 f"(threshold {best['threshold']:g}; full depth {full['bleu']:.2f}){paper}")
    record = {"runs": runs, "full_depth": full, "headline": best,
              "paper": {**(a.paper or {}), "source": a.paper_source}, "checkpoint": a.checkpoint,
              "commands": commands(a.commands, a.scope) if a.commands else []}
    write_result(record, lines, a.json_out, a.text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
