"""Host side of the Triton path: launchers for the contract of :mod:`.op`, AOT specs.

``forward``/``backward`` have the signatures of :mod:`.reference`. They only
allocate and launch (nothing reads tensor values on the host, so there is no
device synchronisation); the kernels live in :mod:`.triton_conv`,
:mod:`.triton_grad_w` and :mod:`.triton_backward`.

Launch sequence:

* ``forward``: ``conv_taps_kernel``; for a dynamic softmax whose backward
  will run (``save_stats``) it also writes the softmax statistics of every
  weight row, which ``backward`` takes back as ``stats``;
* ``backward``, dynamic: ``dynamic_backward_kernel`` for both gradients;
* ``backward``, lightweight: ``light_backward_kernel`` (grad_x, and partial
  sums of the weight gradient), then ``light_grad_w_reduce_kernel`` to add
  them up.
"""

from __future__ import annotations

import contextlib

import torch

from .. import backend
from ..aot import POINTER_TYPES, KernelSpec, config_text, make_spec
from ..triton_common import KEEP_MASK_BLOCK, cdiv, dropconnect_keep_mask, keep_mask_kernel, launch, next_pow2
from . import triton_backward as tb
from . import triton_conv as tc
from . import triton_grad_w as tg

__all__ = ["forward", "backward", "stats_shape", "dropconnect_keep_mask", "kernel_specs", "empty"]


def empty(shape, dtype, device) -> torch.Tensor:
    """Every output and scratch buffer comes from here (tests poison them with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _bucket(T: int) -> int:
    """Autotune key for the length: one tuning per power of two, not per distinct T."""
    return next_pow2(T)


def _dims(x, weight):
    B, T, C = x.shape
    H, K = weight.shape[-2:]
    return B, T, C, H, C // H, K


def _dropout(weight, dropout_p, seed):
    """(seed pointer, p, 1 / (1 - p), DROPOUT); the weight stands in for an unused seed."""
    if dropout_p > 0:
        if seed is None:
            raise ValueError(f"dropout_p={dropout_p!r} needs a seed tensor, got None")
        return seed, float(dropout_p), 1.0 / (1.0 - float(dropout_p)), True
    return weight, 0.0, 1.0, False


def _on_device(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def stats_shape(x, weight, weight_softmax: bool, save_stats: bool):
    """Shape of the statistics :func:`forward` returns: the log-sum-exp of every
    weight row of a dynamic softmax, (B, T, H), when asked to save them; else None."""
    if save_stats and weight.dim() == 4 and weight_softmax:
        return (*x.shape[:2], weight.shape[2])
    return None


def forward(x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed, save_stats: bool):
    backend.conv_body()  # a bad LIGHTCONV_CONV_BODY fails here, before any launch
    B, T, C, H, R, K = _dims(x, weight)
    seed_t, p, scale, drop = _dropout(weight, dropout_p, seed)
    out = empty(x.shape, x.dtype, x.device)
    shape = stats_shape(x, weight, weight_softmax, save_stats)
    stats = None if shape is None else empty(shape, torch.float32, x.device)
    with _on_device(x):
        launch(
            tc.conv_taps_kernel, tc.conv_grid,
            x, weight, seed_t, out, out if stats is None else stats,  # out: a placeholder pointer
            B, T, _bucket(T), C, H, R, K, padding_l, p, scale,
            DYNAMIC=weight.dim() == 4, SOFTMAX=weight_softmax, DROPOUT=drop, STATS=stats is not None,
        )  # fmt: skip
    return out, stats


def backward(grad_out, x, weight, padding_l: int, weight_softmax: bool, dropout_p: float, seed, stats):
    B, T, C, H, R, K = _dims(x, weight)
    got, need = None if stats is None else tuple(stats.shape), stats_shape(x, weight, weight_softmax, True)
    if need is not None and got != need:
        raise ValueError(
            f"stats of shape {got}: the backward of a dynamic softmax needs the (B, T, H) = {need} "
            "statistics that forward(..., save_stats=True) returns"
        )
    seed_t, p, scale, drop = _dropout(weight, dropout_p, seed)
    grad_w = empty(weight.shape, weight.dtype, weight.device)
    grad_x = empty(x.shape, x.dtype, x.device)
    with _on_device(x):
        if weight.dim() == 4:
            launch(
                tb.dynamic_backward_kernel, tb.backward_grid,
                x, grad_out, weight, stats if weight_softmax else weight, seed_t, grad_x, grad_w,
                B, T, _bucket(T), C, H, R, K, padding_l, p, scale, SOFTMAX=weight_softmax, DROPOUT=drop,
            )  # fmt: skip
            return grad_x, grad_w
        split = tb.LIGHT_SPLIT
        parts = B * cdiv(T, split)
        partial = empty((parts, H, K), torch.float32, x.device)
        launch(
            tb.light_backward_kernel, tb.light_grid,
            x, grad_out, weight, seed_t, grad_x, partial, B, T, _bucket(T), C, H, R, K, padding_l, p, scale,
            SOFTMAX=weight_softmax, DROPOUT=drop, SPLIT=split,
        )  # fmt: skip
        tg.light_grad_w_reduce_kernel[(H,)](
            partial, weight, seed_t, grad_w, parts, H, K, p, scale, SOFTMAX=weight_softmax, DROPOUT=drop
        )
    return grad_x, grad_w


# ---------------------------------------------------------------- AOT specs
# The report compiles each kernel at one typical shape, C = 1024 split into
# H = 16 heads (R = 64) with K = 31, in its most demanding variant (softmax and
# DropConnect on). Specialisation matches a real launch: pointers, C and R are
# 16-divisible; T, K and padding_l are not assumed to be.
_SHAPE = {"B": 8, "T": 4096, "H": 16, "R": 64, "K": 31}


def _conv_specs(dtype: str, ptr: str):
    fn = tc.conv_taps_kernel.fn.fn
    types = {"x_ptr": ptr, "w_ptr": ptr, "seed_ptr": "*i64", "out_ptr": ptr, "lse_ptr": "*fp32",
             "dropout_p": "fp32", "keep_scale": "fp32"}  # fmt: skip
    specs = []
    for dynamic in (False, True):
        for cfg in tc.CONV_CONFIGS:
            derived = tc.conv_heuristics({**_SHAPE, **cfg.kwargs})
            specs.append(make_spec(
                f"conv_taps[{'dynamic' if dynamic else 'light'}]", fn, types,
                {"DYNAMIC": dynamic, "SOFTMAX": True, "DROPOUT": True, "STATS": dynamic, **cfg.kwargs, **derived},
                num_warps=cfg.num_warps, num_stages=cfg.num_stages, vector_loads=("x_ptr",),
                aligned=("x_ptr", "w_ptr", "out_ptr", "lse_ptr", "C", "H", "R"), config=config_text(cfg, derived), dtype=dtype,
            ))  # fmt: skip
    return specs


def _plain_config(derived: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in derived.items()) + " w4s3"


def _tuned(cfg, dtype: str) -> dict:
    return dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages, vector_loads=("x_ptr", "g_ptr"), dtype=dtype)


def _backward_specs(dtype: str, ptr: str):
    specs = []
    shared = {"x_ptr": ptr, "g_ptr": ptr, "w_ptr": ptr, "seed_ptr": "*i64", "gx_ptr": ptr,
              "dropout_p": "fp32", "keep_scale": "fp32"}  # fmt: skip
    flags = {"SOFTMAX": True, "DROPOUT": True}
    for cfg in tb.BACKWARD_CONFIGS:
        derived = tb.dynamic_heuristics({**_SHAPE, **cfg.kwargs})
        specs.append(make_spec(
            "dynamic_backward", tb.dynamic_backward_kernel.fn.fn,
            {**shared, "lse_ptr": "*fp32", "gw_ptr": ptr}, {**flags, **cfg.kwargs, **derived},
            aligned=("x_ptr", "g_ptr", "w_ptr", "lse_ptr", "gx_ptr", "gw_ptr", "C", "H", "R"),
            config=config_text(cfg, derived), **_tuned(cfg, dtype),
        ))  # fmt: skip
    for cfg in tb.BACKWARD_CONFIGS:
        derived = tb.light_heuristics({**_SHAPE, **cfg.kwargs, "SPLIT": tb.LIGHT_SPLIT})
        specs.append(make_spec(
            "light_backward", tb.light_backward_kernel.fn.fn,
            {**shared, "part_ptr": "*fp32"}, {**flags, "SPLIT": tb.LIGHT_SPLIT, **cfg.kwargs, **derived},
            aligned=("x_ptr", "g_ptr", "w_ptr", "gx_ptr", "part_ptr", "C", "H", "R"),
            config=config_text(cfg, derived), **_tuned(cfg, dtype),
        ))  # fmt: skip
    plain = dict(num_warps=4, num_stages=3, dtype=dtype)  # the kernel without autotuning
    derived = tg.light_reduce_heuristics(_SHAPE)
    specs.append(make_spec(
        "light_grad_w_reduce", tg.light_grad_w_reduce_kernel.fn,
        {"part_ptr": "*fp32", "w_ptr": ptr, "seed_ptr": "*i64", "gw_ptr": ptr, "dropout_p": "fp32",
         "keep_scale": "fp32"},
        {**flags, **derived}, aligned=("part_ptr", "w_ptr", "gw_ptr", "H"), config=_plain_config(derived), **plain,
    ))  # fmt: skip
    return specs


def kernel_specs() -> list[KernelSpec]:
    """Every kernel of this op x every autotune configuration x {fp32, fp16, bf16}."""
    specs = []
    for dtype, ptr in POINTER_TYPES.items():
        specs += _conv_specs(dtype, ptr)
        specs += _backward_specs(dtype, ptr)
    specs.append(make_spec(
        "dropconnect_keep_mask", keep_mask_kernel, {"seed_ptr": "*i64", "keep_ptr": "*i8", "dropout_p": "fp32"},
        {"BLOCK": KEEP_MASK_BLOCK}, num_warps=4, num_stages=3, aligned=("keep_ptr",),
        config=f"BLOCK={KEEP_MASK_BLOCK} w4s3", dtype="int8",
    ))  # fmt: skip
    return specs
