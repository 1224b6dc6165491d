"""The ops that have Triton kernels, for the tools that walk over all of them.

``scripts/kernel_report.py`` and ``scripts/bench_kernels.py`` iterate over
this list instead of naming ops themselves, so a new op is one line here.
Each module named here defines ``kernel_specs()`` returning
``list[lightconv_kernels.aot.KernelSpec]``: every kernel, for every autotune
configuration and dtype, in a form that can be compiled ahead of time.

``BENCH_MODULES`` are the modules that ``scripts/bench_kernels.py`` times:
each defines ``bench_cases(batch, dtype, device)`` returning
``list[lightconv_kernels.bench_case.BenchCase]``.
"""

TRITON_MODULES = (
    "lightconv_kernels.conv.triton_impl",
    "lightconv_kernels.talk.triton_impl",
)

BENCH_MODULES = (
    "lightconv_kernels.conv.bench",
    "lightconv_kernels.talk.bench",
)
