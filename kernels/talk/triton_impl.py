"""Host side of the TaLK Triton path: launchers for the contract of :mod:`.op`, AOT specs.

``forward``/``backward`` have the signatures of :mod:`.reference`. Nothing
reads tensor values on the host (the sort in ``backward`` is a device op),
so there is no synchronisation. Launch sequences:

* forward: ``talk_scan_kernel`` (blocked prefix sums), ``talk_fwd_kernel``;
* backward: ``talk_bwd_offsets_kernel`` (offset gradients and boundary keys),
  ``torch.sort`` + ``torch.searchsorted`` on the keys, ``talk_bwd_x_kernel``.

Scratch memory is linear in T: float32 (B, T, C) and float64 (B, T / 64, C)
in forward; int32/float32 (B, H, 2T), the int64 sort order and (B, H, T + 1)
offsets in backward.
"""

from __future__ import annotations

import contextlib

import torch

from ..aot import POINTER_TYPES, KernelSpec, config_text
from ..triton_common import cdiv, launch
from . import triton_bwd as tb
from . import triton_fwd as tf

__all__ = ["forward", "backward", "kernel_specs", "empty"]


def empty(shape, dtype, device) -> torch.Tensor:
    """Every output and scratch buffer comes from here (tests poison them)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _on_device(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def _dims(x, offset_left):
    B, T, C = x.shape
    H = offset_left.shape[2]
    return B, T, C, H, C // H


def forward(x, offset_left, offset_right, max_left: int, max_right: int):
    B, T, C, H, R = _dims(x, offset_left)
    nb = cdiv(T, tf.SCAN_L)
    local = empty((B, T, C), torch.float32, x.device)
    carry = empty((B, nb, C), torch.float64, x.device)
    out = empty(x.shape, x.dtype, x.device)
    right = offset_left if offset_right is None else offset_right  # unread placeholder when None
    with _on_device(x):
        launch(tf.talk_scan_kernel, tf.scan_grid, x, local, carry, B, T, C, nb, SCAN_L=tf.SCAN_L)
        launch(
            tf.talk_fwd_kernel, tf.fwd_grid,
            x, local, carry, offset_left, right, out, B, T, C, H, R, nb, max_left, max_right,
            float(max_left + max_right + 1), HAS_RIGHT=offset_right is not None, SCAN_L=tf.SCAN_L,
        )  # fmt: skip
    return out


def backward(grad_out, x, offset_left, offset_right, max_left: int, max_right: int):
    B, T, C, H, R = _dims(x, offset_left)
    norm = float(max_left + max_right + 1)
    has_right = offset_right is not None
    grad_left = empty(offset_left.shape, offset_left.dtype, x.device)
    grad_right = empty(offset_right.shape, offset_right.dtype, x.device) if has_right else None
    keys = empty((B, H, 2 * T), torch.int32, x.device)
    fracs = empty((B, H, 2 * T), torch.float32, x.device)
    grad_x = empty(x.shape, x.dtype, x.device)
    right = offset_right if has_right else offset_left
    with _on_device(x):
        launch(
            tb.talk_bwd_offsets_kernel, tb.offsets_grid,
            x, grad_out, offset_left, right, grad_left, grad_right if has_right else grad_left, keys, fracs,
            B, T, C, H, R, max_left, max_right, norm, HAS_RIGHT=has_right,
        )  # fmt: skip
        # Stable, so that boundaries of one cell keep the order of their ids and
        # grad_x sums them in the same order at every call.
        sorted_keys, order = torch.sort(keys, dim=-1, stable=True)
        cells = torch.arange(T + 1, dtype=torch.int32, device=x.device).expand(B, H, T + 1).contiguous()
        first = torch.searchsorted(sorted_keys, cells, out_int32=True)
        launch(tb.talk_bwd_x_kernel, tb.grad_x_grid, grad_out, order, first, fracs, grad_x, B, T, C, H, R, norm)
    return grad_x, grad_left, grad_right


# ---------------------------------------------------------------- AOT specs
# Typical shape of the report: C = 1024 in H = 16 heads (R = 64), two-sided
# windows. Pointers, C, H and R are 16-divisible at a real launch; T and the
# max offsets are not assumed to be.
_SHAPE = {"B": 8, "T": 4096, "H": 16, "R": 64}


def _specs(name, kernel, configs, heuristics, signature, constexprs, aligned, vector_loads, dtype):
    specs = []
    for cfg in configs:
        derived = heuristics({**_SHAPE, **cfg.kwargs})
        specs.append(KernelSpec(
            name=name, fn=kernel, signature=signature, constexprs={**constexprs, **cfg.kwargs, **derived},
            num_warps=cfg.num_warps, num_stages=cfg.num_stages, aligned=aligned, vector_loads=vector_loads,
            config=config_text(cfg, derived), dtype=dtype,
        ))  # fmt: skip
    return specs


def _dtype_specs(dtype: str, ptr: str):
    dims = {"B": "i32", "T": "i32", "C": "i32"}
    heads = {"H": "i32", "R": "i32"}
    offsets = {"max_left": "i32", "max_right": "i32", "norm": "fp32"}
    none = lambda args: {}  # noqa: E731
    return [
        *_specs(
            "talk_scan", tf.talk_scan_kernel.fn, tf.SCAN_CONFIGS, none,
            {"x_ptr": ptr, "local_ptr": "*fp32", "carry_ptr": "*fp64", **dims, "NB": "i32"},
            {"SCAN_L": tf.SCAN_L}, ("x_ptr", "local_ptr", "carry_ptr", "C"), ("x_ptr",), dtype,
        ),
        *_specs(
            "talk_fwd", tf.talk_fwd_kernel.fn.fn, tf.FWD_CONFIGS, tf.fwd_heuristics,
            {"x_ptr": ptr, "local_ptr": "*fp32", "carry_ptr": "*fp64", "left_ptr": ptr, "right_ptr": ptr,
             "out_ptr": ptr, **dims, **heads, "NB": "i32", **offsets},
            {"HAS_RIGHT": True, "SCAN_L": tf.SCAN_L},
            ("x_ptr", "local_ptr", "carry_ptr", "left_ptr", "right_ptr", "out_ptr", "C", "H", "R"),
            ("local_ptr",), dtype,
        ),
        *_specs(
            "talk_bwd_offsets", tb.talk_bwd_offsets_kernel.fn.fn, tb.OFFSETS_CONFIGS, tb.offsets_heuristics,
            {"x_ptr": ptr, "g_ptr": ptr, "left_ptr": ptr, "right_ptr": ptr, "grad_left_ptr": ptr,
             "grad_right_ptr": ptr, "key_ptr": "*i32", "frac_ptr": "*fp32", **dims, **heads, **offsets},
            {"HAS_RIGHT": True},
            ("x_ptr", "g_ptr", "left_ptr", "right_ptr", "grad_left_ptr", "grad_right_ptr", "key_ptr", "frac_ptr",
             "C", "H", "R"),
            ("g_ptr",), dtype,
        ),
        *_specs(
            "talk_bwd_x", tb.talk_bwd_x_kernel.fn.fn, tb.GRAD_X_CONFIGS, tb.grad_x_heuristics,
            {"g_ptr": ptr, "order_ptr": "*i64", "first_ptr": "*i32", "frac_ptr": "*fp32", "grad_x_ptr": ptr,
             **dims, **heads, "norm": "fp32"},
            {}, ("g_ptr", "order_ptr", "first_ptr", "frac_ptr", "grad_x_ptr", "C", "H", "R"), (), dtype,
        ),
    ]  # fmt: skip


def kernel_specs() -> list[KernelSpec]:
    """Every kernel of TaLK x every autotune configuration x {fp32, fp16, bf16}."""
    specs = []
    for dtype, ptr in POINTER_TYPES.items():
        specs += _dtype_specs(dtype, ptr)
    return specs
