"""Public TaLK convolution, registered as the torch custom ops ``lightconv_kernels::talk``
and ``lightconv_kernels::talk_backward`` (same pattern as :mod:`lightconv_kernels.conv.op`).
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend, checks


def _impl(x: torch.Tensor):
    return backend.implementation(x, __package__)


@torch.library.custom_op("lightconv_kernels::talk", mutates_args=())
def _talk(
    x: torch.Tensor,
    offset_left: torch.Tensor,
    offset_right: Optional[torch.Tensor],
    max_left: int,
    max_right: int,
) -> torch.Tensor:
    return _impl(x).forward(x, offset_left, offset_right, max_left, max_right)


@_talk.register_fake
def _(x, offset_left, offset_right, max_left, max_right):
    return torch.empty_like(x)


# Custom ops cannot return an optional tensor, so without offset_right its
# gradient slot carries an empty placeholder that autograd turns into None.
@torch.library.custom_op("lightconv_kernels::talk_backward", mutates_args=())
def _talk_backward(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    offset_left: torch.Tensor,
    offset_right: Optional[torch.Tensor],
    max_left: int,
    max_right: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    grad_x, grad_left, grad_right = _impl(x).backward(grad_out, x, offset_left, offset_right, max_left, max_right)
    if grad_right is None:
        grad_right = offset_left.new_empty(0)
    return grad_x, grad_left, grad_right


@_talk_backward.register_fake
def _(grad_out, x, offset_left, offset_right, max_left, max_right):
    right = offset_left.new_empty(0) if offset_right is None else torch.empty_like(offset_right)
    return torch.empty_like(x), torch.empty_like(offset_left), right


def _setup_context(ctx, inputs, output):
    x, offset_left, offset_right, max_left, max_right = inputs
    ctx.save_for_backward(x, offset_left, offset_right)
    ctx.config = (max_left, max_right)


def _backward(ctx, grad_out):
    x, offset_left, offset_right = ctx.saved_tensors
    grad_x, grad_left, grad_right = _talk_backward(grad_out.contiguous(), x, offset_left, offset_right, *ctx.config)
    return grad_x, grad_left, None if offset_right is None else grad_right, None, None


_talk.register_autograd(_backward, setup_context=_setup_context)


def _check_offsets(name: str, offset, x: torch.Tensor) -> int:
    checks.check_tensor(name, offset, 3)
    B, T, C = x.shape
    H = offset.shape[2]
    if tuple(offset.shape[:2]) != (B, T):
        checks.fail(f"{name}.shape", tuple(offset.shape), f"(B, T, H) with B={B}, T={T}")
    if C % H != 0:
        checks.fail(f"number of heads H ({name}.shape[2])", H, f"a divisor of C={C}")
    return H


def talk_conv(
    x: torch.Tensor,
    offset_left: torch.Tensor,
    offset_right: Optional[torch.Tensor],
    max_left: int,
    max_right: int,
) -> torch.Tensor:
    """Time-aware large kernel convolution (Lioutas & Guo, ICML 2020).

    Each position t of head h = c // (C // H) averages x over an adaptive window
    [a_l, a_r] whose ends move by learnt fractions of the largest offsets::

        a_l = clamp(t - offset_left[b, t, h] * max_left, 0, T - 1)
        a_r = clamp(t + offset_right[b, t, h] * max_right, 0, T - 1)
        out[b, t, c] = (P~(a_r + 1) - P~(a_l)) / (max_left + max_right + 1)

    with P[j] = sum_{u<j} x[b, u, c] (P[0] = 0) and its linear interpolation
    P~(a) = P[floor(a)] + frac(a) * x[floor(a)] for real a in [0, T]
    (P~(T) = P[T]). For integer ends this is the plain window sum divided by
    the largest window; the cost is independent of the window size.

    Gradients flow to x and both offsets, piecewise linearly. The conventions
    at the kinks (a set of measure zero) are:

    * slope of P~ at an integer point j: x[j] (from the right), except at
      a = T where only x[T - 1] exists;
    * clamp: the gradient passes where the unclamped position lies in the
      closed interval [0, T - 1], as ``torch.clamp`` does.

    Offsets are meant to lie in [0, 1] (e.g. a sigmoid); values outside are
    not rejected (that would need a device sync) and are simply clamped by
    the formula above.

    Args:
        x: (B, T, C), float32, float16 or bfloat16.
        offset_left: (B, T, H), H dividing C; any supported dtype.
        offset_right: (B, T, H) like ``offset_left``, or None for a causal
            window (then ``max_right`` must be 0). A tensor with
            ``max_right == 0`` is accepted; it has no effect and gets a zero
            gradient.
        max_left, max_right: ints >= 0, the largest left/right offsets.

    Returns:
        (B, T, C) in the dtype of ``x``; accumulation is float32 (block
        carries of the prefix sums in float64, see
        :mod:`lightconv_kernels.talk.reference`). The gradients of x and of
        the offsets come back in their input dtypes.

    Example:
        >>> x = torch.randn(2, 10, 8)
        >>> left = torch.rand(2, 10, 4)      # 4 heads of 2 channels
        >>> right = torch.rand(2, 10, 4)
        >>> talk_conv(x, left, right, max_left=3, max_right=3).shape
        torch.Size([2, 10, 8])
        >>> talk_conv(x, left, None, max_left=7, max_right=0).shape   # causal
        torch.Size([2, 10, 8])
    """
    checks.check_tensor("x", x, 3)
    H = _check_offsets("offset_left", offset_left, x)
    if offset_right is not None:
        _check_offsets("offset_right", offset_right, x)
        if offset_right.shape[2] != H:
            checks.fail("offset_right.shape", tuple(offset_right.shape), f"the shape of offset_left {tuple(offset_left.shape)}")
    checks.check_int("max_left", max_left, 0)
    checks.check_int("max_right", max_right, 0)
    if offset_right is None and max_right != 0:
        checks.fail("max_right", max_right, "0 when offset_right is None (a causal window)")
    checks.check_same_device(x=x, offset_left=offset_left, offset_right=offset_right)
    right = None if offset_right is None else offset_right.contiguous()
    return _talk(x.contiguous(), offset_left.contiguous(), right, max_left, max_right)
