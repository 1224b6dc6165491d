#!/usr/bin/env python3
"""ROUGE of summaries (stage 6 of the summarisation recipe), with Google's rouge-score package.

    python recipes/common/rouge.py --ref test.raw.summary (--hyp FILE | --generate GEN_OUT)
        [--json-out FILE] [--text-out FILE] [--resamples 1000] [--seed 1] [--workers N]
        [--paper R1/R2/L --paper-source TEXT] [--checkpoint PATH] [--commands LOGDIR --scope MODEL]

Scores one hypothesis per line against one reference per line: ROUGE-1,
ROUGE-2, ROUGE-L and ROUGE-Lsum (precision, recall, F1; stemming on), each the
mean over documents, with a bootstrap 95% confidence interval of that mean
(resampling documents; fixed seed).  Prints ``ROUGE-1/2/Lsum = a/b/c`` (F1 x
100) as the last line of stdout, followed by the paper's ROUGE-1/2/L when
--paper gives it, and writes everything to --json-out (with the paper's
numbers and the commands that made the result, as evaluate.py does for BLEU).

Which L is the papers' L: ROUGE-1.5.5 (``-c 95 -r 1000 -n 2 -a``, with the
summaries given one sentence per line, as See et al. and the papers citing
them scored) computes a summary-level LCS: for each reference sentence the
union of its LCS with every hypothesis sentence.  That is rouge-score's
``rougeLsum`` when sentences are separated by newlines; its ``rougeL`` is one
LCS over the whole text and gives lower numbers (about 30 where the papers
report about 36-40).  ``rougeLsum`` is reported as the papers' ROUGE-L.

Sentences.  References: split on the ``<q>`` marker that summarize_prepare.py
puts between highlights (exactly the reference's sentences).  Hypotheses: a
model trained on joined highlights writes no marker, so they are split by a
rule (split_sentences): after a token that ends in ``.``, ``!`` or ``?``
(closing quotes or brackets that follow stay with it), except after a known
abbreviation (``mr.``, ``u.s.``, a single letter, ...).  On tokenised output
(Moses/PTB: a sentence's final period is its own token) the rule is See et
al.'s pointer-generator rule (split after each "." token) extended to ! and ?.
A hypothesis that contains ``<q>`` is split on it instead.

--generate reads the ``D-`` lines of a fairseq-generate output (sorted by
sentence id, one per reference line), e.g. run without --tokenizer and with
--post-process subword_nmt, so that hypotheses stay tokenised and lowercased
like the training data.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
SEP = "<q>"
RESAMPLES = 1000
SEED = 1

_CLOSERS = "\"'`)]}\u2019\u201d"
_END = re.compile(r"[.!?\u2026][" + re.escape(_CLOSERS) + r"]*$")
_CLOSING_TOKEN = re.compile(r"^(?:''|[" + re.escape(_CLOSERS) + r"]|-rrb-|-rsb-)+$", re.IGNORECASE)
# Words whose final period does not end a sentence (lowercased, without it).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr gen sen rep gov lt col sgt capt cpl pvt adm maj cmdr rev "
    "vs etc inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec no nos fig "
    "mt ft ave blvd dept est approx".split())


class RougeError(RuntimeError):
    """Bad input: mismatched files, unreadable generate output."""


def _ends_sentence(token: str) -> bool:
    if not _END.search(token):
        return False
    word = token.rstrip(_CLOSERS).lower()
    if word in (".", "!", "?", "...", "\u2026") or word.endswith(("!", "?", "..", "\u2026")):
        return True
    stem = word[:-1]
    # "u.s." "e.g." "j." are abbreviations or initials, not sentence ends.
    return not ("." in stem or len(stem) == 1 or stem in ABBREVIATIONS)


def split_sentences(text: str, sep: str = SEP) -> list[str]:
    """Sentences of a summary: split on `sep` when present, else by the rule above."""
    if sep and sep in text:
        return [s for s in (part.strip() for part in text.split(sep)) if s]
    sentences, current = [], []
    for token in text.split():
        if not current and sentences and _CLOSING_TOKEN.match(token):
            sentences[-1] += " " + token  # a quote closing the previous sentence
            continue
        current.append(token)
        if _ends_sentence(token):
            sentences.append(" ".join(current))
            current = []
    if current:
        sentences.append(" ".join(current))
    return sentences


_scorer = None


def _get_scorer():
    global _scorer
    if _scorer is None:
        from rouge_score import rouge_scorer
        _scorer = rouge_scorer.RougeScorer(list(TYPES), use_stemmer=True)
    return _scorer


def score_pair(hypothesis: str, reference: str) -> dict:
    """{type: (precision, recall, f1)} of one document; sentences one per line (for Lsum)."""
    hyp = "\n".join(split_sentences(hypothesis))
    ref = "\n".join(split_sentences(reference))
    scores = _get_scorer().score(ref, hyp)  # rouge-score's order: target, prediction
    return {t: (scores[t].precision, scores[t].recall, scores[t].fmeasure) for t in TYPES}


def _score_chunk(pairs):
    return [score_pair(h, r) for h, r in pairs]


def score_documents(hypotheses, references, workers: int = 1) -> list[dict]:
    if len(hypotheses) != len(references):
        raise RougeError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    pairs = list(zip(hypotheses, references))
    if workers <= 1 or len(pairs) < 200:
        return _score_chunk(pairs)
    import multiprocessing
    chunks = [pairs[i:i + 100] for i in range(0, len(pairs), 100)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return [s for chunk in pool.map(_score_chunk, chunks) for s in chunk]


def bootstrap_ci(values, resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95):
    """(low, high): percentile interval of the mean over `resamples` resamplings of `values`."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise RougeError("no documents to score")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    batch = max(1, 2_000_000 // values.size)  # bounds the index matrix's memory
    for start in range(0, resamples, batch):
        stop = min(resamples, start + batch)
        means[start:stop] = values[rng.integers(0, values.size, (stop - start, values.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def corpus_scores(per_doc: list[dict], resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """{type: {precision, recall, f1, f1_ci95}} in percent, means over documents."""
    out = {}
    for t in TYPES:
        p, r, f = (
            [d[t][k] for d in per_doc] for k in range(3))
        low, high = bootstrap_ci(f, resamples, seed)
        out[t] = {"precision": 100 * sum(p) / len(p), "recall": 100 * sum(r) / len(r),
                  "f1": 100 * sum(f) / len(f), "f1_ci95": [100 * low, 100 * high]}
    return out


def read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="\n") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as exc:
        raise RougeError(f"{path}: {exc.strerror}") from None


def read_generate(path: Path, prefix: str = "D") -> list[str]:
    """Hypotheses of a fairseq-generate output, in sentence-id order."""
    tag, hyps = prefix + "-", {}
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.startswith(tag):
            continue
        fields = line.split("\t")
        try:
            sid = int(fields[0][len(tag):])
        except ValueError:
            raise RougeError(f"{path}, line {lineno}: malformed {tag} line: {line[:80]!r}") from None
        if sid in hyps:
            raise RougeError(f"{path}: several {tag} lines for sentence {sid} (use --nbest 1)")
        hyps[sid] = fields[2] if len(fields) >= 3 else ""
    if sorted(hyps) != list(range(len(hyps))):
        raise RougeError(f"{path}: {tag} lines are not numbered 0..{len(hyps) - 1} "
                         "(an incomplete or filtered fairseq-generate output?)")
    return [hyps[i] for i in range(len(hyps))]


def evaluate(hypotheses, references, *, resamples=RESAMPLES, seed=SEED, workers=1) -> dict:
    per_doc = score_documents(hypotheses, references, workers)
    from importlib.metadata import version
    return {
        "scores": corpus_scores(per_doc, resamples, seed),
        "documents": len(per_doc),
        "papers_rouge_l": "rougeLsum",
        "note": "rougeLsum = ROUGE-1.5.5's ROUGE-L (summary-level LCS, sentences one per line), "
                "the papers' R-L; rougeL = one LCS over the whole text, for comparison only",
        "package": f"rouge-score {version('rouge-score')}", "use_stemmer": True,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": 0.95, "unit": "document"},
        "sentence_split": {"references": f"on {SEP}", "hypotheses": f"on {SEP} if present, else "
                           "after tokens ending in . ! ? (not abbreviations)"},
    }


def headline(result: dict) -> str:
    s = result["scores"]
    line = "ROUGE-1/2/Lsum = " + "/".join(f"{s[t]['f1']:.2f}" for t in ("rouge1", "rouge2", "rougeLsum"))
    paper = result.get("paper") or {}
    if paper.get("rouge1") is not None:
        line += f" (paper ROUGE-1/2/L: {paper['rouge1']:.2f}/{paper['rouge2']:.2f}/{paper['rougeL']:.2f})"
    return line


def paper_scores(text: str) -> dict:
    """'39.84/16.25/36.73' -> the paper's ROUGE-1, ROUGE-2 and ROUGE-L F1 (x 100)."""
    parts = text.split("/")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"expected R1/R2/L, three numbers in [0, 100] separated by '/', got {text!r}")
    return dict(zip(("rouge1", "rouge2", "rougeL"), values))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", type=Path, required=True, help="references, one summary per line, <q> between sentences")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--hyp", type=Path, help="hypotheses, one per line")
    which.add_argument("--generate", type=Path, help="fairseq-generate output (its D- lines)")
    p.add_argument("--json-out", type=Path, help="write the result here")
    p.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples [%(default)s]")
    p.add_argument("--seed", type=int, default=SEED, help="bootstrap seed [%(default)s]")
    p.add_argument("--workers", type=int, default=1, help="scoring processes [%(default)s]")
    p.add_argument("--text-out", type=Path, help="write the printed lines here")
    p.add_argument("--paper", type=paper_scores, help="the paper's ROUGE-1/2/L F1, e.g. 39.84/16.25/36.73")
    p.add_argument("--paper-source", default="", help="where --paper comes from")
    p.add_argument("--checkpoint", default="", help="the model that wrote the hypotheses")
    p.add_argument("--commands", default="", help="the logs folder whose commands.txt lists what ran")
    p.add_argument("--scope", default="", help="the model whose stages' commands to keep")
    args = p.parse_args(argv)
    if args.resamples < 1:
        p.error(f"--resamples must be >= 1, got {args.resamples}")
    try:
        refs = read_lines(args.ref)
        hyps = read_generate(args.generate) if args.generate else read_lines(args.hyp)
        if len(hyps) != len(refs):
            raise RougeError(f"{args.generate or args.hyp}: {len(hyps)} hypotheses but "
                             f"{args.ref}: {len(refs)} references")
        result = evaluate(hyps, refs, resamples=args.resamples, seed=args.seed, workers=args.workers)
    except RougeError as exc:
        print(f"rouge.py: error: {exc}", file=sys.stderr)
        return 1
    result.update(hypotheses=str(args.generate or args.hyp), references=str(args.ref),
                  checkpoint=args.checkpoint)
    if args.paper:
        # Each paper's ROUGE-L is ROUGE-1.5.5's summary-level L: compare it with rougeLsum.
        result["paper"] = {**args.paper, "source": args.paper_source, "compare_rougeL_with": "rougeLsum"}
    if args.commands:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from evaluate import commands
        result["commands"] = commands(args.commands, args.scope)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json_out.with_name(args.json_out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        tmp.replace(args.json_out)
    lines = []
    for t in TYPES:
        s = result["scores"][t]
        lines.append(f"{t}: P {s['precision']:.2f} R {s['recall']:.2f} F1 {s['f1']:.2f} "
                     f"(95% CI {s['f1_ci95'][0]:.2f}-{s['f1_ci95'][1]:.2f})")
    lines.append(headline(result))
    if args.text_out:
        args.text_out.parent.mkdir(parents=True, exist_ok=True)
        args.text_out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:-1]), file=sys.stderr)
    print(lines[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
