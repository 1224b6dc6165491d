"""Kernel-benchmark part of ``scripts/gpu_check.py``: times, GB/s and the device's peak bandwidth.

The cases are ``scripts/bench_kernels.py``'s (each op module's
``bench_cases`` and fairseq's ``DynamicConv1dTBC``), timed the same way on a
GPU. The roofline is the device's memory bandwidth, from a table of known
devices by name; any other device gets a measured device-to-device copy
(read + write bytes over time), and the report says which it was.

Smoke mode (CPU under the Triton interpreter) shrinks the cases' module
constants to one tiny shape and times with ``time.perf_counter``: it checks
the logic, not the speed.
"""

from __future__ import annotations

import importlib
import statistics
import time

import pytest
import torch

import bench_kernels as bk

# (what the lower-cased device name must contain, must not contain, TB/s, label)
KNOWN_DEVICES = (
    (("h200",), (), 4.8, "H200"),
    (("h100", "pcie"), (), 2.0, "H100 PCIe"),
    (("h100", "hbm3"), ("pcie", "nvl"), 3.35, "H100 SXM"),
    (("h100", "sxm"), ("pcie", "nvl"), 3.35, "H100 SXM"),
    (("a100", "80gb"), ("pcie",), 2.04, "A100 80GB SXM"),
    (("a100", "40gb"), (), 1.56, "A100 40GB"),
)


def copy_bandwidth(device: str) -> float:
    """Bytes per second of ``y.copy_(x)`` (each byte read once and written once)."""
    n = (256 << 20) if device == "cuda" else (16 << 20)  # floats: 1 GiB on a GPU, 64 MiB on a CPU
    x = torch.empty(n, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    times = []
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        y.copy_(x)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * 4 * n / statistics.median(times)


def peak_bandwidth(device: str) -> tuple:
    """(bytes per second, where the figure comes from)."""
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    low = name.lower()
    for need, avoid, tbps, label in KNOWN_DEVICES:
        if all(s in low for s in need) and not any(s in low for s in avoid):
            return tbps * 1e12, f"{name}: {label}, {tbps} TB/s (table of known devices)"
    bw = copy_bandwidth(device)
    return bw, f"{name}: not in the table of known devices; measured copy bandwidth {bw / 1e9:.1f} GB/s"


def _tiny(mp):
    """Shrink the bench modules to one tiny shape (smoke mode)."""
    conv = importlib.import_module("lightconv_kernels.conv.bench")
    talk = importlib.import_module("lightconv_kernels.talk.bench")
    for mod in (conv, talk):
        mp.setattr(mod, "C", 16)
        mp.setattr(mod, "H", 2)
        mp.setattr(mod, "T_VALUES", (32,))
    mp.setattr(conv, "K_VALUES", (3,))
    mp.setattr(talk, "M_VALUES", (3,))


def _cpu_measure(case):
    """(forward ms, forward+backward ms) by ``time.perf_counter``, median of 3 after a warm-up."""
    try:
        with bk._env(case.env):
            fns = case.build()
            out = []
            for fn in fns:
                fn()
                ts = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    fn()
                    ts.append(1e3 * (time.perf_counter() - t0))
                out.append(statistics.median(ts))
            return tuple(out)
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {str(exc)[:80]}"


def run_bench(device: str, batch: int, dtype, smoke: bool) -> list:
    from lightconv_kernels.registry import BENCH_MODULES

    rows = []
    with pytest.MonkeyPatch.context() as mp:
        if smoke:
            _tiny(mp)
        cases = []
        for module in BENCH_MODULES:
            cases += importlib.import_module(module).bench_cases(batch, dtype, torch.device(device))
        cases += bk.fairseq_cases(batch, dtype, torch.device(device))
        for case in cases:
            times = _cpu_measure(case) if device == "cpu" else bk._measure(case)
            row = {"op": case.op, "impl": case.impl, **{k: case.params.get(k, "") for k in ("B", "T", "C", "H")},
                   "K/M": case.params.get("K", case.params.get("M", "")), "bytes_fwd": case.bytes_fwd,
                   "bytes_fwd_bwd": case.bytes_fwd_bwd}
            if isinstance(times, str):
                row["status"] = times
            else:
                row.update(status="ok", fwd_ms=times[0], fwd_bwd_ms=times[1],
                           fwd_gbps=case.bytes_fwd / times[0] / 1e6, fwd_bwd_gbps=case.bytes_fwd_bwd / times[1] / 1e6)
            rows.append(row)
    return rows


def add_fractions(rows, peak_bps: float):
    for r in rows:
        if r["status"] == "ok":
            r["fwd_frac"] = r["fwd_gbps"] * 1e9 / peak_bps
            r["fwd_bwd_frac"] = r["fwd_bwd_gbps"] * 1e9 / peak_bps


def kernel_goals(rows, min_T: int) -> list:
    """The two kernel goals: (goal, measured, verdict)."""
    dyn = [r for r in rows if r["op"] == "dynamic_conv" and r["status"] == "ok" and int(r["T"]) >= min_T]
    tri = {(r["T"], r["K/M"]): r for r in dyn if r["impl"] == "triton"}
    fs = {(r["T"], r["K/M"]): r for r in dyn if r["impl"] == "fairseq"}
    goals = []
    if tri:
        worst = min(tri.values(), key=lambda r: r["fwd_bwd_frac"])
        goals.append(("Triton DynamicConv forward+backward >= 80% of the memory-bandwidth roofline "
                      f"(every shape with T >= {min_T})",
                      f"lowest {100 * worst['fwd_bwd_frac']:.0f}% (T={worst['T']}, K={worst['K/M']})",
                      worst["fwd_bwd_frac"] >= 0.8))
    pairs = [(k, fs[k]["fwd_bwd_ms"] / tri[k]["fwd_bwd_ms"]) for k in tri if k in fs]
    if pairs:
        (T, K), speed = min(pairs, key=lambda p: p[1])
        goals.append((f"Triton DynamicConv >= 2x fairseq's PyTorch DynamicConv1dTBC, forward+backward (T >= {min_T})",
                      f"lowest {speed:.2f}x (T={T}, K={K})", speed >= 2.0))
    return goals
