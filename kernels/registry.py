"""The ops that have Triton kernels, for the tools that walk over all of them.

``scripts/kernel_report.py`` and ``scripts/bench_kernels.py`` iterate over
this list instead of naming ops themselves, so a new op is one line here.
Each module named here defines ``kernel_specs()`` returning
``list[lightconv_kernels.aot.KernelSpec]``: every kernel, for every autotune
configuration and dtype, in a form that can be compiled ahead of time.
"""

TRITON_MODULES = (
    "lightconv_kernels.conv.triton_impl",
)
