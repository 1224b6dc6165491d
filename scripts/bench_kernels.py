"""GPU benchmark of the Triton kernels against their baselines.

Times every case of every module in ``lightconv_kernels.registry.BENCH_MODULES``
(see ``lightconv_kernels.bench_case``): forward and forward+backward, median of
``triton.testing.do_bench``, and the achieved GB/s = bytes the op must move /
time (each op module states its byte formula). Prints one table and writes a
PNG plot. Needs a CUDA GPU; without one it says so and exits with status 2.

    python scripts/bench_kernels.py [--batch 8] [--dtype bf16] [--png bench_out/bench_kernels.png]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections import defaultdict

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@contextlib.contextmanager
def _env(values: dict):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _measure(case):
    """(forward ms, forward+backward ms), or a short reason why the case could not run."""
    import torch
    import triton.testing

    try:
        with _env(case.env):
            forward, forward_backward = case.build()
            # First calls autotune and compile; do_bench sizes its loop from a first call.
            forward(), forward_backward()
            torch.cuda.synchronize()
            times = tuple(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")
                          for fn in (forward, forward_backward))  # fmt: skip
    except torch.cuda.OutOfMemoryError:
        return "out of memory"
    except Exception as exc:  # a failing baseline must not hide the other rows
        return f"failed: {type(exc).__name__}: {str(exc)[:80]}"
    finally:
        forward = forward_backward = None
        torch.cuda.empty_cache()
    return times


def _gbps(nbytes: int, ms: float) -> str:
    return f"{nbytes / (ms * 1e-3) / 1e9:.0f}"


def _table(rows) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plot(results, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = defaultdict(lambda: defaultdict(list))  # (op, other params) -> impl -> [(T, ms)]
    for case, times in results:
        if "T" in case.params and not isinstance(times, str):
            rest = ", ".join(f"{k}={v}" for k, v in case.params.items() if k not in ("T", "B", "C", "H"))
            panels[(case.op, rest)][case.impl].append((case.params["T"], times[1]))
    if not panels:
        return
    keys = sorted(panels)
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for impl, points in sorted(panels[key].items()):
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=impl)
        ax.set(xscale="log", yscale="log", xlabel="T", ylabel="forward+backward ms", title=f"{key[0]} {key[1]}")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=120)


def fairseq_cases(batch, dtype, device) -> list:
    """fairseq's ``DynamicConv1dTBC`` at the shapes of the dynamic_conv cases.

    Its PyTorch code ((T, B, C) layout; its CUDA extension is not built), with
    the C -> H*K projection that predicts its taps. Lives here because
    ``lightconv_kernels`` never imports fairseq.
    """
    import functools

    import torch
    from fairseq.modules.dynamic_convolution import DynamicConv1dTBC
    from lightconv_kernels.bench_case import BenchCase
    from lightconv_kernels.conv.bench import C, H, K_VALUES, T_VALUES, _conv_bytes

    def build(T, K):
        conv = DynamicConv1dTBC(C, K, padding_l=K // 2, num_heads=H, weight_softmax=True).to(device, dtype)
        x = torch.randn(T, batch, C, dtype=dtype, device=device, requires_grad=True)
        g = torch.randn(T, batch, C, dtype=dtype, device=device)

        def forward():
            with torch.no_grad():
                return conv(x)

        def forward_backward():
            return torch.autograd.grad(conv(x), (x, *conv.parameters()), g)

        return forward, forward_backward

    s = torch.finfo(dtype).bits // 8
    cases = []
    for T in T_VALUES:
        for K in K_VALUES:
            fwd, both = _conv_bytes(batch, T, K, True, s, s)
            params = {"B": batch, "T": T, "C": C, "H": H, "K": K}
            cases.append(BenchCase("dynamic_conv", "fairseq", params, functools.partial(build, T, K), fwd, both,
                                   note="fairseq DynamicConv1dTBC, PyTorch code, includes its C -> H*K projection"))
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--png", default="bench_out/bench_kernels.png")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench_kernels.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing was measured.")
        return 2

    import lightconv_plugin.compat  # noqa: F401  (undoes fairseq's root DEBUG logging)
    from lightconv_kernels.registry import BENCH_MODULES

    dtype = getattr(torch, DTYPES[args.dtype])
    cases = []
    for module in BENCH_MODULES:
        cases += importlib.import_module(module).bench_cases(args.batch, dtype, torch.device("cuda"))
    cases += fairseq_cases(args.batch, dtype, torch.device("cuda"))

    print(f"{torch.cuda.get_device_name()}, {args.dtype}, {len(cases)} cases", flush=True)
    results = []
    header = ("op", "impl", "shape", "fwd ms", "fwd GB/s", "fwd+bwd ms", "fwd+bwd GB/s")
    rows = [header]
    notes = {}
    for case in cases:
        times = _measure(case)
        results.append((case, times))
        shape = " ".join(f"{k}={v}" for k, v in case.params.items())
        if isinstance(times, str):
            rows.append((case.op, case.impl, shape, times, "", "", ""))
        else:
            fwd, both = times
            rows.append((case.op, case.impl, shape, f"{fwd:.3f}", _gbps(case.bytes_fwd, fwd),
                         f"{both:.3f}", _gbps(case.bytes_fwd_bwd, both)))  # fmt: skip
        if case.note:
            notes[case.impl] = case.note
    print(_table(rows))
    for impl, note in notes.items():
        print(f"  {impl}: {note}")
    _plot(results, args.png)
    print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
