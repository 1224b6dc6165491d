"""One step of causal TaLK convolution for incremental decoding, with bounded state.

State layout: a float32 tensor (B, C, max_left + 2). After the inputs
x[0..t] have been consumed, entry i holds

    state[b, c, i] = P[t + 1] - P[t - max_left + i],   i = 0 .. max_left + 1,

i.e. the prefix sums of the last max_left + 2 positions measured back from the
running total P[t + 1] (entry max_left + 1 is the running total minus itself,
0; positions before 0 count as P = 0, so their entries equal the running total).
Storing the differences instead of P itself keeps every entry as small as a
window sum, so float32 stays exact to a few roundings however long the decoded
sequence gets; the price is updating all max_left + 2 entries per step instead
of appending one (a vectorised add).

A window start a_l = t - offset * max_left falls in cell j = floor(a_l) at
fraction f; its entry is i = j - (t - max_left) and
P[t + 1] - P~(a_l) = (1 - f) * state[i] + f * state[i + 1]: a convex
combination, so the step has no cancellation at all. Clamping a_l at 0 is the
same as reading the entries of positions before 0, which hold the running
total, so the step needs no position counter.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import checks


def initial_state(batch: int, channels: int, max_left: int, device=None) -> torch.Tensor:
    """The state before the first step (nothing consumed: all zeros)."""
    return torch.zeros(batch, channels, max_left + 2, dtype=torch.float32, device=device)


def _check(x_t, offset_left_t, state, max_left):
    checks.check_tensor("x_t", x_t, 2)
    checks.check_tensor("offset_left_t", offset_left_t, 2)
    checks.check_int("max_left", max_left, 0)
    B, C = x_t.shape
    H = offset_left_t.shape[1]
    if offset_left_t.shape[0] != B:
        checks.fail("offset_left_t.shape", tuple(offset_left_t.shape), f"(B, H) with B={B}")
    if C % H != 0:
        checks.fail("number of heads H (offset_left_t.shape[1])", H, f"a divisor of C={C}")
    if state is not None:
        if not isinstance(state, torch.Tensor) or state.dtype != torch.float32:
            checks.fail("state", getattr(state, "dtype", type(state).__name__), "a float32 tensor or None")
        if tuple(state.shape) != (B, C, max_left + 2):
            checks.fail("state.shape", tuple(state.shape), f"(B, C, max_left + 2) = {(B, C, max_left + 2)}")
    checks.check_same_device(x_t=x_t, offset_left_t=offset_left_t, state=state)


def talk_step(
    x_t: torch.Tensor,
    offset_left_t: torch.Tensor,
    state: Optional[torch.Tensor],
    max_left: int,
):
    """Causal TaLK (max_right = 0) at the next position t, from the state of t - 1.

    Args:
        x_t: (B, C) input at position t, float32/float16/bfloat16.
        offset_left_t: (B, H) left offsets at position t, in [0, 1].
        state: (B, C, max_left + 2) float32 from the previous step, or None
            before the first step (see the module docstring for its layout).
        max_left: the largest left offset, an int >= 0.

    Returns:
        (out_t, new_state): out_t (B, C) in the dtype of ``x_t``, equal to
        ``talk_conv(x, offset_left, None, max_left, 0)[:, t]`` up to float32
        rounding, and the state after position t.

    Example:
        >>> x, left = torch.randn(2, 5, 8), torch.rand(2, 5, 4)
        >>> state = None
        >>> for t in range(5):
        ...     y, state = talk_step(x[:, t], left[:, t], state, max_left=3)
        >>> y.shape, state.shape
        (torch.Size([2, 8]), torch.Size([2, 8, 5]))
    """
    _check(x_t, offset_left_t, state, max_left)
    B, C = x_t.shape
    R = C // offset_left_t.shape[1]
    if state is None:
        state = initial_state(B, C, max_left, x_t.device)
    new_state = torch.cat([state[:, :, 1:] + x_t.float().unsqueeze(2), state.new_zeros(B, C, 1)], dim=2)

    shift = -(offset_left_t.float() * max_left)  # a_l - t, as the full op computes it
    whole = torch.floor(shift)
    frac = (shift - whole).repeat_interleave(R, dim=1).unsqueeze(2)
    # Offsets outside [0, 1] would index outside the state; clamp like the full op's window.
    entry = (whole.long() + max_left).clamp(0, max_left).repeat_interleave(R, dim=1).unsqueeze(2)
    window = (1 - frac) * torch.gather(new_state, 2, entry) + frac * torch.gather(new_state, 2, entry + 1)
    return (window.squeeze(2) / (max_left + 1)).to(x_t.dtype), new_state
