"""One command for a machine with a GPU: are the kernels right there, and how fast are they?

    python scripts/gpu_check.py [--out DIR]                  # on CUDA; exit 2 without a GPU
    python scripts/gpu_check.py --parts bench,overhead       # only some parts (grid,bench,overhead,models)
    python scripts/gpu_check.py --device cpu --interpret     # smoke mode: tiny grid, Triton interpreter

1. Correctness (``gpu_check_grid``): every kernel against the interpreter
   tests' float64 references on the tests' shape grid, in fp32, fp16 and
   bf16, NaN-poisoned outputs, then every autotune configuration once; its
   autotuners time each configuration by one run, not Triton's 125 ms.
2. The autotuner's choice for every shape it tuned.
3. Kernel benchmark (``gpu_check_bench``): ``bench_kernels.py``'s cases,
   GB/s and its fraction of the device's peak memory bandwidth.
4. Host overhead (``gpu_check_overhead``): the same calls from a CUDA
   graph, i.e. GPU time without Python and launch overhead, and the roofline
   fraction of that; a cProfile of the host side of a tiny call.
5. Models (``bench_models.py`` on the GPU, --fp16): training tokens/s at
   T = 1024 and fairseq-generate sentences/s at 24 tokens, ours against the
   attention model and fairseq's; then DynamicConv against attention again
   at T = 1024 with four times the batch (32 sentences per update), where
   the GPU's work, not the host's, sets the pace.

Writes ``gpu_check.md``, ``gpu_check.png`` and CSVs under ``--out``. Exit
status: 1 on any mismatch (or a Triton case that fails to run), 2 without a
CUDA device (unless ``--device cpu --interpret``) or without Triton >= 3.3,
else 0. Goals are reported, not enforced.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402

GRID_COLS = ["kernel", "case", "dtype", "config", "output", "error", "torch_error", "tolerance", "nan", "status"]
BENCH_COLS = ["op", "impl", "B", "T", "C", "H", "K/M", "status", "fwd_ms", "fwd_gbps", "fwd_frac", "fwd_bwd_ms",
              "fwd_bwd_gbps", "fwd_bwd_frac", "bytes_fwd", "bytes_fwd_bwd"]
GPU_MODELS = ["dynamic", "attention", "fairseq-lightconv", "fairseq-transformer"]
PARTS = ("grid", "bench", "overhead", "models")  # 1, 2+3, 4, 5 of the list above


def run_models(out: Path, device: str, seconds: float) -> list:
    """bench_models.py three times on the GPU (a fresh process each): training and decoding steps at
    T = 1024, generation of 24-token sentences at beams 4 and 5, training at T = 1024 with 4x the batch."""
    script = str(Path(__file__).resolve().parent / "bench_models.py")
    budget = ["--train-seconds", str(seconds), "--gen-seconds", str(seconds), "--step-seconds", str(seconds)]
    runs = [(out / "models_T1024", ["--length", "1024", "--train-sentences", "96", "--test-sentences", "8",
                                    "--max-tokens", "8200", "--updates", "12", "--beams", "--positions", "1024"]),
            (out / "models_gen", ["--length", "24", "--train-sentences", "400", "--test-sentences", "1024",
                                  "--max-tokens", "4096", "--updates", "3", "--beams", "4", "5",
                                  # one round keeps gpu-check in its 10 minutes; the 1024
                                  # sentences already give each run 8 batches
                                  "--gen-rounds", "1", "--positions", "0"]),
            (out / "models_T1024_batch32", ["--models", "dynamic", "attention", "--length", "1024",
                                            "--train-sentences", "192", "--test-sentences", "8",
                                            "--max-tokens", "32800", "--updates", "12", "--beams",
                                            "--positions", "0"])]
    for path, extra in runs:
        models = [] if "--models" in extra else ["--models", *GPU_MODELS]
        cmd = [sys.executable, script, "--device", device, "--out", str(path), *models, *extra, *budget]
        bc.log("$ " + " ".join(cmd))
        subprocess.run(cmd, check=False)
    return [path for path, _ in runs]


def model_goal(train_csv: Path, smoke: bool, batch: str = "8 sentences per update"):
    rows = {r["model"]: r for r in bc.read_csv(train_csv)} if train_csv.exists() else {}
    dyn, att = rows.get("dynamic"), rows.get("attention")
    what = ("DynamicConv model >= 1.3x the training tokens/s of the attention model of the same size at "
            f"T = 1024 ({batch})")
    if smoke:
        what += " (smoke: tiny models on CPU, not the GPU figure)"
    if not dyn or not att or dyn["status"] != "ok" or att["status"] != "ok":
        why = [f"{n}: {r['status'] if r else 'not measured'}" for n, r in (("dynamic", dyn), ("attention", att))]
        return (what, "; ".join(why), None)
    ratio = float(dyn["median_tok_s"]) / float(att["median_tok_s"])
    return (what, f"{ratio:.2f}x ({bc.fmt(dyn['median_tok_s'])} vs {bc.fmt(att['median_tok_s'])} tokens/s)", ratio >= 1.3)


def overhead_part(out: Path, batch: int):
    """Host overhead against CUDA-graph GPU time (``gpu_check_overhead``); the roofline goal on GPU time."""
    import gpu_check_overhead as go

    what = ("Triton DynamicConv forward+backward GPU time (CUDA graph replay, no host overhead) >= 80% of the "
            f"memory-bandwidth roofline at B={batch}, T=8192")
    try:
        go.run(out, batch)
    except Exception as exc:  # the report says so; the other parts stand
        (out / "overhead.md").write_text(f"## Host overhead against GPU time\n\nfailed: {type(exc).__name__}: "
                                         f"{str(exc)[:300]}\n")
        return (what, f"not measured: {type(exc).__name__}", None)
    rows = [r for r in bc.read_csv(out / "overhead.csv") if r["op"] == "dynamic_conv"
            and r["pass"] == "forward+backward" and r["T"] == "8192" and r["status"] == "ok"]
    if not rows:
        return (what, "not measured", None)
    worst = min(rows, key=lambda r: float(r["graph_frac"]))
    frac = float(worst["graph_frac"])
    return (what, f"lowest {100 * frac:.0f}% (K={worst['K']}, {bc.fmt(float(worst['graph_ms']))} ms)", frac >= 0.8)


def _verdict(ok) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def report(out, info, grid, choices, bench, peak_src, goals, model_dirs, timings, smoke) -> str:
    bad = [r for r in grid if r["status"] != "ok"]
    md = [f"# GPU check{' (smoke mode: CPU, Triton interpreter, tiny grid)' if smoke else ''}\n",
          f"{info['device']}; torch {info['torch']}, triton {info['triton']}, fairseq {info['fairseq']}; "
          f"{date.today()}. Peak bandwidth: {peak_src}.\n",
          "Time per part: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".\n",
          *([f"Parts not run (--parts): {', '.join(info['skipped'])}; their sections are empty.\n"]
            if info.get("skipped") else []),
          "## Goals\n", bc.markdown_table(["goal", "measured", "verdict"],
                                          [[g, m, _verdict(ok)] for g, m, ok in goals]),
          f"\n## Correctness: {len(grid)} comparisons, {len(bad)} mismatches\n",
          "Tolerance per output: 2x plain PyTorch's error in that dtype against the float64 loop, at least "
          "1e-5" + (" (bf16 under this interpreter, which truncates float32 to bf16: at least two roundings)"
                    if info.get("truncating_bf16") else "") + ". All rows: `grid.csv`. \"autotuned\" rows went "
          "through the autotuners, which here time each configuration by one run (the kernel benchmark "
          "autotunes with Triton's own benchmark).\n"]
    summary = {}
    for r in grid:
        key = (r["kernel"], r["dtype"], r["config"] if r["config"].startswith("config") else "autotuned")
        worst = r.get("error", 0) / r["tolerance"] if r.get("tolerance") else float("inf")
        n, w, b = summary.get(key, (0, 0.0, 0))
        summary[key] = (n + 1, max(w, worst), b + (r["status"] != "ok"))
    md.append(bc.markdown_table(["kernel", "dtype", "configuration", "comparisons", "worst error / tolerance",
                                 "mismatches"], [[*k, n, f"{w:.2f}", b] for k, (n, w, b) in summary.items()]))
    if bad:
        md.append("\n### Mismatches\n")
        md.append(bc.markdown_table(GRID_COLS, [[bc.fmt(r.get(c, "")) for c in GRID_COLS] for r in bad]))
    md.append("\n## Autotuner choices\n")
    md.append(bc.markdown_table(["kernel", "key", "configuration"], [[r["kernel"], r["key"], r["config"]]
                                                                       for r in choices]))
    md.append("\n## Kernel benchmark (`bench_kernels.py`'s cases)\n")
    md.append(bc.markdown_table(["op", "impl", "T", "K/M", "fwd ms", "fwd GB/s", "% peak", "fwd+bwd ms",
                                 "fwd+bwd GB/s", "% peak"], [
        [r["op"], r["impl"], r["T"], r["K/M"], *((bc.fmt(r["fwd_ms"]), bc.fmt(r["fwd_gbps"]),
         f"{100 * r['fwd_frac']:.0f}", bc.fmt(r["fwd_bwd_ms"]), bc.fmt(r["fwd_bwd_gbps"]),
         f"{100 * r['fwd_bwd_frac']:.0f}") if r["status"] == "ok" else (r["status"], "", "", "", "", ""))]
        for r in bench]))
    if (out / "overhead.md").exists():
        md.append("\n" + (out / "overhead.md").read_text())
    for d in model_dirs:
        if (d / "models.md").exists():
            md.append("\n" + (d / "models.md").read_text().replace("## Model level", f"## Models ({d.name})"))
    text = "\n".join(md) + "\n"
    (out / "gpu_check.md").write_text(text)
    return text


def plot(bench, path: Path):
    plt = bc.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    tri = [r for r in bench if r["impl"] == "triton" and r["status"] == "ok"]
    for key in sorted({(r["op"], r["K/M"]) for r in tri}, key=str):
        pts = sorted((int(r["T"]), 100 * r["fwd_bwd_frac"]) for r in tri if (r["op"], r["K/M"]) == key)
        a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{key[0]} K/M={key[1]}")
    a.axhline(80, color="k", ls="--", lw=0.8)
    a.set(xscale="log", xlabel="T", ylabel="% of peak bandwidth", title="Triton, forward+backward")
    a.legend(fontsize=7)
    fs = {(r["T"], r["K/M"]): r for r in bench if r["impl"] == "fairseq" and r["status"] == "ok"}
    for K in sorted({r["K/M"] for r in tri if r["op"] == "dynamic_conv"}, key=str):
        pts = sorted((int(r["T"]), fs[r["T"], K]["fwd_bwd_ms"] / r["fwd_bwd_ms"]) for r in tri
                     if r["op"] == "dynamic_conv" and r["K/M"] == K and (r["T"], K) in fs)
        b.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"K={K}")
    b.axhline(2, color="k", ls="--", lw=0.8)
    b.set(xscale="log", xlabel="T", ylabel="fairseq time / Triton time", title="DynamicConv forward+backward")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--interpret", action="store_true", help="run the kernels under TRITON_INTERPRET=1")
    p.add_argument("--out", type=Path, help="default: bench_out/gpu-check-<date>-<host>")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, help="processes for the correctness grid (default: all cores but "
                   "two, at most 14; 1 in smoke mode)")
    p.add_argument("--model-seconds", type=float, default=4.0,
                   help="measured seconds per model for training and for each beam (GPU)")
    p.add_argument("--skip-models", action="store_true", help="no model-level part")
    p.add_argument("--models-from", type=Path, help="report an existing bench_models.py output instead")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all), e.g. to redo one "
                        "part into the same --out")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if not parts or any(x not in PARTS for x in parts):
        p.error(f"--parts {args.parts!r}: expected a comma-separated subset of {','.join(PARTS)}")
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
    elif args.device == "cpu":
        p.error("--device cpu runs the kernels only under the Triton interpreter: add --interpret")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check.py needs a CUDA device (torch.cuda.is_available() is False); nothing was checked. "
              "Without one: python scripts/gpu_check.py --device cpu --interpret (smoke mode).")
        return 2
    from lightconv_kernels import backend

    try:  # one line now, not one failure per case later
        backend.check_triton()
    except (ImportError, RuntimeError) as e:
        print(f"gpu_check.py: {e}. Nothing was checked.")
        return 2
    smoke = args.device == "cpu"
    out = args.out or bc.REPO / "bench_out" / f"gpu-check-{date.today()}-{bc.machine()['host']}"
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(bc.threads())
    import lightconv_plugin.compat  # noqa: F401  (fairseq's logging)
    import gpu_check_bench as gb
    import gpu_check_grid as gg

    info = {**bc.machine(), "truncating_bf16": gg.TRUNCATING_BF16, "skipped": [x for x in PARTS if x not in parts],
            "device": torch.cuda.get_device_name() if not smoke else f"CPU ({bc.cpu_model()})"}
    timings, t = {}, time.time()
    grid, bench, choices, model_dirs, peak_src = [], [], [], [], "not measured yet"

    def write_report(goals):
        """After every part, so that a run cut short still leaves a report of what it did."""
        bc.write_csv(out / "grid.csv", grid, GRID_COLS)
        bc.write_csv(out / "kernels.csv", bench, BENCH_COLS)
        bc.write_csv(out / "autotune.csv", choices, ["kernel", "key", "config"])
        report(out, info, grid, choices, bench, peak_src, goals, model_dirs, timings, smoke)

    # Compiling dominates the grid, one CPU core per process; two cores stay for the driver and the GPU.
    workers = args.workers or (1 if smoke else max(1, min(14, (os.cpu_count() or 1) - 2)))
    goals = []
    if "grid" in parts:
        grid = gg.run_grid(smoke, workers)
        timings[f"correctness ({workers} processes)"], t = time.time() - t, time.time()
        write_report(goals)
    if "bench" in parts:
        peak, peak_src = gb.peak_bandwidth(args.device)
        dtype = torch.float32 if smoke else torch.bfloat16
        bench = gb.run_bench(args.device, 1 if smoke else args.batch, dtype, smoke)
        gb.add_fractions(bench, peak)
        timings["kernel benchmark"], t = time.time() - t, time.time()
        choices = gg.autotune_choices()
        goals += gb.kernel_goals(bench, min_T=0 if smoke else 2048)
        plot(bench, out / "gpu_check.png")
        write_report(goals)
    if "overhead" in parts and not smoke:  # CUDA graphs: on a GPU only
        goals.append(overhead_part(out, args.batch))
        timings["host overhead"], t = time.time() - t, time.time()
        write_report(goals)
    model_dirs = [args.models_from] if args.models_from and "models" in parts else []
    if "models" in parts and not smoke and not args.skip_models and not args.models_from:
        model_dirs = run_models(out, args.device, args.model_seconds)
        timings["models"] = time.time() - t
    if model_dirs:
        goals.append(model_goal(model_dirs[0] / "train.csv", smoke))
    if len(model_dirs) > 2:
        goals.append(model_goal(model_dirs[2] / "train.csv", smoke, "32 sentences per update"))
    write_report(goals)
    bad = sum(r["status"] != "ok" for r in grid) + sum(
        r["status"] != "ok" for r in bench if r["impl"] == "triton")
    print(f"gpu check: {len(grid)} comparisons, {bad} mismatches or failed Triton cases -> {out / 'gpu_check.md'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
