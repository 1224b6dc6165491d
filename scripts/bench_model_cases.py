"""What ``scripts/bench_models.py`` runs in each forked process: corpus, training, generation, steps.

Training and generation run fairseq's own command-line mains
(``fairseq_cli.train.cli_main``, ``fairseq_cli.generate.cli_main``) with the
argument lists ``fairseq-train`` / ``fairseq-generate`` would get; one
method of each is wrapped to time it: ``Trainer.train_step`` (one update:
forward, backward, optimiser step; data loading is outside it) and the
task's ``inference_step`` (one batch of beam search). Both run in a child
forked from a parent that has imported fairseq (see ``bench_common``), with
the child's output sent to a log file.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import bench_common as bc

PLUGIN = str(bc.REPO / "lightconv_plugin")


def _quiet(log_path: Path):
    """Send this (child) process's stdout and stderr to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def _sync(device: str):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _profiled(fn):
    """(fn(), ``bench_common.profile_summary`` of it)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    return out, bc.profile_summary(prof)


def _cli(main, argv):
    saved = sys.argv
    sys.argv = argv
    try:
        main()
    finally:
        sys.argv = saved


# ------------------------------------------------------------------- corpus
def write_corpus(raw: Path, length: int, vocab: int, sizes: dict, seed: int = 1):
    """Sentences of exactly ``length`` words drawn uniformly from ``vocab`` words per side.

    What the words say does not matter to a throughput; fixed lengths make
    every batch, and every model's batches, the same shape. The dictionaries
    are written here so that both sides have exactly ``vocab`` words.
    """
    rng = random.Random(seed)
    raw.mkdir(parents=True, exist_ok=True)
    for side, prefix in (("src", "s"), ("tgt", "t")):
        (raw / f"dict.{side}.txt").write_text("".join(f"{prefix}{i} 1\n" for i in range(vocab)))
    for split, n in sizes.items():
        for side, prefix in (("src", "s"), ("tgt", "t")):
            lines = (" ".join(f"{prefix}{rng.randrange(vocab)}" for _ in range(length)) for _ in range(n))
            (raw / f"{split}.{side}").write_text("\n".join(lines) + "\n")


def binarize(raw: Path, bin_dir: Path, log: Path) -> dict:
    import fairseq_cli.preprocess as fp

    _quiet(log)
    _cli(fp.cli_main, ["fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt",
                       "--trainpref", str(raw / "train"), "--validpref", str(raw / "valid"),
                       "--testpref", str(raw / "test"), "--destdir", str(bin_dir), "--workers", "1",
                       "--srcdict", str(raw / "dict.src.txt"), "--tgtdict", str(raw / "dict.tgt.txt")])
    return {"ok": True}


# ----------------------------------------------------------------- training
def train(arch, data, save_dir, max_tokens, updates, budget_s, device, log, extra=(), profile=False) -> dict:
    """Per-update (seconds, target tokens) of fairseq-train, the first two being the warm-up.

    It stops after ``updates`` updates, or earlier once the updates after
    the warm-up have taken ``budget_s`` seconds and there are 3 of them, by
    lowering fairseq's own max_update (so that it saves its checkpoint as
    at any other stop). ``profile``: the third update runs under torch.profiler.
    """
    import torch
    import fairseq_cli.train as ft
    from fairseq.trainer import Trainer

    _quiet(log)
    torch.set_num_threads(bc.threads())
    steps, tables, inner = [], [], Trainer.train_step

    def timed(self, samples, *a, **kw):
        _sync(device)
        t0 = time.perf_counter()
        if profile and len(steps) == 2:
            out, table = _profiled(lambda: inner(self, samples, *a, **kw))
            tables.append(table)
        else:
            out = inner(self, samples, *a, **kw)
        _sync(device)
        steps.append((time.perf_counter() - t0, sum(int(s["ntokens"]) for s in samples if s)))
        if len(steps) >= 2 + 3 and sum(t for t, _ in steps[2:]) > budget_s:
            self.cfg.optimization.max_update = self.get_num_updates()
        return out

    Trainer.train_step = timed
    argv = ["fairseq-train", str(data), "--user-dir", PLUGIN, "--task", "translation", "--arch", arch,
            "--source-lang", "src", "--target-lang", "tgt",
            "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)", "--lr", "5e-4", "--lr-scheduler", "inverse_sqrt",
            "--warmup-updates", "4000", "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
            "--max-tokens", str(max_tokens), "--max-update", str(updates), "--disable-validation",
            "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--no-save-optimizer-state",
            "--num-workers", "0", "--seed", "1", "--log-format", "simple", "--log-interval", "1",
            "--max-source-positions", "1100", "--max-target-positions", "1100"]
    argv += (["--cpu"] if device == "cpu" else ["--fp16"]) + list(extra)
    _cli(ft.cli_main, argv)
    return {"steps": steps, "profile": tables[0] if tables else ""}


# --------------------------------------------------------------- generation
class _Enough(Exception):
    pass


def generate(checkpoint, data, beam, batch_size, length, budget_s, device, log, profile=False) -> dict:
    """Per-batch (seconds, sentences) of fairseq-generate, every hypothesis exactly ``length`` tokens.

    It stops after the batch that takes the total past ``budget_s``, when
    at least 2 batches are done. ``profile``: one batch, under torch.profiler.
    """
    import torch
    import fairseq_cli.generate as fg
    from fairseq.tasks.translation import TranslationTask

    _quiet(log)
    torch.set_num_threads(bc.threads())
    batches, warm, tables, inner = [], [], [], TranslationTask.inference_step

    def timed(self, generator, models, sample, *a, **kw):
        if not batches and not warm:  # warm-up: the first 8 sentences of the first batch, untimed
            net = {k: v[:8] for k, v in sample["net_input"].items()}
            inner(self, generator, models, {"id": sample["id"][:8], "net_input": net, "nsentences": 8})
            warm.append(True)
        _sync(device)
        t0 = time.perf_counter()
        if profile:
            out, table = _profiled(lambda: inner(self, generator, models, sample, *a, **kw))
            tables.append(table)
        else:
            out = inner(self, generator, models, sample, *a, **kw)
        _sync(device)
        batches.append((time.perf_counter() - t0, int(sample["nsentences"])))
        if profile or (len(batches) >= 2 and sum(t for t, _ in batches) > budget_s):
            raise _Enough
        return out

    TranslationTask.inference_step = timed
    # --min-len and --max-len-b at the same length: no hypothesis ends early
    # or late, so every model decodes the same number of steps.
    argv = ["fairseq-generate", str(data), "--user-dir", PLUGIN, "--task", "translation",
            "--source-lang", "src", "--target-lang", "tgt", "--path", str(checkpoint), "--gen-subset", "test",
            "--beam", str(beam), "--batch-size", str(batch_size), "--max-len-a", "0",
            "--max-len-b", str(length), "--min-len", str(length), "--num-workers", "0", "--quiet",
            "--max-source-positions", "1100", "--max-target-positions", "1100"]
    argv += ["--cpu"] if device == "cpu" else ["--fp16"]
    try:
        _cli(fg.cli_main, argv)
    except _Enough:
        pass
    return {"batches": batches, "profile": tables[0] if tables else ""}


# -------------------------------------------------- incremental decoding steps
def steps(arch, data, hyps, src_len, positions, budget_s, device, log, extra=()) -> dict:
    """Seconds of each incremental decoding step 1..positions, as beam search runs one.

    The sweep ends early, at a power of two, once it has taken ``budget_s``.

    A step is the decoder on the newest token (with its cached state),
    output projection and log-softmax, then the reorder of the cached state
    that beam search does after every step. The weights are a fresh
    initialisation: the work does not depend on their values.
    """
    from typing import Dict, List, Optional

    import torch
    from fairseq import options, tasks
    from fairseq.sequence_generator import EnsembleModel

    _quiet(log)
    torch.set_num_threads(bc.threads())
    torch.manual_seed(0)
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        str(data), "--user-dir", PLUGIN, "--task", "translation", "--arch", arch, "--source-lang", "src",
        "--target-lang", "tgt", "--max-source-positions", "1100", "--max-target-positions", str(positions + 16),
        *extra])
    task = tasks.setup_task(args)
    model = task.build_model(args).eval().to(device)
    if device == "cuda":
        model.half()
    ens = EnsembleModel([model])
    vocab = len(task.target_dictionary)
    eos = task.target_dictionary.eos()
    src = torch.randint(4, vocab, (hyps, src_len), device=device)
    src[:, -1] = eos
    tokens = torch.randint(4, vocab, (hyps, positions + 1), device=device)
    tokens[:, 0] = eos
    order = torch.arange(hyps, device=device)
    times = []
    with torch.inference_mode():
        for sweep in range(2):  # the first, short sweep is the warm-up
            enc = ens.forward_encoder({"src_tokens": src, "src_lengths": torch.full((hyps,), src_len, device=device)})
            state: List[Dict[str, Dict[str, Optional[torch.Tensor]]]] = [{}]
            for step in range(8 if sweep == 0 else positions):
                _sync(device)
                t0 = time.perf_counter()
                if step > 0:
                    ens.reorder_incremental_state(state, order)
                ens.forward_decoder(tokens[:, : step + 1], enc, state, 1.0)
                _sync(device)
                if sweep:
                    times.append(time.perf_counter() - t0)
                    n = len(times)
                    if n & (n - 1) == 0 and n >= 64 and sum(times) > budget_s:
                        return {"times": times}
    return {"times": times}
