"""Public lightweight and dynamic convolution, registered as torch custom ops.

Both public functions validate their arguments, then call one custom op,
``lightconv_kernels::conv``, whose weight is either shared (H, K) or per
position (B, T, H, K). Registering it with ``torch.library`` keeps
``torch.compile`` from breaking the graph at the op, and lets autograd call a
second op for the backward pass. Which implementation runs (Triton kernels or
the PyTorch path) is decided per call by :mod:`lightconv_kernels.backend`.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend, checks
from . import edge as edges


def _impl(x: torch.Tensor):
    return backend.implementation(x, __package__)


# Custom ops cannot return None: an implementation that saves no statistics
# for its backward gives an empty placeholder in their slot.
@torch.library.custom_op("lightconv_kernels::conv", mutates_args=())
def _conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    padding_l: int,
    weight_softmax: bool,
    dropout_p: float,
    seed: Optional[torch.Tensor],
    save_stats: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    out, stats = _impl(x).forward(x, weight, padding_l, weight_softmax, dropout_p, seed, save_stats)
    return out, x.new_empty(0, dtype=torch.float32) if stats is None else stats


@_conv.register_fake
def _(x, weight, padding_l, weight_softmax, dropout_p, seed, save_stats):
    shape = _impl(x).stats_shape(x, weight, weight_softmax, save_stats)
    return torch.empty_like(x), x.new_empty(shape or (0,), dtype=torch.float32)


@torch.library.custom_op("lightconv_kernels::conv_backward", mutates_args=())
def _conv_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    padding_l: int,
    weight_softmax: bool,
    dropout_p: float,
    seed: Optional[torch.Tensor],
    stats: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    return _impl(x).backward(grad_out, x, weight, padding_l, weight_softmax, dropout_p, seed, stats)


@_conv_backward.register_fake
def _(grad_out, x, weight, padding_l, weight_softmax, dropout_p, seed, stats):
    return torch.empty_like(x), torch.empty_like(weight)


def _setup_context(ctx, inputs, output):
    x, weight, padding_l, weight_softmax, dropout_p, seed, _ = inputs
    ctx.save_for_backward(x, weight, seed, output[1])
    ctx.config = (padding_l, weight_softmax, dropout_p)


def _backward(ctx, grad_out, _grad_stats):
    x, weight, seed, stats = ctx.saved_tensors
    grad_x, grad_w = _conv_backward(grad_out.contiguous(), x, weight, *ctx.config, seed, stats)
    return grad_x, grad_w, None, None, None, None, None


_conv.register_autograd(_backward, setup_context=_setup_context)


class _EagerConv(torch.autograd.Function):
    """The same two implementations for eager mode, without the custom op's
    per-call dispatch cost (about 0.25 ms per forward + backward on CPU, which
    decides the speed of short sequences). torch.compile traces ``_conv``."""

    @staticmethod
    def forward(ctx, x, weight, padding_l, weight_softmax, dropout_p, seed, save_stats):
        out, stats = _impl(x).forward(x, weight, padding_l, weight_softmax, dropout_p, seed, save_stats)
        _setup_context(ctx, (x, weight, padding_l, weight_softmax, dropout_p, seed, save_stats), (out, stats))
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, seed, stats = ctx.saved_tensors
        grad_x, grad_w = _impl(x).backward(grad_out.contiguous(), x, weight, *ctx.config, seed, stats)
        return grad_x, grad_w, None, None, None, None, None


def _run(x, weight, padding_l, weight_softmax, dropout_p, seed):
    # Only a forward whose backward can run keeps the statistics the backward reads.
    save_stats = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    args = (x.contiguous(), weight.contiguous(), padding_l, weight_softmax, dropout_p, seed, save_stats)
    return _conv(*args)[0] if torch.compiler.is_compiling() else _EagerConv.apply(*args)


def _check_common(x, padding_l, K, weight_softmax, weight_dropout, training, edge, valid):
    checks.check_int("kernel size K (weight.shape[-1])", K, 1)
    checks.check_int("padding_l", padding_l, 0, K - 1)
    if not isinstance(weight_softmax, bool):
        checks.fail("weight_softmax", weight_softmax, "a bool")
    if not isinstance(training, bool):
        checks.fail("training", training, "a bool")
    checks.check_probability("weight_dropout", weight_dropout)
    if edge not in edges.EDGES:
        checks.fail("edge", edge, f"one of {', '.join(edges.EDGES)}")
    if edge == "renorm" and not weight_softmax:
        checks.fail("edge", edge, "weight_softmax=True: 'renorm' renormalises the softmax over the taps")
    if valid is not None:
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
            checks.fail("valid", type(valid).__name__ if not isinstance(valid, torch.Tensor) else valid.dtype,
                        "a bool tensor (B, T), True on positions inside the sequence")
        if tuple(valid.shape) != tuple(x.shape[:2]):
            checks.fail("valid.shape", tuple(valid.shape), f"(B, T) = {tuple(x.shape[:2])}")
        checks.check_same_device(x=x, valid=valid)


def _check_heads(C: int, H: int):
    if H < 1 or C % H != 0:
        checks.fail("number of heads H (weight.shape[-2])", H, f"a divisor of C={C}")


def _seed(x, weight_dropout, training):
    if not training or weight_dropout == 0:
        return 0.0, None
    return float(weight_dropout), torch.randint(0, 2**62, (1,), device=x.device)


def lightweight_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    padding_l: int,
    *,
    weight_softmax: bool = True,
    weight_dropout: float = 0.0,
    training: bool = False,
    edge: str = "zeros",
    valid: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Depthwise convolution with one K-tap kernel per head, shared over time.

    ``out[b, t, c] = sum_k w[h, k] * x[b, t + k - padding_l, c]`` with head
    ``h = c // (C // H)``, zero outside ``[0, T)``, and ``w = softmax(weight)``
    over K when ``weight_softmax``. With ``training`` and ``weight_dropout > 0``
    the normalised taps go through DropConnect (drop, then rescale by 1/(1-p)).

    Args:
        x: (B, T, C), float32, float16 or bfloat16.
        weight: (H, K) with H dividing C; any supported dtype.
        padding_l: taps to the left of the output position, 0 <= padding_l <= K - 1
            (K - 1 is causal, (K - 1) // 2 centred).
        edge: what a tap outside the sequence means (see :mod:`.edge`):
            ``"zeros"`` (it reads 0; softmax over all K), ``"renorm"`` (softmax
            over the taps inside only) or ``"fairseq"`` (fairseq 0.12's
            training forward; for this op the same as ``"zeros"``).
        valid: optional (B, T) bool, False on padding: such positions count as
            outside the sequence (they read 0, and ``renorm`` leaves them out).

    Returns:
        (B, T, C) in the dtype of ``x``; accumulation is float32.

    Example:
        >>> x = torch.randn(2, 10, 8)
        >>> w = torch.randn(4, 3)        # 4 heads of 2 channels, K = 3
        >>> lightweight_conv(x, w, padding_l=1).shape
        torch.Size([2, 10, 8])
    """
    checks.check_tensor("x", x, 3)
    checks.check_tensor("weight", weight, 2)
    checks.check_same_device(x=x, weight=weight)
    H, K = weight.shape
    _check_heads(x.shape[2], H)
    _check_common(x, padding_l, K, weight_softmax, weight_dropout, training, edge, valid)
    p, seed = _seed(x, weight_dropout, training)
    out = _run(edges.mask_outside(x, valid), weight, padding_l, weight_softmax, p, seed)
    if edge == "renorm":
        inside = edges.tap_inside(valid, x.shape[1], K, padding_l, x.device)
        out = edges.scale_heads(out, edges.renorm_light_scale(weight, inside))
    return out


def dynamic_conv(
    x: torch.Tensor,
    weight: torch.Tensor,
    padding_l: int,
    *,
    weight_softmax: bool = True,
    weight_dropout: float = 0.0,
    training: bool = False,
    edge: str = "zeros",
    valid: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Depthwise convolution with a K-tap kernel per position and head.

    ``out[b, t, c] = sum_k w[b, t, h, k] * x[b, t + k - padding_l, c]`` with
    ``h = c // (C // H)``; otherwise as :func:`lightweight_conv`. The weight is
    usually predicted from x itself (DynamicConv: a Linear C -> H*K).

    Args:
        x: (B, T, C), float32, float16 or bfloat16.
        weight: (B, T, H, K), logits when ``weight_softmax``.
        padding_l: 0 <= padding_l <= K - 1.
        edge: as :func:`lightweight_conv`; ``"fairseq"`` cuts a causal kernel
            to its last T taps before the softmax when T < K.
        valid: as :func:`lightweight_conv`.

    Returns:
        (B, T, C) in the dtype of ``x``.

    Example:
        >>> x = torch.randn(2, 10, 8)
        >>> w = torch.randn(2, 10, 4, 5)
        >>> dynamic_conv(x, w, padding_l=4).shape   # causal, K = 5
        torch.Size([2, 10, 8])
    """
    checks.check_tensor("x", x, 3)
    checks.check_tensor("weight", weight, 4)
    checks.check_same_device(x=x, weight=weight)
    B, T, C = x.shape
    if tuple(weight.shape[:2]) != (B, T):
        checks.fail("weight.shape", tuple(weight.shape), f"(B, T, H, K) with B={B}, T={T}")
    H, K = weight.shape[2:]
    _check_heads(C, H)
    _check_common(x, padding_l, K, weight_softmax, weight_dropout, training, edge, valid)
    p, seed = _seed(x, weight_dropout, training)
    x = edges.mask_outside(x, valid)
    if edge == "fairseq":
        weight, padding_l = edges.fairseq_cut(weight, T, padding_l)
    elif edge == "renorm":
        inside = edges.tap_inside(valid, T, K, padding_l, x.device)
        out = _run(x, edges.renorm_dynamic_logits(weight, inside), padding_l, True, p, seed)
        return out if valid is None else edges.zero_where_no_tap_inside(out, inside)
    return _run(x, weight, padding_l, weight_softmax, p, seed)
