#!/usr/bin/env python3
"""Scores a fairseq-generate output the ways the papers did; writes the results file.

Metrics (``--metrics``, the first is the paper's and is printed last):

* ``tok_bleu``: BLEU of the tokenised hypotheses (BPE removed) against the
  tokenised references, no further tokenisation (the IWSLT number);
* ``compound_bleu``: the same after splitting intra-word hyphens into
  ``##AT##-##AT##`` on both sides (the WMT En-De number of Wu et al.);
* ``sacrebleu``: the hypotheses detokenised (Moses rules for the target
  language) against the untouched reference text, sacreBLEU's default 13a
  tokenisation, with its signature.

References come from ``--prepared`` (``test.tok.<tgt>``, ``test.raw.<tgt>``)
when given, otherwise from the generate output's ``T-`` lines (tokenised only:
then ``sacrebleu`` needs ``--raw-ref-archive`` and ``--raw-ref-member``, the
reference SGM inside an upstream archive, read where it lies). Every
hypothesis must be there, exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

METRIC_NAMES = {"tok_bleu": "tokenised BLEU", "compound_bleu": "compound-split BLEU",
                "sacrebleu": "detokenised sacreBLEU"}


def tagged_lines(path: str, tag: str) -> dict:
    """{id: text} of the ``tag``-<id> lines of a fairseq-generate output."""
    out = {}
    pattern = re.compile(rf"^{tag}-(\d+)\t(.*)$")
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = pattern.match(line.rstrip("\n"))
            if not m:
                continue
            sid, fields = int(m.group(1)), m.group(2).split("\t")
            if sid in out:
                raise SystemExit(f"{path}: several {tag}-{sid} lines (use --nbest 1)")
            # H- and D- lines are "score<TAB>text"; T- and S- lines just the text.
            if tag in ("H", "D"):
                out[sid] = fields[1] if len(fields) > 1 else ""
            else:
                out[sid] = fields[0]
    return out


def in_order(lines: dict, n: int, what: str) -> list:
    if sorted(lines) != list(range(n)):
        missing = sorted(set(range(n)) - set(lines))[:5]
        raise SystemExit(f"{what}: {len(lines)} lines for {n} test sentences (missing ids {missing}...)")
    return [lines[i] for i in range(n)]


def compound_split(line: str) -> str:
    return re.sub(r"(\S)-(\S)", r"\1 ##AT##-##AT## \2", line)


def read_lines(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def raw_reference(archive: str, member: str) -> list:
    """The segments of a reference SGM inside an archive, as prepare.py reads test sets."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from textproc import ArchiveError, iter_member_lines, parse_seg_lines

    try:
        return list(parse_seg_lines(iter_member_lines(archive, member)))
    except (ArchiveError, OSError) as e:
        raise SystemExit(f"--raw-ref-archive: {e}") from None


def score(metrics, hyps, refs_tok, refs_raw, tgt):
    import sacrebleu

    results = {}
    for metric in metrics:
        if metric == "tok_bleu":
            bleu = sacrebleu.corpus_bleu(hyps, [refs_tok], tokenize="none", force=True)
        elif metric == "compound_bleu":
            bleu = sacrebleu.corpus_bleu([compound_split(h) for h in hyps],
                                         [[compound_split(r) for r in refs_tok]], tokenize="none", force=True)
        elif metric == "sacrebleu":
            if refs_raw is None:
                raise SystemExit("--metrics sacrebleu needs the raw references (--prepared DIR with test.raw.<tgt>, "
                                 "or --raw-ref-archive and --raw-ref-member)")
            from sacremoses import MosesDetokenizer

            detok = MosesDetokenizer(lang=tgt)
            detoks = [detok.detokenize(h.split()) for h in hyps]
            metric_obj = sacrebleu.metrics.BLEU()
            bleu = metric_obj.corpus_score(detoks, [refs_raw])
            results[metric] = {"score": round(bleu.score, 2), "text": str(bleu),
                               "signature": str(metric_obj.get_signature())}
            continue
        else:
            raise SystemExit(f"--metrics: unknown metric {metric!r}; expected {', '.join(METRIC_NAMES)}")
        results[metric] = {"score": round(bleu.score, 2), "text": str(bleu)}
    return results


def commands(log_dir: str, scope: str) -> list:
    """The commands of commands.txt that made this result: the shared stages'
    and those of stages scoped to ``scope`` (``# stage N (name@scope)`` headers)."""
    path = os.path.join(log_dir, "commands.txt")
    if not os.path.exists(path):
        return []
    kept, keep = [], True
    for line in read_lines(path):
        if line.startswith("# stage "):
            m = re.search(r"@([^)\s]+)\)", line)
            keep = m is None or m.group(1) == scope
        if keep:
            kept.append(line)
    return kept


def write_result(record: dict, lines: list, json_out: str, text_out: str) -> None:
    """Stage 6's outputs: the JSON record (complete or absent), the text lines,
    and the same lines on stdout, the metric last."""
    tmp = json_out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
    os.replace(tmp, json_out)
    with open(text_out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generate-output", required=True)
    p.add_argument("--prepared", help="stage 2's folder (test.tok.<tgt>, test.raw.<tgt>)")
    p.add_argument("--src", required=True)
    p.add_argument("--tgt", required=True)
    p.add_argument("--metrics", nargs="+", required=True, choices=sorted(METRIC_NAMES))
    p.add_argument("--paper", default="", help="the paper's number for the first metric")
    p.add_argument("--paper-source", default="")
    p.add_argument("--checkpoint", default="")
    p.add_argument("--commands", default="", help="the logs folder whose commands.txt lists what ran")
    p.add_argument("--scope", default="", help="the model whose stages' commands to keep")
    p.add_argument("--raw-ref-archive", help="an upstream archive holding the raw reference (SGM)")
    p.add_argument("--raw-ref-member", help="the reference SGM's name inside --raw-ref-archive")
    p.add_argument("--json-out", required=True)
    p.add_argument("--text-out", required=True)
    a = p.parse_args(argv)

    hyp_lines = tagged_lines(a.generate_output, "H")
    n = len(hyp_lines)
    if n == 0:
        raise SystemExit(f"{a.generate_output}: no hypotheses (H- lines)")
    refs_raw = None
    if a.prepared:
        refs_tok = read_lines(os.path.join(a.prepared, f"test.tok.{a.tgt}"))
        raw_path = os.path.join(a.prepared, f"test.raw.{a.tgt}")
        refs_raw = read_lines(raw_path) if os.path.exists(raw_path) else None
        if len(refs_tok) != n:
            raise SystemExit(f"{a.generate_output}: {n} hypotheses for {len(refs_tok)} references in {a.prepared}")
    else:
        refs_tok = in_order(tagged_lines(a.generate_output, "T"), n, "T- lines")
    if bool(a.raw_ref_archive) != bool(a.raw_ref_member):
        p.error("--raw-ref-archive and --raw-ref-member go together")
    if a.raw_ref_archive:
        refs_raw = raw_reference(a.raw_ref_archive, a.raw_ref_member)
        if len(refs_raw) != n:
            raise SystemExit(f"{a.generate_output}: {n} hypotheses for {len(refs_raw)} reference segments "
                             f"in {a.raw_ref_archive}:{a.raw_ref_member}")
    hyps = in_order(hyp_lines, n, "H- lines")
    results = score(a.metrics, hyps, refs_tok, refs_raw, a.tgt)

    first = a.metrics[0]
    record = {
        "metrics": results, "primary": first, "sentences": n,
        "paper": {"metric": first, "score": float(a.paper) if a.paper else None, "source": a.paper_source},
        "checkpoint": a.checkpoint, "generate_output": a.generate_output,
        "commands": commands(a.commands, a.scope) if a.commands else [],
    }
    lines = [f"{METRIC_NAMES[m]}: {r['text']}" + (f"  [{r['signature']}]" if "signature" in r else "")
             for m, r in results.items()]
    paper = f" (paper: {a.paper})" if a.paper else ""
    lines.append(f"{METRIC_NAMES[first]} = {results[first]['score']:.2f}{paper}")
    write_result(record, lines, a.json_out, a.text_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
