"""CPU benchmark: one DynamicConv layer against fairseq's and against attention.

Forward + backward time (median) and peak memory of
  * ours:      Linear(C -> H*K) kernel prediction + lightconv_kernels.dynamic_conv
  * fairseq:   fairseq.modules.DynamicConv1dTBC (kernel prediction included)
  * attention: Linear(C -> 3C) + torch scaled_dot_product_attention (H heads)
at B=4, C=512, H=8, K=31 (centred), for T in {64, 512, 2048, 8192}, 2 threads.

Each measurement runs in a fresh subprocess so that its peak resident memory
(ru_maxrss, minus what the process held before the layer ran) is its own.
Prints a table, checks the project's bar (no slower than fairseq at any T, at
most half its time for T >= 2048, time linear in T) and writes a PNG plot.

    python scripts/bench_cpu.py [--T 64 512 2048 8192] [--png bench_out/bench_cpu.png]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

B, C, H, K = 4, 512, 8, 31
IMPLS = ("ours", "fairseq", "attention")


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _build(impl, T):
    import torch

    if impl == "ours":
        from lightconv_kernels import dynamic_conv

        proj = torch.nn.Linear(C, H * K, bias=False)

        def step(x):  # x (B, T, C)
            return dynamic_conv(x, proj(x).view(B, T, H, K), K // 2, training=True)

        return step, torch.randn(B, T, C)
    if impl == "fairseq":
        import lightconv_plugin.compat  # noqa: F401  (quiets fairseq's root DEBUG logging)
        from fairseq.modules import DynamicConv1dTBC

        conv = DynamicConv1dTBC(C, K, padding_l=K // 2, weight_softmax=True, num_heads=H)
        conv.train()
        return conv, torch.randn(T, B, C)
    if impl == "attention":
        qkv = torch.nn.Linear(C, 3 * C)

        def step(x):
            q, k, v = qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

        return step, torch.randn(B, T, C)
    raise ValueError(f"impl={impl!r}: expected one of {IMPLS}")


def worker(impl, T, repeats):
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)

    def run(layer, x):
        layer(x).float().sum().backward()

    # A tiny call first loads whatever the first call imports lazily, which
    # must not count as the layer's memory.
    tiny, x_tiny = _build(impl, 8)
    run(tiny, x_tiny.requires_grad_())
    layer, x = _build(impl, T)
    x.requires_grad_()
    rss0 = _rss_mb()
    run(layer, x)  # warm-up; also reaches the peak memory
    times = []
    for _ in range(repeats):
        x.grad = None
        t0 = time.perf_counter()
        run(layer, x)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
    print(json.dumps({"ms": 1e3 * statistics.median(times), "peak_mb": peak}))


def measure(impl, T):
    repeats = 7 if T <= 512 else 3
    cmd = [sys.executable, __file__, "--worker", impl, str(T), str(repeats)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def plot(results, Ts, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for impl in IMPLS:
        ax.loglog(Ts, [results[impl, T]["ms"] for T in Ts], marker="o", label=impl)
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("forward + backward (ms)")
    ax.set_title(f"CPU, 2 threads, B={B} C={C} H={H} K={K}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, nargs="+", default=[64, 512, 2048, 8192])
    parser.add_argument("--png", default="bench_out/bench_cpu.png")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        impl, T, repeats = args.worker
        return worker(impl, int(T), int(repeats))

    Ts = sorted(args.T)
    results = {}
    for T in Ts:
        for impl in IMPLS:
            results[impl, T] = measure(impl, T)
            print(f"  measured {impl:9s} T={T:5d}: {results[impl, T]['ms']:10.1f} ms", file=sys.stderr)

    head = f"{'T':>6} | " + " | ".join(f"{i + ' ms':>13}" for i in IMPLS) + " | " + \
        " | ".join(f"{i + ' MB':>13}" for i in IMPLS) + " | ours/fairseq"
    print(f"One DynamicConv layer, forward+backward, B={B} C={C} H={H} K={K}, 2 threads")
    print(head)
    print("-" * len(head))
    for T in Ts:
        ms = [results[i, T]["ms"] for i in IMPLS]
        mb = [results[i, T]["peak_mb"] for i in IMPLS]
        print(f"{T:>6} | " + " | ".join(f"{v:>13.1f}" for v in ms) + " | " +
              " | ".join(f"{v:>13.0f}" for v in mb) + f" | {ms[0] / ms[1]:>12.2f}")

    ok = True
    for T in Ts:
        ratio = results["ours", T]["ms"] / results["fairseq", T]["ms"]
        bar = 0.5 if T >= 2048 else 1.0
        verdict = "ok" if ratio <= bar else "MISSED"
        ok &= ratio <= bar
        print(f"check T={T}: ours/fairseq = {ratio:.2f} (bar <= {bar}) {verdict}")
    for a, b in zip(Ts, Ts[1:]):
        growth = results["ours", b]["ms"] / results["ours", a]["ms"]
        print(f"check growth T {a} -> {b} (x{b // a}): ours time x{growth:.2f}, "
              f"memory x{results['ours', b]['peak_mb'] / max(results['ours', a]['peak_mb'], 1e-9):.2f}")
    plot(results, Ts, args.png)
    print(f"plot written to {args.png}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
