"""What an op contributes to ``scripts/bench_kernels.py``.

Each module in :data:`lightconv_kernels.registry.BENCH_MODULES` defines
``bench_cases(batch: int, dtype: torch.dtype, device) -> list[BenchCase]``. The
driver times every case, so a new op adds its module there and the driver
stays as it is. Building a case allocates its tensors; nothing is allocated
until the driver calls ``build``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class BenchCase:
    """One implementation of one op at one shape.

    Attributes:
        op: the op, e.g. "dynamic_conv"; rows of the table are grouped by it.
        impl: the implementation, e.g. "triton", "torch", "fairseq".
        params: the shape, shown in the table; "T" (if present) is the x axis
            of the plot, the other entries select the panel.
        build: allocates inputs and returns ``(forward, forward_backward)``,
            two argument-less callables that run the op (and its backward).
        bytes_fwd, bytes_fwd_bwd: the bytes the op must move at least (inputs
            read once, outputs written once), which turn times into GB/s.
        env: environment variables set while the case runs (e.g. the backend).
        note: footnote for the table, e.g. what else an implementation does.
    """

    op: str
    impl: str
    params: dict
    build: Callable[[], tuple[Callable[[], object], Callable[[], object]]]
    bytes_fwd: int
    bytes_fwd_bwd: int
    env: dict = field(default_factory=dict)
    note: str = ""


def sdpa_attention(B, T, C, H, dtype, device):
    """The ``build`` of :func:`attention_case`: q, k, v of shape (B, H, T, C // H)."""
    import torch

    q, k, v = (torch.randn(B, H, T, C // H, dtype=dtype, device=device, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, C // H, dtype=dtype, device=device)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(q, k, v)

    def forward_backward():
        return torch.autograd.grad(sdpa(q, k, v), (q, k, v), g)

    return forward, forward_backward


def attention_case(op: str, params: dict, dtype, device) -> BenchCase:
    """Self-attention at the width of ``params`` (B, T, C, H), the yardstick every op is shown against.

    ``torch.nn.functional.scaled_dot_product_attention`` on given q, k, v (no
    projections). Its bytes are its own: forward reads q, k, v and writes the
    output (4*B*T*C elements), backward another 8*B*T*C.
    """
    import torch

    B, T, C, H = (params[k] for k in ("B", "T", "C", "H"))
    s = torch.finfo(dtype).bits // 8
    return BenchCase(
        op, "attention", params, functools.partial(sdpa_attention, B, T, C, H, dtype, device),
        4 * B * T * C * s, 12 * B * T * C * s,
        note=f"scaled_dot_product_attention, {H} heads of {C // H}, no projections; its own bytes (q, k, v, out)",
    )  # fmt: skip
