"""Compile every Triton kernel ahead of time for sm_80 and sm_90, without a GPU.

Walks ``lightconv_kernels.registry.TRITON_MODULES``; each module's
``kernel_specs()`` lists every kernel x autotune configuration x dtype. Prints
one table (registers, spill/stack bytes, shared memory, 128-bit global loads)
and exits with status 1 if any kernel fails to compile, spills, or lacks the
128-bit loads its spec asks for.

    python scripts/kernel_report.py [--jobs N] [--arch 80 90]
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

# The interpreter replaces @triton.jit functions with Python ones, which cannot
# be compiled; it must be off before any kernel module is imported.
os.environ.pop("TRITON_INTERPRET", None)

COLUMNS = ("kernel", "config", "dtype", "arch", "regs", "spill/local B", "smem B", "128-bit loads", "compile")


def _specs(module: str):
    return importlib.import_module(module).kernel_specs()


def _compile(job):
    """Worker: compile spec number ``index`` of ``module`` for ``arch``; returns plain data."""
    from lightconv_kernels.aot import compile_spec

    module, index, arch = job
    spec = _specs(module)[index]
    res = compile_spec(spec, arch)
    if spec.vector_loads:
        vec = f"yes ({res.v128_loads})" if res.ok and res.vector_ok else f"NO ({res.v128_loads})"
    else:
        vec = f"n/a ({res.v128_loads})" if res.ok else "n/a"
    row = (
        spec.name, spec.config, spec.dtype, f"sm_{arch}",
        str(res.registers) if res.ok else "-",
        str(res.local_bytes) if res.ok else "-",
        str(res.shared_bytes) if res.ok else "-",
        vec, "ok" if res.ok else "FAILED",
    )  # fmt: skip
    problems = []
    if not res.ok:
        problems.append(f"compile failed: {res.error}")
    elif res.local_bytes:
        problems.append(f"spills / uses local memory: {res.local_bytes} bytes")
    if res.ok and not res.vector_ok:
        problems.append(f"needs 128-bit loads for {spec.vector_loads}, PTX has {res.v128_loads}")
    return row, [f"{spec.name} [{spec.config}] {spec.dtype} sm_{arch}: {p}" for p in problems]


def _table(rows) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="compile processes")
    parser.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="CUDA compute capabilities")
    args = parser.parse_args(argv)

    from lightconv_kernels.registry import TRITON_MODULES

    start = time.time()
    jobs, problems = [], []
    for module in TRITON_MODULES:
        try:
            specs = _specs(module)
        except Exception as exc:
            problems.append(f"{module}: kernel_specs() failed: {type(exc).__name__}: {exc}")
            continue
        if not specs:
            problems.append(f"{module}: kernel_specs() is empty")
        jobs += [(module, i, arch) for i in range(len(specs)) for arch in args.arch]

    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_compile, jobs, chunksize=4))
    else:
        results = [_compile(job) for job in jobs]

    rows = [row for row, _ in results]
    problems += [p for _, found in results for p in found]
    print(_table(rows))
    print(f"\n{len(rows)} compilations of {len(rows) // max(1, len(args.arch))} specs "
          f"from {len(TRITON_MODULES)} modules in {time.time() - start:.0f} s")  # fmt: skip
    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("all kernels compile, none spills, and every required 128-bit load is there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
