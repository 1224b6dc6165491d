"""scripts/kernel_report.py compiles every registered kernel for sm_80/sm_90 and passes.

Ahead-of-time compilation needs no GPU, only the ptxas/cuobjdump that ship in
the triton wheel, so this runs everywhere the package installs.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

from lightconv_kernels.registry import TRITON_MODULES

ROOT = Path(__file__).resolve().parents[1]


def test_kernel_report_passes_and_lists_every_kernel():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "kernel_report.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"kernel report failed:\n{proc.stdout}\n{proc.stderr}"
    table = proc.stdout
    for module in TRITON_MODULES:
        names = {spec.name for spec in importlib.import_module(module).kernel_specs()}
        assert names, f"{module}.kernel_specs() is empty"
        for name in names:
            for arch in ("sm_80", "sm_90"):
                rows = [line for line in table.splitlines() if line.startswith(name + " ") and f" {arch} " in line]
                assert rows, f"{name} for {arch} missing from the report:\n{table}"
                assert all(line.rstrip().endswith("ok") for line in rows), rows


def test_128_bit_loads_include_16_byte_async_copies():
    """Operands of tl.dot in a pipelined loop reach shared memory by cp.async, not ld.global:
    a 16-byte copy is a 128-bit load, an 8-byte one is not."""
    from lightconv_kernels.aot import _V128_LOAD

    ptx = """
        ld.global.v4.b32 { %r1, %r2, %r3, %r4 }, [ %rd1 + 0 ];
        ld.global.b16 %rs1, [ %rd2 + 0 ];
        cp.async.cg.shared.global [ %r5 + 0 ], [ %rd3 + 0 ], 0x10, %r6;
        cp.async.ca.shared.global [ %r7 + 0 ], [ %rd4 + 0 ], 0x8, %r8;
    """
    assert len(_V128_LOAD.findall(ptx)) == 2
