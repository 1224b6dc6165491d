"""Model-level benchmark: training tokens/s, fairseq-generate sentences/s, decoding step time.

Models, all of one size (the IWSLT14 De-En settings: d 512, FFN 1024, 4
heads), on the same synthetic data:

* ours: ``lightweightconv_iwslt_de_en``, ``dynamicconv_iwslt_de_en``,
  ``talk_iwslt_de_en`` and, where this checkout has it,
  ``attention_iwslt_de_en`` (a Transformer built from the plugin's blocks);
* fairseq's: ``lightconv_iwslt_de_en`` (DynamicConv, its PyTorch code) and
  ``transformer_iwslt_de_en``.

An architecture this checkout does not register is a row that says "not in
this checkout". The data: sentences of exactly ``--length`` words from
``--vocab`` words per side, binarised once (``bench_model_cases``).

* Training: fairseq-train, ``--max-tokens`` per update, target tokens per
  second of each update after two warm-up updates (Adam, label smoothing,
  the architecture's own dropout).
* Generation: fairseq-generate on the test set with ``--batch-size`` 128 at
  beam 4 and beam 5, every hypothesis forced to ``--length`` tokens (so all
  models decode the same steps); sentences per second of each batch after
  an untimed warm-up on 8 sentences. ``--gen-rounds`` (3) passes over the
  models, each starting one model later, pool each model's batches.
* Steps: one incremental decoding step (decoder, output layer, log-softmax,
  state reorder) for ``--hyps`` hypotheses, against the number of tokens
  already generated.

Each training, generation and step sweep runs in its own forked process.

    python scripts/bench_models.py --out bench_out/x [--models dynamic fairseq-lightconv] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402
import bench_model_cases as mc  # noqa: E402
from bench_models_report import markdown, plot  # noqa: E402

MODELS = {
    "lightweight": "lightweightconv_iwslt_de_en",
    "dynamic": "dynamicconv_iwslt_de_en",
    "talk": "talk_iwslt_de_en",
    "attention": "attention_iwslt_de_en",
    "fairseq-lightconv": "lightconv_iwslt_de_en",
    "fairseq-transformer": "transformer_iwslt_de_en",
}
TRAIN_COLS = ["model", "arch", "status", "updates", "tokens_per_update", "median_tok_s", "q1_tok_s", "q3_tok_s",
              "min_tok_s", "max_tok_s"]
GEN_COLS = ["model", "arch", "beam", "status", "batches", "batch_size", "median_sent_s", "q1_sent_s", "q3_sent_s",
            "min_sent_s", "max_sent_s", "total_sent_s"]
STEP_COLS = ["model", "arch", "position", "ms"]
# --smoke: a model of one 32-wide layer per side, so that the whole pipeline runs in seconds.
TINY = ["--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "32",
        "--decoder-ffn-embed-dim", "32", "--encoder-layers", "1", "--decoder-layers", "1",
        "--encoder-attention-heads", "2", "--decoder-attention-heads", "2"]


def _extra(name, smoke):
    if not smoke:
        return []
    return TINY + ([] if name == "fairseq-transformer" else
                   ["--encoder-kernel-size-list", "[3]", "--decoder-kernel-size-list", "[3]"])


def available(names) -> dict:
    """name -> None if this checkout registers its architecture, else why not."""
    import lightconv_plugin  # noqa: F401  (registers ours)
    from fairseq.models import ARCH_MODEL_REGISTRY

    return {n: None if MODELS[n] in ARCH_MODEL_REGISTRY else "not in this checkout" for n in names}


def corpus(args) -> Path:
    """The binarised corpus under ``--out``, made unless one of the same parameters is there."""
    data = args.out / "data"
    params = json.dumps([args.length, args.vocab, args.train_sentences, args.test_sentences])
    if (data / "params.json").exists() and (data / "params.json").read_text() == params:
        return data / "bin"
    shutil.rmtree(data, ignore_errors=True)
    mc.write_corpus(data / "raw", args.length, args.vocab,
                    {"train": args.train_sentences, "valid": 8, "test": args.test_sentences})
    res = bc.isolated(mc.binarize, data / "raw", data / "bin", args.out / "logs" / "binarize.log")
    if "error" in res:
        raise SystemExit(f"binarising the corpus failed: {res['error']} (see {args.out / 'logs' / 'binarize.log'})")
    (data / "params.json").write_text(params)
    return data / "bin"


def profile_models(args):
    """torch.profiler tables of one training update and one beam-5 batch of each model, to files."""
    bin_dir, missing = corpus(args), available(args.models)
    for name in (n for n in args.models if missing[n] is None):
        ckpt, log = args.out / "checkpoints" / f"profile-{name}", args.out / "logs"
        shutil.rmtree(ckpt, ignore_errors=True)
        r = bc.isolated(mc.train, MODELS[name], bin_dir, ckpt, args.max_tokens, 3, 1e9, args.device,
                        log / f"profile.train.{name}.log", _extra(name, args.smoke), True)
        g = bc.isolated(mc.generate, ckpt / "checkpoint_last.pt", bin_dir, max(args.beams), args.batch_size,
                        args.length, 0, args.device, log / f"profile.gen.{name}.log", True) if "error" not in r else r
        for what, res in (("train", r), ("generate", g)):
            prof = res.get("profile") or {"table": res.get("error", "no profile"), "self_ms": {}}
            (args.out / f"profile.{name}.{what}.json").write_text(json.dumps(prof))
        shutil.rmtree(ckpt, ignore_errors=True)
        bc.log(f"  profiled {name}: {args.out}/profile.{name}.{{train,generate}}.json")


def run_all(args) -> dict:
    """Phase by phase (all training, then each beam, then the steps), so that the models a
    table compares are measured close together in time on a machine whose load changes."""
    out = args.out
    why = available(args.models)  # name -> None, or why its rows hold no numbers
    bin_dir = corpus(args)
    ckpt = {n: out / "checkpoints" / n for n in args.models}
    train_rows, gen_rows, step_rows = [], [], []
    for name in args.models:
        shutil.rmtree(ckpt[name], ignore_errors=True)  # fairseq-train would resume from a checkpoint there
        r = None
        if why[name] is None:
            bc.log(f"  train {name} ({MODELS[name]})")
            r = bc.isolated(mc.train, MODELS[name], bin_dir, ckpt[name], args.max_tokens, args.updates,
                            args.train_seconds, args.device, out / "logs" / f"train.{name}.log",
                            _extra(name, args.smoke))
            why[name] = r.get("error") and f"failed: {r['error']}"
        train_rows.append(_train_row(name, MODELS[name], why[name], r if why[name] is None else None))
    save(args, {"train": train_rows, "generate": gen_rows, "steps": step_rows})
    for beam in args.beams:
        gen_rows += generate_rounds(args, beam, why, ckpt, bin_dir)
        save(args, {"train": train_rows, "generate": gen_rows, "steps": step_rows})
    if not args.keep_checkpoints:
        for path in ckpt.values():
            shutil.rmtree(path, ignore_errors=True)
    for name in args.models if args.positions else []:
        swhy = why[name] if why[name] is None or "checkout" in why[name] else None
        if swhy is None:
            bc.log(f"  decoding steps {name}")
            s = bc.isolated(mc.steps, MODELS[name], bin_dir, args.hyps, args.length, args.positions,
                            args.step_seconds, args.device, out / "logs" / f"steps.{name}.log",
                            _extra(name, args.smoke))
            swhy = s.get("error") and f"failed: {s['error']}"
        if swhy is None:
            step_rows += [{"model": name, "arch": MODELS[name], "position": i + 1, "ms": 1e3 * t}
                          for i, t in enumerate(s["times"])]
        else:
            step_rows.append({"model": name, "arch": MODELS[name], "position": "", "ms": swhy})
    return {"train": train_rows, "generate": gen_rows, "steps": step_rows}


def rotated(names: list, rnd: int) -> list:
    """The models in round ``rnd``'s order: each round starts one model later, so no model is
    always the first one run after training (or always the last) when the machine's speed drifts."""
    k = rnd % len(names)
    return names[k:] + names[:k]


def generate_rounds(args, beam: int, why: dict, ckpt: dict, bin_dir) -> list:
    """The generation rows of one beam: ``--gen-rounds`` passes over the models, each run a fresh
    process, each model's batches pooled over the rounds. On a shared machine whose speed moves
    over minutes, one run per model (two batches of 128 sentences on CPU) compared models measured
    at different speeds; interleaved rounds spread that drift over all of them."""
    gwhy = {n: why[n] if why[n] is None or "checkout" in why[n] else "not run: training failed"
            for n in args.models}
    pooled = {n: [] for n in args.models}
    for rnd in range(args.gen_rounds):
        for name in rotated(list(args.models), rnd):
            if gwhy[name] is not None:
                continue
            bc.log(f"  generate {name} beam {beam} (round {rnd + 1}/{args.gen_rounds})")
            g = bc.isolated(mc.generate, ckpt[name] / "checkpoint_last.pt", bin_dir, beam, args.batch_size,
                            args.length, args.gen_seconds, args.device,
                            args.out / "logs" / f"gen.{name}.b{beam}.r{rnd + 1}.log")
            if g.get("error"):
                gwhy[name] = f"failed: {g['error']}"
            else:
                pooled[name] += g["batches"]
    return [_gen_row(n, MODELS[n], beam, gwhy[n], {"batches": pooled[n]} if gwhy[n] is None else None,
                     args.batch_size) for n in args.models]


def save(args, res: dict):
    """Tables, plot and summary of what has been measured so far (after every phase, so that a
    run cut short, e.g. by a time limit, keeps its finished phases)."""
    bc.write_csv(args.out / "train.csv", res["train"], TRAIN_COLS)
    bc.write_csv(args.out / "generate.csv", res["generate"], GEN_COLS)
    bc.write_csv(args.out / "steps.csv", res["steps"], STEP_COLS)
    plot(res, args.out / "models.png")
    (args.out / "models.md").write_text(markdown(res, args))


def _train_row(name, arch, why, res):
    row = {"model": name, "arch": arch, "status": why or "ok"}
    if res is None:
        return row
    measured = res["steps"][2:]  # two warm-up updates
    if not measured:
        return {**row, "status": "failed: no update after the warm-up"}
    s = bc.summarize([n / t for t, n in measured])
    return {**row, "updates": s["n"], "tokens_per_update": sum(n for _, n in measured) / len(measured),
            "median_tok_s": s["median"], "q1_tok_s": s["q1"], "q3_tok_s": s["q3"], "min_tok_s": s["min"],
            "max_tok_s": s["max"]}


def _gen_row(name, arch, beam, why, res, batch_size):
    row = {"model": name, "arch": arch, "beam": beam, "status": why or "ok", "batch_size": batch_size}
    if res is None:
        return row
    b = res["batches"]
    if not b:
        return {**row, "status": "failed: no batch was generated"}
    s = bc.summarize([n / t for t, n in b])
    return {**row, "batches": s["n"], "median_sent_s": s["median"], "q1_sent_s": s["q1"], "q3_sent_s": s["q3"],
            "min_sent_s": s["min"], "max_sent_s": s["max"], "total_sent_s": sum(n for _, n in b) / sum(t for t, _ in b)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=bc.REPO / "bench_out" / "models")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--length", type=int, default=24, help="words per sentence, both sides")
    p.add_argument("--vocab", type=int, default=8000, help="words per side")
    p.add_argument("--train-sentences", type=int, default=400)
    p.add_argument("--test-sentences", type=int, default=256)
    p.add_argument("--max-tokens", type=int, default=1024, help="tokens per training update")
    p.add_argument("--updates", type=int, default=8, help="training updates, 2 of them warm-up")
    p.add_argument("--train-seconds", type=float, default=30, help="stop training after this much measured time")
    p.add_argument("--beams", type=int, nargs="*", default=[4, 5], help="none: no generation")
    p.add_argument("--batch-size", type=int, default=128, help="sentences per generation batch")
    p.add_argument("--gen-seconds", type=float, default=30,
                   help="a generation run stops after this much time (and at least 2 batches), or at the test set's end")
    p.add_argument("--gen-rounds", type=int, default=3,
                   help="passes over the models at each beam, each model's batches pooled over them")
    p.add_argument("--hyps", type=int, default=8, help="hypotheses of the step sweep")
    p.add_argument("--positions", type=int, default=1024, help="steps of the step sweep (0: none)")
    p.add_argument("--step-seconds", type=float, default=20, help="end the step sweep after this much time")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny models and data: checks the pipeline, not speed")
    p.add_argument("--profile", action="store_true", help="only write torch.profiler tables of each model")
    bc.add_threads_arg(p)
    args = p.parse_args(argv)
    if args.gen_rounds < 1:
        p.error(f"--gen-rounds must be at least 1, got {args.gen_rounds}")
    bc.apply_threads_arg(args)
    if args.smoke:
        args.length, args.vocab, args.train_sentences, args.test_sentences = 6, 40, 64, 16
        args.max_tokens, args.updates, args.batch_size, args.positions = 128, 5, 8, 16

    # Imported once here, before any fork (see bench_common and bench_layers.main).
    import torch._dynamo  # noqa: F401
    import fairseq_cli.generate  # noqa: F401
    import fairseq_cli.preprocess  # noqa: F401
    import fairseq_cli.train  # noqa: F401

    if args.profile:
        profile_models(args)
        return 0
    start = time.time()
    save(args, run_all(args))
    bc.log(f"model benchmark in {time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
