#!/usr/bin/env python
"""Reads a fairseq-eval-lm log and writes the language-model results file.

    python recipes/common/eval_lm_report.py --eval-log LOG --prepared DIR --split test
        --json-out FILE --text-out FILE [--paper PPL --paper-source TEXT]
        [--checkpoint PATH] [--commands LOGDIR --scope MODEL]

fairseq-eval-lm prints "Evaluated N tokens ..." and "Loss (base 2): L,
Perplexity: P".  N must equal the tokens stage 2 counted for the split
(prepare.json: every word plus one end-of-sentence per line, as the benchmarks
count them): fairseq-eval-lm silently drops samples longer than the model's
positions, and a perplexity over part of the test set is not the benchmark's,
so a difference is an error, not a warning.  The results file has the layout
of evaluate.py's (metrics, primary, paper, checkpoint, commands) plus the
tokens scored.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from evaluate import commands, write_result  # noqa: E402

EVALUATED = re.compile(r"Evaluated ([\d,]+) tokens")
LOSS = re.compile(r"Loss \(base 2\): ([\d.]+|inf|nan), Perplexity: ([\d.]+|inf|nan)")


class ReportError(RuntimeError):
    pass


def parse_eval_log(text: str) -> tuple[int, float, float]:
    """(tokens evaluated, loss in bits per token, perplexity) of the log's last evaluation."""
    tokens = EVALUATED.findall(text)
    loss = LOSS.findall(text)
    if not tokens or not loss:
        raise ReportError("no 'Evaluated N tokens' and 'Loss (base 2): ..., Perplexity: ...' lines "
                          "(did fairseq-eval-lm finish?)")
    return int(tokens[-1].replace(",", "")), float(loss[-1][0]), float(loss[-1][1])


def expected_tokens(prepared: str, split: str) -> tuple[int, dict]:
    path = os.path.join(prepared, "prepare.json")
    try:
        with open(path, encoding="utf-8") as f:
            counts = json.load(f)["splits"][split]
    except (OSError, ValueError, KeyError) as e:
        raise ReportError(f"{path}: no counts for split {split!r} ({e})") from None
    return counts["scored_tokens"], counts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--eval-log", required=True, help="fairseq-eval-lm's output")
    p.add_argument("--prepared", required=True, help="stage 2's folder (prepare.json)")
    p.add_argument("--split", default="test")
    p.add_argument("--paper", default="", help="the paper's perplexity (empty: none reported)")
    p.add_argument("--paper-source", default="")
    p.add_argument("--checkpoint", default="")
    p.add_argument("--commands", default="", help="the logs folder whose commands.txt lists what ran")
    p.add_argument("--scope", default="", help="the model whose stages' commands to keep")
    p.add_argument("--json-out", required=True)
    p.add_argument("--text-out", required=True)
    a = p.parse_args(argv)
    try:
        with open(a.eval_log, encoding="utf-8", errors="replace") as f:
            scored, loss, ppl = parse_eval_log(f.read())
        expected, counts = expected_tokens(a.prepared, a.split)
        if scored != expected:
            raise ReportError(
                f"fairseq-eval-lm scored {scored} tokens but the {a.split} set has {expected} "
                f"({counts['words']} words + {counts['lines']} end-of-sentence): samples longer than "
                "the model's positions (--tokens-per-sample) are dropped silently; raise it in --eval-args")
    except (OSError, ReportError) as e:
        print(f"eval_lm_report.py: error: {a.eval_log}: {e}", file=sys.stderr)
        return 1

    record = {
        "metrics": {"perplexity": {"score": ppl, "loss_base2": loss,
                                   "text": f"Loss (base 2): {loss:.4f}, Perplexity: {ppl:.2f}"}},
        "primary": "perplexity", "split": a.split,
        "tokens_scored": scored,
        "tokens": {"words": counts["words"], "end_of_sentence": counts["lines"]},
        "paper": {"metric": "perplexity", "score": float(a.paper) if a.paper else None,
                  "source": a.paper_source},
        "checkpoint": a.checkpoint, "eval_output": a.eval_log,
        "commands": commands(a.commands, a.scope) if a.commands else [],
    }
    paper = f" (paper: {a.paper})" if a.paper else ""
    lines = [f"tokens scored: {scored} ({counts['words']} words + {counts['lines']} end-of-sentence)",
             f"{a.split} loss: {loss:.4f} bits per token",
             f"{a.split} perplexity = {ppl:.2f}{paper}"]
    write_result(record, lines, a.json_out, a.text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
