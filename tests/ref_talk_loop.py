"""Independent float64 reference of TaLK convolution.

Written as the formula of the issue reads, one output position at a time,
with no code shared with the package. Gradients come from autograd through
it; the two conventions at kinks are spelled out where they arise:

* the clamp is ``torch.clamp``, whose gradient passes on the closed interval;
* P~(a) interpolates on the cell floor(a), except a = T, which uses the last
  cell (T - 1, fraction 1): same value P[T], slope x[T - 1].
"""

import torch


def talk_loop(x, offset_left, offset_right, max_left, max_right):
    """x (B, T, C), offsets (B, T, H) or offset_right None. Returns float64 (B, T, C)."""
    x = x.double()
    B, T, C = x.shape
    H = offset_left.shape[2]
    head_of_channel = torch.arange(C, device=x.device) // (C // H)
    P = torch.cat([torch.zeros_like(x[:, :1]), torch.cumsum(x, dim=1)], dim=1)  # P[j] = sum_{u<j} x[u]

    def P_interp(a):  # a: (B, C) real positions in [0, T]
        j = torch.floor(a).detach().long().clamp(max=T - 1)
        frac = a - j
        return P.gather(1, j.unsqueeze(1)).squeeze(1) + frac * x.gather(1, j.unsqueeze(1)).squeeze(1)

    norm = max_left + max_right + 1
    rows = []
    for t in range(T):
        a_l = torch.clamp(t - offset_left[:, t, head_of_channel].double() * max_left, 0, T - 1)
        if offset_right is None:
            a_r = torch.full_like(a_l, float(t))
        else:
            a_r = torch.clamp(t + offset_right[:, t, head_of_channel].double() * max_right, 0, T - 1)
        rows.append((P_interp(a_r + 1) - P_interp(a_l)) / norm)
    return torch.stack(rows, dim=1)


def talk_in_dtype(x, offset_left, offset_right, max_left, max_right):
    """The same formula in plain PyTorch with every operation in the dtype of x.

    The yardstick for float16/bfloat16: a kernel that accumulates in float32
    must not be further from the float64 loop than twice this.
    """
    B, T, C = x.shape
    R = C // offset_left.shape[2]
    P = torch.cat([torch.zeros_like(x[:, :1]), torch.cumsum(x, dim=1)], dim=1)
    t = torch.arange(T, dtype=x.dtype, device=x.device).view(1, T, 1)

    def P_interp(a):  # a: (B, T, H)
        j = torch.floor(a).detach().long().clamp(max=T - 1)
        frac = (a - j.to(x.dtype)).repeat_interleave(R, dim=2)
        j = j.repeat_interleave(R, dim=2)
        return P.gather(1, j) + frac * x.gather(1, j)

    a_l = torch.clamp(t - offset_left.to(x.dtype) * max_left, 0, T - 1)
    a_r = t.expand_as(a_l) if offset_right is None else torch.clamp(t + offset_right.to(x.dtype) * max_right, 0, T - 1)
    return (P_interp(a_r + 1) - P_interp(a_l)) / (max_left + max_right + 1)


def with_grads(fn, x, offset_left, offset_right, max_left, max_right, grad):
    """(out, grad_x, grad_left, grad_right) of ``fn`` by autograd; grad_right None when causal."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, offset_left)]
    if offset_right is not None:
        leaves.append(offset_right.detach().clone().requires_grad_())
    right = leaves[2] if offset_right is not None else None
    out = fn(leaves[0], leaves[1], right, max_left, max_right)
    grads = torch.autograd.grad(out, leaves, grad.to(out.dtype))
    return (out.detach(), *grads, *(() if offset_right is not None else (None,)))


def loop_with_grads(x, offset_left, offset_right, max_left, max_right, grad):
    """:func:`with_grads` of the float64 loop, on float64 copies of the inputs."""
    right = None if offset_right is None else offset_right.double()
    return with_grads(talk_loop, x.double(), offset_left.double(), right, max_left, max_right, grad.double())
