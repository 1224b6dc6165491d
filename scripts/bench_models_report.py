"""Tables and plot of ``scripts/bench_models.py``'s results (rows as it writes them to CSV)."""

from __future__ import annotations

from pathlib import Path

import bench_common as bc

MARKS = (1, 16, 64, 256, 512, 1024)


def step_marks(step_rows) -> dict:
    """model -> {mark: (median ms, q1, q3)} over the 16 steps around each mark (positions m-7..m+8)."""
    per = {}
    for r in step_rows:
        if str(r["position"]) != "":
            per.setdefault(r["model"], {})[int(r["position"])] = float(r["ms"])
    marks = {}
    for model, ms in per.items():
        for m in MARKS:
            window = [v for p, v in ms.items() if m - 7 <= p <= m + 8]
            if m <= max(ms) and window:
                marks.setdefault(model, {})[m] = (bc.quantile(window, 0.5), bc.quantile(window, 0.25),
                                                  bc.quantile(window, 0.75))
    return marks


def _train_md(rows, args) -> str:
    head = (f"\n### Training (fairseq-train, --max-tokens {args.max_tokens})\n\nTarget tokens per second of each "
            f"update after 2 warm-up updates: median (min-max) over `n` updates.\n\n")
    return head + bc.markdown_table(["model", "arch", "tokens/s", "min-max", "n"], [
        [r["model"], r["arch"], bc.fmt(r.get("median_tok_s")) if r["status"] == "ok" else r["status"],
         f"{bc.fmt(r.get('min_tok_s'))}-{bc.fmt(r.get('max_tok_s'))}" if r["status"] == "ok" else "",
         r.get("updates", "")] for r in rows])


def _gen_md(rows, args) -> str:
    head = (f"\n### Generation (fairseq-generate, --batch-size {args.batch_size}, every hypothesis "
            f"{args.length} tokens)\n\nSentences per second of each batch after an untimed warm-up: median "
            f"(quartiles) and min-max over `n` batches, pooled over {args.gen_rounds} round(s) of runs that "
            f"interleave the models; `all` = all sentences / all batch time.\n\n")
    body = []
    for r in rows:
        ok = r["status"] == "ok"
        body.append([r["model"], r["beam"],
                     f"{bc.fmt(r.get('median_sent_s'))} ({bc.fmt(r.get('q1_sent_s'))}-{bc.fmt(r.get('q3_sent_s'))})"
                     if ok else r["status"],
                     f"{bc.fmt(r.get('min_sent_s'))}-{bc.fmt(r.get('max_sent_s'))}" if ok else "",
                     bc.fmt(r.get("total_sent_s")) if ok else "", r.get("batches", "")])
    return head + bc.markdown_table(["model", "beam", "sentences/s (quartiles)", "min-max", "all", "n"], body)


def _steps_md(rows, args) -> str:
    marks = step_marks(rows)
    head = (f"\n### One incremental decoding step against tokens already generated\n\n{args.hyps} hypotheses, "
            f"source of {args.length} tokens; ms per step: median over the 16 steps around each position "
            f"(interquartile range in brackets); a sweep stops early at a power of two past "
            f"{args.step_seconds:.0f} s.\n\n")
    cols = [m for m in MARKS if any(m in v for v in marks.values())] or [1]
    body = []
    for name in dict.fromkeys(r["model"] for r in rows):
        fail = next((r["ms"] for r in rows if r["model"] == name and str(r["position"]) == ""), None)
        cells = [fail] + [""] * (len(cols) - 1) if fail else [
            f"{bc.fmt(marks[name][m][0])} ({bc.fmt(marks[name][m][1])}-{bc.fmt(marks[name][m][2])})"
            if m in marks.get(name, {}) else "" for m in cols]
        body.append([name, *cells])
    return head + bc.markdown_table(["model", *[f"t = {m}" for m in cols]], body)


def markdown(res, args) -> str:
    out = [f"## Model level\n\nIWSLT-size models (d 512, FFN 1024, 4 heads{'; --smoke: tiny' if args.smoke else ''}) "
           f"on the same synthetic corpus: sentences of exactly {args.length} words, {args.vocab} words per side. "
           f"{args.device.upper()}, {bc.threads()} torch threads. Each run in its own process."]
    out.append(_train_md(res["train"], args))
    if res["generate"]:
        out.append(_gen_md(res["generate"], args))
    if res["steps"]:
        out.append(_steps_md(res["steps"], args))
    return "\n".join(out) + "\n"


def plot(res, path: Path):
    plt = bc.pyplot()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4.5))
    tr = [r for r in res["train"] if r["status"] == "ok"]
    a.barh([r["model"] for r in tr], [r["median_tok_s"] for r in tr])
    a.set(title="training", xlabel="target tokens/s")
    gen = [r for r in res["generate"] if r["status"] == "ok"]
    names = list(dict.fromkeys(r["model"] for r in gen))
    beams = sorted({r["beam"] for r in gen})
    for i, beam in enumerate(beams):
        g = [r for r in gen if r["beam"] == beam]
        b.barh([names.index(r["model"]) + 0.4 * i for r in g], [r["median_sent_s"] for r in g], height=0.4,
               label=f"beam {beam}")
    b.set_yticks(range(len(names)), names)
    b.set(title="fairseq-generate", xlabel="sentences/s")
    if beams:
        b.legend()
    for name in dict.fromkeys(r["model"] for r in res["steps"]):
        pts = [(int(r["position"]), float(r["ms"])) for r in res["steps"]
               if r["model"] == name and str(r["position"]) != ""]
        if pts:
            c.plot([p for p, _ in pts], [v for _, v in pts], lw=0.8, label=name)
    c.set(title="one incremental decoding step", xlabel="tokens already generated", ylabel="ms", xscale="log",
          yscale="log")
    if c.get_lines():
        c.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
