"""Argument validation shared by every op.

Every public op validates all of its arguments before touching any data, and
each failure is a ``ValueError`` that names the argument and shows its value.
Unsupported cases must never fall through to a kernel that returns zeros.
"""

from __future__ import annotations

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def fail(name: str, value, expected: str):
    raise ValueError(f"{name}={value!r}: expected {expected}")


def check_tensor(name: str, t, ndim: int):
    if not isinstance(t, torch.Tensor):
        fail(name, type(t).__name__, f"a torch.Tensor with {ndim} dimensions")
    if t.dim() != ndim:
        fail(f"{name}.shape", tuple(t.shape), f"{ndim} dimensions")
    if t.dtype not in SUPPORTED_DTYPES:
        fail(f"{name}.dtype", t.dtype, "one of float32, float16, bfloat16")
    if t.numel() == 0:
        fail(f"{name}.shape", tuple(t.shape), "no zero-sized dimension")


def check_same_device(**tensors):
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        fail("device", {k: str(v) for k, v in devices.items()}, "all tensors on one device")


def check_int(name: str, value, low: int, high: int | None = None):
    if isinstance(value, bool) or not isinstance(value, int):
        fail(name, value, "an int")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        fail(name, value, f"an int {bound}")


def check_probability(name: str, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        fail(name, value, "a float in [0, 1)")
