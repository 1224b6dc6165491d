"""Host overhead against device time of the Triton ops, for ``scripts/gpu_check.py``.

The kernel benchmark times a call from the host's side (``do_bench``: wall
time of a loop of calls). Where the host spends longer issuing a call than the
GPU spends running it, that measures Python and launch overhead, not the
kernels. This part separates the two, per op and shape:

* ``call``: wall time per call of the public function, as the benchmark sees it;
* ``graph``: the same calls captured once in a CUDA graph and replayed, so the
  host issues nothing: the GPU time of the kernels alone (and the bandwidth the
  roofline goal is about);
* ``tiny``: a call at B=1, T=16, where the GPU work is negligible: the host
  overhead per call;
* a breakdown of the host time of one tiny call, from the public function
  down to a bare Triton launch, next to the autograd engine's own cost for a
  backward on CUDA (which runs it on a device thread) and SDPA's tiny call;
* the GPU time of each kernel of DynamicConv forward+backward at T = 8192
  (torch.profiler), with the bytes that kernel must move: which kernel is
  furthest from the roofline;
* a cProfile table of the tiny calls: where that host time goes.

    python scripts/gpu_check_overhead.py [--out DIR]     # CUDA only
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402

COLS = ["op", "pass", "B", "T", "K", "call_ms", "graph_ms", "graph_gbps", "graph_frac", "status"]


def _ops(B, T, K, dtype, device):
    """(name, forward, forward_backward, (bytes fwd, bytes fwd+bwd)) of the ops at one shape."""
    from lightconv_kernels.bench_case import sdpa_attention
    from lightconv_kernels.conv import bench as cb
    from lightconv_kernels.talk import bench as tb

    s = torch.finfo(dtype).bits // 8
    out = []
    for op in ("lightweight_conv", "dynamic_conv"):
        out.append((op, *cb._ours(op, B, T, K, dtype, device), cb._conv_bytes(B, T, K, op == "dynamic_conv", s, s)))
    out.append(("talk_conv", *tb._ours(B, T, K, dtype, device), tb._talk_bytes(B, T, s)))
    out.append(("attention", *sdpa_attention(B, T, cb.C, cb.H, dtype, device),
                (4 * B * T * cb.C * s, 12 * B * T * cb.C * s)))
    return out


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _wall_ms(fn, reps: int) -> float:
    fn()
    _sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync()
    return 1e3 * (time.perf_counter() - t0) / reps


def _graph_ms(fn, reps: int) -> float:
    """Milliseconds per call of ``fn`` replayed from a CUDA graph of ``reps`` calls."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture (autotuning, allocator pools)
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(3):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / (3 * reps)


def measure(shapes, dtype, peak_bps: float) -> list:
    rows = []
    for B, T, K in shapes:
        for name, fwd, both, nbytes in _ops(B, T, K, dtype, "cuda"):
            for pas, fn, nb in (("forward", fwd, nbytes[0]), ("forward+backward", both, nbytes[1])):
                row = {"op": name, "pass": pas, "B": B, "T": T, "K": K if name != "attention" else ""}
                try:
                    row["call_ms"] = _wall_ms(fn, 50)
                    row["graph_ms"] = _graph_ms(fn, 20)
                    row["graph_gbps"] = nb / row["graph_ms"] / 1e6
                    row["graph_frac"] = row["graph_gbps"] * 1e9 / peak_bps
                    row["status"] = "ok"
                except Exception as exc:  # one op's failure must not hide the others
                    row["status"] = f"failed: {type(exc).__name__}: {str(exc)[:100]}"
                rows.append(row)
            torch.cuda.empty_cache()
    return rows


def host_breakdown(dtype, reps: int = 300, device: str = "cuda") -> list:
    """Host microseconds per call of the layers of a tiny dynamic_conv call (B=1, T=16, K=3).

    The GPU work of every row is a few microseconds, so each time is the host's.
    Rows go from the public function down to one bare Triton launch. (On a CPU
    under the Triton interpreter it runs too, for the tests, timing the interpreter.)
    """
    from lightconv_kernels.bench_case import sdpa_attention
    from lightconv_kernels.conv import bench as cb
    from lightconv_kernels.conv import triton_conv as tc
    from lightconv_kernels.conv import triton_impl as ti
    from lightconv_kernels.triton_common import launch

    B, T, K, H, R = 1, 16, 3, cb.H, cb.C // cb.H
    fwd, both = cb._ours("dynamic_conv", B, T, K, dtype, device)
    x = torch.randn(B, T, cb.C, dtype=dtype, device=device, requires_grad=True)
    w = torch.randn(B, T, H, K, dtype=dtype, device=device)
    g, out = torch.randn_like(x), torch.empty_like(x)
    stats = torch.empty(B, T, H, dtype=torch.float32, device=device)
    args = (x, w, w, out, stats, B, T, 16, cb.C, H, R, K, K // 2, 0.0, 1.0)
    flags = dict(DYNAMIC=True, SOFTMAX=True, DROPOUT=False, STATS=True)
    best = tc.conv_taps_kernel.configs[0].all_kwargs()
    meta = {**best, **tc.conv_heuristics({"R": R, "H": H, **best})}
    jit, grid = tc.conv_taps_kernel.fn.fn, tc.conv_grid({"T": T, "H": H, "R": R, "B": B, **meta})

    class Identity(torch.autograd.Function):
        @staticmethod
        def forward(ctx, v):
            return v.view_as(v)

        @staticmethod
        def backward(ctx, grad):
            return grad

    _, attn_both = sdpa_attention(B, T, cb.C, H, dtype, device)
    rows = [
        ("dynamic_conv forward+backward (public function, torch.autograd.grad)", both),
        ("dynamic_conv forward (public function, no_grad)", fwd),
        ("triton_impl.backward called directly: 1 launch, 2 allocations",
         lambda: ti.backward(g, x, w, K // 2, True, 0.0, None, stats)),
        ("triton_impl.forward called directly, saving the softmax statistics: 1 launch, 2 allocations",
         lambda: ti.forward(x, w, K // 2, True, 0.0, None, True)),
        ("one autotuned launch (Autotuner + Heuristics + JIT)",
         lambda: launch(tc.conv_taps_kernel, tc.conv_grid, *args, **flags)),
        ("one launch of the JIT function, configuration given", lambda: jit[grid](*args, **flags, **meta)),
        ("torch.autograd.grad through an identity autograd.Function (the engine alone)",
         lambda: torch.autograd.grad(Identity.apply(x), x, g)),
        ("SDPA forward+backward, same B, T, C (a native op, for scale)", attn_both),
    ]
    return [(name, 1e3 * _wall_ms(fn, reps)) for name, fn in rows]


def kernel_times(B: int, K: int, dtype, calls: int = 5) -> list:
    """(kernel, GPU us per forward+backward, bytes it must move, GB/s) of dynamic_conv at T=8192."""
    from torch.profiler import ProfilerActivity, profile

    from lightconv_kernels.conv import bench as cb

    T, C, H, s = 8192, cb.C, cb.H, torch.finfo(dtype).bits // 8
    _, both = cb._ours("dynamic_conv", B, T, K, dtype, "cuda")
    both()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            both()
        torch.cuda.synchronize()
    act, w, lse = B * T * C * s, B * T * H * K * s, B * T * H * 4
    # Least traffic of each kernel: every input read once, every output written once.
    need = {"conv_taps_kernel": 2 * act + w + lse,  # the forward, saving the softmax statistics
            "dynamic_backward_kernel": 3 * act + 2 * w + lse}  # reads x, grad_out, w, lse; writes both grads
    rows = []
    for e in prof.key_averages():
        total = getattr(e, "device_time_total", None)
        us = (total if total is not None else e.cuda_time_total) / calls
        if us > 0 and e.key in need:
            rows.append((e.key, us, need[e.key], need[e.key] / us / 1e3))
    return rows


def body_times(B: int, dtype, Ks=(3, 31)) -> list:
    """:func:`kernel_times` with each autotune configuration forced in turn: (K, config, row).

    The conv kernels have two bodies, tap by tap and band matrix on tl.dot
    (``BAND`` in the configuration); this shows what each costs on this GPU,
    next to the autotuner's pick. Configuration ``i`` is number ``i`` of each
    kernel's list, modulo its length, as in ``triton_common.launch``.
    """
    from lightconv_kernels import triton_common
    from lightconv_kernels.conv import triton_backward, triton_conv

    n = max(len(triton_conv.CONV_CONFIGS), len(triton_backward.BACKWARD_CONFIGS))
    rows, before = [], triton_common.FORCE_CONFIG
    try:
        for i in range(n):
            triton_common.FORCE_CONFIG = i
            rows += [(K, i, r) for K in Ks for r in kernel_times(B, K, dtype)]
    finally:
        triton_common.FORCE_CONFIG = before
    return rows


def config_label(kernel: str, index: int) -> str:
    from lightconv_kernels.conv import triton_backward, triton_conv

    configs = triton_conv.CONV_CONFIGS if kernel.startswith("conv") else triton_backward.BACKWARD_CONFIGS
    cfg = configs[index % len(configs)]
    return " ".join(f"{k}={v}" for k, v in cfg.kwargs.items()) + f" w{cfg.num_warps}"


def host_profile(dtype, calls: int = 300) -> str:
    """cProfile of ``calls`` forward+backward calls of dynamic_conv at B=1, T=16, K=3."""
    from lightconv_kernels.conv import bench as cb

    _, both = cb._ours("dynamic_conv", 1, 16, 3, dtype, "cuda")
    _wall_ms(both, 10)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        both()
    torch.cuda.synchronize()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    return f"{calls} calls of dynamic_conv forward+backward at B=1, T=16, K=3 (times in s, all calls)\n" + \
        text.getvalue()


def breakdown_markdown(host, kernels, peak_bps: float, bodies=()) -> str:
    md = ["\n### Host time of one tiny call, layer by layer\n",
          "B=1, T=16, K=3, bf16: the GPU has almost nothing to do, so each time is the host's (mean of "
          "300 calls, synchronised at the end).\n",
          bc.markdown_table(["what", "host us per call"], [[n, f"{us:.0f}"] for n, us in host])]
    if kernels:
        md += ["\n### GPU time per kernel, dynamic_conv forward+backward, T=8192 (torch.profiler)\n",
               "Bytes: what the kernel must read and write at least. The forward is conv_taps (which also "
               "saves the softmax statistics of every weight row); the backward is dynamic_backward (both "
               "gradients in one pass).\n",
               bc.markdown_table(["K", "kernel", "GPU us per forward+backward", "bytes", "GB/s", "% peak"],
                                 [[K, n, f"{us:.0f}", f"{b / 1e6:.0f} MB", f"{gbps:.0f}",
                                   f"{100 * gbps * 1e9 / peak_bps:.0f}"] for K, (n, us, b, gbps) in kernels])]
    if bodies:
        md += ["\n### The same kernels with each autotune configuration forced (BAND > 0: band matrix on "
               "tl.dot, BAND = 0: tap by tap)\n",
               bc.markdown_table(["K", "config", "kernel", "configuration", "GPU us", "GB/s", "% peak"],
                                 [[K, i, n, config_label(n, i), f"{us:.0f}", f"{gbps:.0f}",
                                   f"{100 * gbps * 1e9 / peak_bps:.0f}"] for K, i, (n, us, b, gbps) in bodies])]
    return "\n".join(md) + "\n"


def markdown(rows, profile_text: str, peak_src: str, breakdown: str = "") -> str:
    md = ["## Host overhead against GPU time\n",
          "`call`: wall time per call from the host (what the kernel benchmark measures); `graph`: the same "
          "calls replayed from a CUDA graph, i.e. the GPU time alone; GB/s and % of peak from the graph time "
          f"({peak_src}). B=1, T=16 rows: the host's cost per call when the GPU has almost nothing to do.\n",
          bc.markdown_table(["op", "pass", "B", "T", "K", "call ms", "graph ms", "graph GB/s", "% peak", "status"],
                            [[r["op"], r["pass"], r["B"], r["T"], r["K"], bc.fmt(r.get("call_ms", "")),
                              bc.fmt(r.get("graph_ms", "")), bc.fmt(r.get("graph_gbps", "")),
                              f"{100 * r['graph_frac']:.0f}" if "graph_frac" in r else "", r["status"]]
                             for r in rows]),
          breakdown + "\n<details><summary>Where the host time goes (cProfile)</summary>\n\n```\n" +
          profile_text.strip() + "\n```\n</details>\n"]
    return "\n".join(md)


def run(out: Path, batch: int = 8) -> str:
    import gpu_check_bench as gb

    peak, peak_src = gb.peak_bandwidth("cuda")
    rows = []
    for shape in [(batch, 8192, 3), (batch, 8192, 31), (1, 16, 3)]:  # shapes the kernel benchmark tuned first
        rows += measure([shape], torch.bfloat16, peak)
        bc.write_csv(out / "overhead.csv", rows, COLS)  # after each shape: a run cut short keeps its rows
    try:  # explains the table above; its failure must not lose the table
        host = host_breakdown(torch.bfloat16)
        kernels = [(K, r) for K in (3, 31) for r in kernel_times(batch, K, torch.bfloat16)]
        extra = breakdown_markdown(host, kernels, peak, body_times(batch, torch.bfloat16))
    except Exception as exc:
        extra = f"\nHost breakdown failed: {type(exc).__name__}: {str(exc)[:200]}\n"
    text = host_profile(torch.bfloat16)
    (out / "host_profile.txt").write_text(text)
    md = markdown(rows, text, peak_src, extra)
    (out / "overhead.md").write_text(md)
    return md


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=bc.REPO / "bench_out" / "gpu-overhead")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check_overhead.py needs a CUDA device; nothing was measured.")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print(run(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
