#!/usr/bin/env python3
"""Corpus BLEU (sacreBLEU) of a fairseq-generate output against raw references.

Reads the ``D-<id>`` lines (detokenised hypotheses: BPE removed with
``--post-process`` and the ``--tokenizer`` undone) of a fairseq-generate
output file, sorts them by sentence id, checks that there is exactly one
hypothesis for every line of the reference file, writes the hypotheses in
reference order (--hyp-out) and scores them with sacreBLEU against the
untouched reference text (not fairseq's T- lines, which have been through the
dictionary).  Prints sacreBLEU's full result line and its signature to
stderr, and ``BLEU = xx.xx`` as the last line of stdout; --json-out stores
the score.
"""

import argparse
import json
import sys


def read_hypotheses(path, prefix="D"):
    hyps = {}
    tag = prefix + "-"
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith(tag):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                raise SystemExit(f"{path}: malformed line: {line!r}")
            sid = int(fields[0][len(tag):])
            text = fields[2] if len(fields) >= 3 else ""
            if sid in hyps:
                raise SystemExit(f"{path}: several {tag} lines for sentence {sid} "
                                 "(use --nbest 1)")
            hyps[sid] = text
    return hyps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generate-output", required=True,
                   help="fairseq-generate output (generate-<subset>.txt)")
    p.add_argument("--ref", required=True, help="raw reference text, one line per sentence")
    p.add_argument("--hyp-out", help="write the sorted hypotheses here")
    p.add_argument("--json-out", help="write the score here as JSON")
    p.add_argument("--prefix", default="D", choices=["D", "H"],
                   help="which fairseq-generate lines to score (default D: detokenised)")
    p.add_argument("--tokenize", default="13a", help="sacreBLEU tokenizer (default 13a)")
    args = p.parse_args(argv)

    import sacrebleu  # imported late: --help works without it

    with open(args.ref, encoding="utf-8") as f:
        refs = [line.rstrip("\n") for line in f]
    hyps = read_hypotheses(args.generate_output, args.prefix)
    missing = [i for i in range(len(refs)) if i not in hyps]
    extra = sorted(set(hyps) - set(range(len(refs))))
    if missing or extra:
        raise SystemExit(
            f"{args.generate_output} does not match {args.ref}: {len(refs)} references, "
            f"{len(hyps)} hypotheses; missing ids {missing[:10]}, unexpected ids {extra[:10]}")
    ordered = [hyps[i] for i in range(len(refs))]
    if args.hyp_out:
        with open(args.hyp_out, "w", encoding="utf-8") as f:
            f.writelines(h + "\n" for h in ordered)

    bleu = sacrebleu.metrics.BLEU(tokenize=args.tokenize)
    result = bleu.corpus_score(ordered, [refs])
    signature = str(bleu.get_signature())
    print(f"sacreBLEU: {result}", file=sys.stderr)
    print(f"signature: {signature}", file=sys.stderr)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"bleu": round(result.score, 2), "n_sentences": len(refs),
                       "result": str(result), "signature": signature}, f, indent=1)
            f.write("\n")
    print(f"BLEU = {result.score:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
