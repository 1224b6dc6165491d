"""Ahead-of-time compilation of Triton kernels, for the kernel report.

A :class:`KernelSpec` names one launch of one kernel with everything fixed that
Triton specialises on (argument types, constexprs, which pointers and integers
are 16-byte divisible, warps, stages). :func:`compile_spec` compiles it for a
CUDA architecture without a GPU and reads back what matters for performance:
registers, spills, shared memory, and whether the PTX has 128-bit global
loads. Each module in :data:`lightconv_kernels.registry.TRITON_MODULES`
returns its specs from ``kernel_specs()``.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

# Global loads of 16 bytes per thread, as ptxas receives them from Triton:
# into registers, or (operands of tl.dot in a pipelined loop) copied
# asynchronously into shared memory, 16 bytes per cp.async.
_V128_LOAD = re.compile(
    r"ld\.global(?:\.\w+)*\.(?:v4\.(?:b32|f32|u32|s32)|v2\.(?:b64|f64|u64))"
    r"|cp\.async\.c[ag]\.shared\.global(?:\.\w+)*\s*\[[^\]]*\],\s*\[[^\]]*\],\s*(?:0x10|16)\b"
)


@dataclass(frozen=True)
class KernelSpec:
    """One ahead-of-time compilable instance of a ``@triton.jit`` kernel.

    Attributes:
        name: kernel name shown in the report.
        fn: the ``triton.JITFunction``, unwrapped from any ``triton.autotune`` and
            ``triton.heuristics`` (``kernel.fn.fn`` for both).
        signature: every argument that is not a constexpr, in order, mapped to
            its Triton type string: ``"*fp32"``, ``"*bf16"``, ``"i32"``, ``"i64"``,
            ``"fp32"``, ...
        constexprs: every ``tl.constexpr`` argument mapped to its value (the
            autotune config's block sizes included).
        num_warps, num_stages: as in ``triton.Config``.
        aligned: arguments that Triton would specialise as divisible by 16 at a
            typical launch (pointers from the caching allocator, int strides and
            sizes that are multiples of 16). Only these let Triton emit wide loads.
        vector_loads: subset of ``aligned`` pointer arguments whose loads must
            compile to 128-bit global loads; the report fails the spec otherwise.
        config: short text for the autotune configuration (report column).
        dtype: short text for the data type (report column).
    """

    name: str
    fn: Any
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 2
    aligned: tuple[str, ...] = ()
    vector_loads: tuple[str, ...] = ()
    config: str = ""
    dtype: str = ""


# Pointer type strings of the three supported data types, by report label.
POINTER_TYPES = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}


def signature_of(fn, constexprs: dict, types: dict[str, str]) -> dict[str, str]:
    """A ``KernelSpec.signature``: ``types`` for the args named there, "i32" for
    every other argument that is not in ``constexprs``, in declaration order."""
    return {name: types.get(name, "i32") for name in fn.arg_names if name not in constexprs}


def make_spec(name: str, fn, types: dict[str, str], constexprs: dict, **kwargs) -> KernelSpec:
    """A KernelSpec whose signature comes from :func:`signature_of`."""
    return KernelSpec(name=name, fn=fn, signature=signature_of(fn, constexprs, types), constexprs=constexprs, **kwargs)


def config_text(config, derived: dict | None = None) -> str:
    """Report label of a ``triton.Config`` plus the block sizes derived from it."""
    values = {**config.kwargs, **(derived or {})}
    return " ".join(f"{k}={v}" for k, v in values.items()) + f" w{config.num_warps}s{config.num_stages}"


@dataclass
class CompileResult:
    spec: KernelSpec
    arch: int
    ok: bool
    error: str = ""
    registers: int = -1
    local_bytes: int = -1  # spill stores/loads plus stack frame; 0 means no spills
    shared_bytes: int = -1
    v128_loads: int = 0

    @property
    def vector_ok(self) -> bool:
        # PTX does not say which pointer a load came from; at least one 128-bit
        # load per pointer that needs them is the check.
        return self.v128_loads >= len(self.spec.vector_loads)


def cuobjdump_path() -> str:
    import triton

    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(path):
        raise FileNotFoundError(f"cuobjdump not found at {path} (it ships in the triton wheel)")
    return path


def _attrs(spec: KernelSpec):
    """Divisibility hints in the form Triton's own specialisation produces."""
    unknown = [a for a in spec.aligned if a not in spec.signature]
    if unknown:
        raise ValueError(f"{spec.name}: aligned args {unknown} are not in the signature")
    # Keys are positions among all the kernel's arguments, constexprs included.
    return {(spec.fn.arg_names.index(a),): [["tt.divisibility", 16]] for a in spec.aligned}


def _full_signature(spec: KernelSpec) -> dict[str, str]:
    """Signature over all kernel args in declaration order, constexprs typed 'constexpr'."""
    sig = {}
    for name in spec.fn.arg_names:
        if name in spec.constexprs:
            sig[name] = "constexpr"
        elif name in spec.signature:
            sig[name] = spec.signature[name]
        else:
            raise ValueError(f"{spec.name}: argument {name!r} is in neither signature nor constexprs")
    return sig


def _resource_usage(cubin: bytes) -> dict[str, int]:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run(
            [cuobjdump_path(), "--dump-resource-usage", f.name],
            check=True, capture_output=True, text=True,
        ).stdout
    usage = {}
    for key, label in (("registers", "REG"), ("stack", "STACK"), ("shared", "SHARED"), ("local", "LOCAL")):
        m = re.search(rf"\b{label}:(\d+)", text)
        usage[key] = int(m.group(1)) if m else 0
    return usage


def compile_spec(spec: KernelSpec, arch: int) -> CompileResult:
    """Compile ``spec`` for sm_``arch`` (80, 90, ...) and measure it; never raises."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        src = ASTSource(
            fn=spec.fn,
            signature=_full_signature(spec),
            constexprs={(spec.fn.arg_names.index(k),): v for k, v in spec.constexprs.items()},
            attrs=_attrs(spec),
        )
        kernel = triton.compile(
            src,
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": spec.num_warps, "num_stages": spec.num_stages},
        )
        usage = _resource_usage(kernel.asm["cubin"])
        ptx = kernel.asm["ptx"]
    except Exception as exc:  # a failed compile is a report row, not a crash
        return CompileResult(spec, arch, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    return CompileResult(
        spec,
        arch,
        ok=True,
        registers=usage["registers"],
        local_bytes=usage["stack"] + usage["local"],
        shared_bytes=max(usage["shared"], kernel.metadata.shared),
        v128_loads=len(_V128_LOAD.findall(ptx)),
    )
