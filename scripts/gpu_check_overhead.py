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


def _wall_ms(fn, reps: int) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
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


def markdown(rows, profile_text: str, peak_src: str) -> str:
    md = ["## Host overhead against GPU time\n",
          "`call`: wall time per call from the host (what the kernel benchmark measures); `graph`: the same "
          "calls replayed from a CUDA graph, i.e. the GPU time alone; GB/s and % of peak from the graph time "
          f"({peak_src}). B=1, T=16 rows: the host's cost per call when the GPU has almost nothing to do.\n",
          bc.markdown_table(["op", "pass", "B", "T", "K", "call ms", "graph ms", "graph GB/s", "% peak", "status"],
                            [[r["op"], r["pass"], r["B"], r["T"], r["K"], bc.fmt(r.get("call_ms", "")),
                              bc.fmt(r.get("graph_ms", "")), bc.fmt(r.get("graph_gbps", "")),
                              f"{100 * r['graph_frac']:.0f}" if "graph_frac" in r else "", r["status"]]
                             for r in rows]),
          "\n<details><summary>Where the host time goes (cProfile)</summary>\n\n```\n" + profile_text.strip() +
          "\n```\n</details>\n"]
    return "\n".join(md)


def run(out: Path, batch: int = 8) -> str:
    import gpu_check_bench as gb

    peak, peak_src = gb.peak_bandwidth("cuda")
    rows = []
    for shape in [(batch, 8192, 3), (batch, 8192, 31), (1, 16, 3)]:  # shapes the kernel benchmark tuned first
        rows += measure([shape], torch.bfloat16, peak)
        bc.write_csv(out / "overhead.csv", rows, COLS)  # after each shape: a run cut short keeps its rows
    text = host_profile(torch.bfloat16)
    (out / "host_profile.txt").write_text(text)
    md = markdown(rows, text, peak_src)
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
