"""Pieces shared by the Triton kernels of every op: DropConnect and launching.

DropConnect draws its keep-mask from Philox (``tl.rand``) with the counter set
to the flat index of the weight element, so a mask is a pure function of
(seed, index, p): the backward kernels draw it again instead of storing it, a
weight shared over positions gets one mask for all of them, and
:func:`dropconnect_keep_mask` can materialise the very mask the kernels use.

Importing this module touches no GPU, so it works on machines without one.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from . import backend


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1), for host code.

    ``triton.next_power_of_2`` and ``triton.cdiv`` are constexpr functions:
    about 5 us per call from Python, and a launch's grid, heuristics and
    autotune key made about two dozen such calls per forward+backward.
    """
    return 1 << max(0, n - 1).bit_length()


def cdiv(a: int, b: int) -> int:
    """ceil(a / b) for a >= 0, b >= 1, in host code (see :func:`next_pow2`).

    Written with a non-negative numerator on purpose: under the interpreter a
    grid function receives its integer arguments as Triton tensors, whose
    ``//`` truncates toward zero as in C.
    """
    return (a + b - 1) // b


@triton.jit
def dropconnect_keep(seed, offsets, dropout_p):
    """True where the weight at flat index ``offsets`` survives DropConnect."""
    return tl.rand(seed, offsets) >= dropout_p


@triton.jit
def keep_mask_kernel(seed_ptr, keep_ptr, numel, dropout_p, BLOCK: tl.constexpr):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    keep = dropconnect_keep(tl.load(seed_ptr), offsets, dropout_p)
    tl.store(keep_ptr + offsets, keep.to(tl.int8), mask=offsets < numel)


KEEP_MASK_BLOCK = 1024


def dropconnect_keep_mask(seed: torch.Tensor, shape, dropout_p: float, device=None) -> torch.Tensor:
    """The boolean keep-mask, of ``shape``, that the kernels apply for ``seed``.

    ``seed`` is the int64 tensor of shape (1,) handed to the kernels. For tests
    and debugging; the kernels never materialise the mask themselves.
    """
    device = seed.device if device is None else torch.device(device)
    numel = 1
    for n in shape:
        numel *= int(n)
    keep = torch.empty(numel, dtype=torch.int8, device=device)
    grid = (cdiv(numel, KEEP_MASK_BLOCK),)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        keep_mask_kernel[grid](seed.to(device), keep, numel, float(dropout_p), BLOCK=KEEP_MASK_BLOCK)
    return keep.view(tuple(shape)).bool()


# Under TRITON_INTERPRET=1 the autotuner would run every configuration of a
# kernel at each new shape, multiplying the (slow) interpreter time by the
# number of configurations; the interpreter instead runs exactly one, number
# INTERPRET_CONFIG. FORCE_CONFIG, when set, picks the configuration on every
# device (tests step through all of them, on a GPU too).
INTERPRET_CONFIG = 0
FORCE_CONFIG: int | None = None


def launch(kernel, grid, *args, **kwargs):
    """``kernel[grid](*args, **kwargs)`` for a ``triton.autotune`` kernel.

    On a GPU the autotuner picks the configuration unless FORCE_CONFIG is set;
    configuration numbers are taken modulo the kernel's number of them. The
    interpreter's INTERPRET_CONFIG gives way to the first configuration the
    kernel's own pruning keeps (e.g. LIGHTCONV_CONV_BODY=band), so that a
    restriction the user asked for is not ignored there.
    """
    config = chosen_config(kernel)
    if config is None:
        return kernel[grid](*args, **kwargs)
    return kernel.fn[grid](*args, **kwargs, **config.all_kwargs())


def chosen_config(kernel):
    """The configuration :func:`launch` gives ``kernel``, or None to let its autotuner choose."""
    configs = kernel.configs
    if FORCE_CONFIG is not None:
        return configs[FORCE_CONFIG % len(configs)]
    if not backend.interpreter_enabled():
        return None
    config = configs[INTERPRET_CONFIG % len(configs)]
    prune = getattr(kernel, "early_config_prune", None)
    kept = prune(configs, None) if prune else configs
    return config if config in kept else kept[0]
