"""Layer-level CPU benchmark: time and peak memory against T, and TaLK's throughput table.

Three tables (cases: ``bench_layer_cases.py``), each case in forward,
forward+backward and inference mode:

* ``layers``: our lightweight, dynamic and TaLK sub-layers, fairseq's
  ``LightweightConv1dTBC`` / ``DynamicConv1dTBC`` ones, and self-attention
  with its projections, all at one width (B=1, C=512, H=8, K=31, TaLK
  offsets up to 15), for T from 64 to 16384;
* ``ops``: our three ops alone at B=4 (the shape of the old
  ``bench_cpu.py``, where the "time(8192) / time(2048) <= 4.5" goal was
  set), T = 2048 and 8192, run ``--op-rounds`` times over (3: the lengths
  alternate in time, so that a drift of a shared machine's speed does not
  land on one of them; each case's calls are pooled over the rounds), the
  CPU caches evicted before every timed call (``bench_common.cache_flusher``:
  otherwise T = 2048 finds its inputs in a 32 MB L3 and T = 8192 does not);
* ``talk``: TaLK's encoding throughput table (Lioutas & Guo, 2020: batch
  10, d 1024, 16 heads, n = 1,000 and 10,000), inference-mode forward of
  one sub-layer, in iterations per second, with at least 2 repetitions.

Each case runs in its own forked process (``bench_common.isolated``): one
warm-up call, then as many timed calls as fit in ``--case-seconds`` (3 to
15). A case whose time per call or peak memory, extrapolated from the
previous T (at least linearly; attention quadratically until two points are
measured), would pass ``--time-cap`` or ``--mem-cap`` is not run, and its
row says so. TaLK's table (Lioutas & Guo, 2020: batch 10, d 1024, 16 heads,
n = 1,000 and 10,000) is inference-mode forward, in iterations per second.

Writes ``layers.csv`` (all three tables), ``layers.png`` and ``layers.md``
under ``--out``.

    python scripts/bench_layers.py --out bench_out/x [--T 64 2048 8192] [--impls dynamic attention]
    python scripts/bench_layers.py --profile op-dynamic forward+backward 8192   # torch.profiler top ops
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common as bc  # noqa: E402
from bench_layer_cases import LAYERS, MODES, OPS, QUADRATIC, Shape, build  # noqa: E402

COLUMNS = ["table", "impl", "mode", "T", "B", "C", "H", "K", "status", "reps", "median_ms", "q1_ms", "q3_ms",
           "min_ms", "max_ms", "peak_mb", "it_per_s"]
LAYER_SHAPE = Shape(B=1)
OP_SHAPE = Shape(B=4)
TALK_SHAPE = Shape(B=10, C=1024, H=16, K=3, M=15)
TALK_IMPLS = ("attention", "dynamic", "fairseq-dynamic", "talk")


@dataclass
class Table:
    name: str
    impls: tuple
    modes: tuple
    Ts: tuple
    shape: Shape
    time_cap: float  # seconds per call beyond which a case is not run
    min_reps: int = 3  # per round
    rounds: int = 1  # passes over the whole table; a case's times are pooled over them
    case_seconds: float | None = None  # timing budget of a case over all rounds (None: --case-seconds)
    cold_cache: bool = False  # evict the CPU caches before every timed call (bench_common.cache_flusher)


def _case(impl, mode, T, shape, budget, min_reps, cold_cache=False):
    import torch

    torch.set_num_threads(bc.threads())
    torch.manual_seed(0)
    build(impl, mode, 16, shape)()  # lazy imports and first-call set-up, outside the measurement
    run = build(impl, mode, T, shape)
    flush = bc.cache_flusher() if cold_cache else None
    rss0 = bc.reset_peak()
    times = bc.repeat_timed(run, budget, min_reps=min_reps, before=flush)
    return {"times": times, "peak_mb": bc.peak_mb(rss0)}


def _predict(history, T, quadratic):
    """(seconds per call, MB) at T from the last measured points of one (impl, mode)."""
    (T1, s1, m1), *older = history[::-1]
    slope_t = slope_m = 2.0 if quadratic else 1.0
    if older:
        T0, s0, m0 = older[0]
        slope_t = max(1.0, math.log(s1 / s0) / math.log(T1 / T0))
        slope_m = max(1.0, math.log(max(m1, 1) / max(m0, 1)) / math.log(T1 / T0))
    r = T / T1
    return s1 * r**slope_t, max(m1, 1) * r**slope_m


def _skip_reason(history, impl, T, tab, mem_cap):
    if not history:
        return None
    sec, mb = _predict(history, T, impl in QUADRATIC)
    if sec > tab.time_cap:
        return f"over the time cap: ~{sec:.0f} s per call predicted (cap {tab.time_cap:.0f} s)"
    if mb > mem_cap * 1024:
        return f"over the memory cap: ~{mb / 1024:.1f} GiB predicted (cap {mem_cap:.0f} GiB)"
    return None


def measure(tab: Table, args) -> list:
    """One row per (T, impl, mode) of ``tab``. With ``tab.rounds`` > 1 the whole table is run that many
    times, each case again in a fresh process, and each case's times are pooled: a drift of the
    machine's speed over the minutes a table takes then touches every T alike, which matters for
    ratios between lengths (the growth goal)."""
    times, peaks, failed, stopped, history = {}, {}, {}, {}, {}
    sh = tab.shape
    budget = (tab.case_seconds or args.case_seconds) / tab.rounds
    for rnd in range(tab.rounds):
        for T in sorted(tab.Ts):  # lengths outermost: the impls of one T are measured close in time
            for impl in tab.impls:
                for mode in tab.modes:
                    key, case = (impl, mode), (impl, mode, T)
                    if rnd == 0:
                        why = stopped.get(key) or _skip_reason(history.get(key), impl, T, tab, args.mem_cap)
                        if why:
                            stopped.setdefault(key, why if why.startswith("over") else f"not run after: {why}")
                            failed[case] = why
                            bc.log(f"  {tab.name} {impl:19s} {mode:16s} T={T:6d}: {why}")
                            continue
                    elif case in failed:  # skipped or failed in an earlier round
                        continue
                    res = bc.isolated(_case, impl, mode, T, sh, budget, tab.min_reps, tab.cold_cache,
                                      timeout=20 * tab.time_cap + 120)
                    if "error" in res:
                        stopped[key] = f"failed at T={T}: {res['error']}"
                        failed[case] = f"failed: {res['error']}"
                        bc.log(f"  {tab.name} {impl:19s} {mode:16s} T={T:6d}: FAILED {res['error']}")
                        continue
                    times.setdefault(case, []).extend(1e3 * t for t in res["times"])
                    peaks[case] = max(peaks.get(case, 0.0), res["peak_mb"])
                    s = bc.summarize(times[case])
                    if rnd == 0:
                        history.setdefault(key, []).append((T, s["median"] / 1e3, res["peak_mb"]))
                    round_text = f"round {rnd + 1}/{tab.rounds}, " if tab.rounds > 1 else ""
                    bc.log(f"  {tab.name} {impl:19s} {mode:16s} T={T:6d}: {s['median']:10.2f} ms  "
                           f"({round_text}n={s['n']}, {s['min']:.2f}-{s['max']:.2f})  peak {peaks[case]:8.1f} MB")
    rows = []
    for T in sorted(tab.Ts):
        for impl in tab.impls:
            for mode in tab.modes:
                case = (impl, mode, T)
                row = {"table": tab.name, "impl": impl, "mode": mode, "T": T, "B": sh.B, "C": sh.C, "H": sh.H,
                       "K": sh.M if "talk" in impl else sh.K}
                if case in failed:
                    rows.append({**row, "status": failed[case]})
                    continue
                s = bc.summarize(times[case])
                rows.append({**row, "status": "ok", "reps": s["n"], "median_ms": s["median"], "q1_ms": s["q1"],
                             "q3_ms": s["q3"], "min_ms": s["min"], "max_ms": s["max"], "peak_mb": peaks[case],
                             "it_per_s": 1e3 / s["median"]})  # fmt: skip
    return rows


# ---------------------------------------------------------------- reporting
def _cell(r, what="time"):
    if r["status"] != "ok":
        return "skipped" if r["status"].startswith(("over", "not run")) else "failed"
    if what == "memory":
        return bc.fmt(r["peak_mb"])
    return f"{bc.fmt(r['median_ms'])} ({bc.fmt(r['min_ms'])}-{bc.fmt(r['max_ms'])})"


def growth(rows, table, impl, mode, a=2048, b=8192, stat="median_ms"):
    """time(T=b) / time(T=a) of one (table, impl, mode), or None where either is missing.

    ``stat``: the column of both times, or a pair (column at a, column at b)."""
    col_a, col_b = (stat, stat) if isinstance(stat, str) else stat
    t = {int(r["T"]): r for r in rows if (r["table"], r["impl"], r["mode"], r["status"]) == (table, impl, mode, "ok")}
    return float(t[b][col_b]) / float(t[a][col_a]) if a in t and b in t else None


def _grid(rows, what) -> str:
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    by = {(r["impl"], r["mode"], r["T"]): r for r in rows}
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        unit = "ms per call, median (min-max)" if what == "time" else "peak MB above parameters and inputs"
        out.append(f"\n#### {mode}: {unit}\n")
        body = [[T] + [_cell(by[i, mode, T], what) if (i, mode, T) in by else "" for i in impls]
                for T in sorted({r["T"] for r in rows})]
        out.append(bc.markdown_table(["T", *impls], body))
    return "\n".join(out)


def _shape_text(sh: Shape) -> str:
    return f"B={sh.B}, C={sh.C}, H={sh.H}, K={sh.K} (TaLK: offsets up to {sh.M} each side)"


def markdown(rows, args) -> str:
    layer = [r for r in rows if r["table"] == "layers"]
    ops = [r for r in rows if r["table"] == "ops"]
    talk = [r for r in rows if r["table"] == "talk"]
    out = [f"## Layer level\n\nCPU, {bc.threads()} torch threads. Each case in its own process: one warm-up "
           f"call, then as many timed calls as fit in {args.case_seconds} s (at least 3, at most 15; the "
           f"`reps` column of `layers.csv`). Time: median (min-max) in ms; memory: the peak of resident memory "
           f"above what the process held with the layer and its inputs built."]
    if layer:
        out.append(f"\n### Sub-layers with their projections, {_shape_text(LAYER_SHAPE)}")
        out += [_grid(layer, "time"), _grid(layer, "memory")]
    if ops:
        out.append(f"\n### Our ops alone, {_shape_text(OP_SHAPE)}\n\nThe whole table ran {args.op_rounds} times "
                   f"(rounds), each case in a fresh process each time, with {args.op_case_seconds} s of timing per "
                   f"case over all rounds (at least 3 calls per round); each cell pools its case's calls. So T = "
                   f"2048 and 8192 are measured alternately, and a drift of the machine's speed touches both. "
                   f"Before every timed call a buffer of twice the last-level cache is written "
                   f"({2 * bc.last_level_cache_bytes() >> 20} MB), so that no length finds its inputs in cache.")
        out.append(_grid(ops, "time"))
    notes = sorted({(r["table"], r["impl"], r["mode"], r["status"]) for r in layer + ops if r["status"] != "ok"})
    if notes:
        out.append("\nNot measured (and every longer T of the same case after it):\n")
        out += [f"* {t} {i}, {m}: {s}" for t, i, m, s in notes if not s.startswith("not run")]
    if talk:
        out.append(talk_markdown(talk))
    return "\n".join(out) + "\n"


def talk_markdown(rows) -> str:
    s = TALK_SHAPE
    head = (f"\n### TaLK's encoding throughput table at its shape\n\nInference-mode forward of one sub-layer "
            f"(projections included), batch {s.B}, d {s.C}, {s.H} heads; DynamicConv k={s.K}, TaLK offsets "
            f"up to {s.M}; iterations per second (1 / median time), repetitions in brackets. The paper's "
            f"numbers are GPU numbers (self-attention 102 / out of memory, DynamicConv 443 / 45, TaLK "
            f"898 / 92 it/s at n = 1,000 / 10,000); these are CPU numbers.\n\n")
    Ts = sorted({r["T"] for r in rows})
    by = {(r["impl"], r["T"]): r for r in rows}
    body = []
    for impl in dict.fromkeys(r["impl"] for r in rows):
        cells = [(f"{bc.fmt(by[impl, T]['it_per_s'])} ({by[impl, T]['reps']})" if by[impl, T]["status"] == "ok"
                  else by[impl, T]["status"]) for T in Ts]
        body.append([impl, *cells])
    return head + bc.markdown_table(["layer", *[f"n = {T}" for T in Ts]], body)


def plot(rows, path: Path):
    plt = bc.pyplot()
    rows = [r for r in rows if r["table"] == "layers"]
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    if not modes:
        return
    fig, axes = plt.subplots(2, len(modes), figsize=(5 * len(modes), 8), squeeze=False)
    for col, mode in enumerate(modes):
        for impl in dict.fromkeys(r["impl"] for r in rows):
            pts = sorted((r["T"], r["median_ms"], r["peak_mb"]) for r in rows
                         if r["impl"] == impl and r["mode"] == mode and r["status"] == "ok")
            if pts:
                axes[0, col].plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=impl)
                axes[1, col].plot([p[0] for p in pts], [max(p[2], 0.1) for p in pts], marker="o", ms=3, label=impl)
        axes[0, col].set(title=f"{mode}: time", ylabel="ms per call")
        axes[1, col].set(title=f"{mode}: peak memory", ylabel="MB above inputs")
        for ax in axes[:, col]:
            ax.set(xscale="log", yscale="log", xlabel="T")
            ax.grid(True, which="both", alpha=0.3)
        axes[0, col].legend(fontsize=7)
    fig.suptitle(f"CPU, {bc.threads()} threads, {_shape_text(LAYER_SHAPE)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------------ profile
def _profile(impl, mode, T, shape):
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(bc.threads())
    run = build(impl, mode, T, shape)
    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return bc.profile_summary(prof)


def profile_case(impl, mode, T, shape=OP_SHAPE) -> dict:
    """``bench_common.profile_summary`` of one call, in a forked process."""
    return bc.isolated(_profile, impl, mode, T, shape)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=bc.REPO / "bench_out" / "layers")
    p.add_argument("--T", type=int, nargs="*", default=[64, 256, 1024, 2048, 4096, 8192, 16384])
    p.add_argument("--impls", nargs="+", default=list(LAYERS), choices=LAYERS)
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--op-T", type=int, nargs="*", default=[2048, 8192], help="lengths of the ops table (none: skip)")
    p.add_argument("--talk-T", type=int, nargs="*", default=[1000, 10000], help="TaLK table lengths (none: skip)")
    p.add_argument("--case-seconds", type=float, default=1.0, help="timing budget of one case")
    p.add_argument("--time-cap", type=float, default=8.0, help="seconds per call beyond which a case is not run")
    p.add_argument("--op-time-cap", type=float, default=40.0, help="the same for the ops table (the goal's)")
    p.add_argument("--op-rounds", type=int, default=3,
                   help="passes over the ops table, interleaving its lengths in time (the growth goal's ratios)")
    p.add_argument("--op-case-seconds", type=float, default=6.0,
                   help="timing budget of one ops-table case, over all its rounds")
    p.add_argument("--talk-time-cap", type=float, default=60.0, help="the same for the TaLK table")
    p.add_argument("--mem-cap", type=float, default=8.0, help="GiB of peak memory beyond which a case is not run")
    p.add_argument("--profile", nargs=3, metavar=("IMPL", "MODE", "T"),
                   help="print torch.profiler's top ops of one call at the ops table's shape")
    p.add_argument("--json", action="store_true", help="--profile: as JSON (table and per-op times)")
    bc.add_threads_arg(p)
    args = p.parse_args(argv)
    bc.apply_threads_arg(args)

    # Imported once here, before any fork (see bench_common). torch._dynamo too:
    # autograd's backward and every torch.library custom op (TaLK's) import it
    # at their first call, 1-3 s that each forked case would pay again.
    import lightconv_plugin  # noqa: F401
    import torch._dynamo  # noqa: F401

    if args.profile:
        impl, mode, T = args.profile
        res = profile_case(impl, mode, int(T))
        print(json.dumps(res) if args.json else res.get("table", res.get("error")))
        return 0
    # The ops table first: it holds the goal, and is the quickest.
    if args.op_rounds < 1:
        p.error(f"--op-rounds must be at least 1, got {args.op_rounds}")
    tables = [Table("ops", OPS, tuple(args.modes), tuple(args.op_T), OP_SHAPE, args.op_time_cap,
                    rounds=args.op_rounds, case_seconds=args.op_case_seconds, cold_cache=True),
              Table("layers", tuple(args.impls), tuple(args.modes), tuple(args.T), LAYER_SHAPE, args.time_cap),
              Table("talk", TALK_IMPLS, ("inference",), tuple(args.talk_T), TALK_SHAPE, args.talk_time_cap, 2)]
    start, rows = time.time(), []
    for tab in tables:
        if tab.Ts:
            rows += measure(tab, args)
    args.out.mkdir(parents=True, exist_ok=True)
    bc.write_csv(args.out / "layers.csv", rows, COLUMNS)
    plot(rows, args.out / "layers.png")
    (args.out / "layers.md").write_text(markdown(rows, args))
    bc.log(f"layer benchmark: {len(rows)} cases in {time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
