"""Benchmark cases of TaLK convolution, for ``scripts/bench_kernels.py``.

C = 1024 channels in H = 16 heads, two-sided windows with
max_left = max_right = M, for T in {128, 512, 2048, 8192} and M in {3, 15, 63}:
TaLK's cost does not depend on the window, which the M panels should show.
It runs on the Triton kernels and on this package's PyTorch path (the same
public function with ``LIGHTCONV_BACKEND=torch``); scaled-dot-product
self-attention (16 heads of 64) at the same width is the yardstick.

Bytes moved, s = bytes per element, offsets (B, T, H) twice:
  forward:            2*B*T*C*s + 2*B*T*H*s              (read x, offsets; write out)
  forward + backward: forward + 3*B*T*C*s + 4*B*T*H*s    (read grad_out, x, offsets; write their grads)
Attention: forward 4*B*T*C*s (q, k, v, out), backward another 8*B*T*C*s.
"""

from __future__ import annotations

import functools

import torch

from ..bench_case import BenchCase, attention_case

C, H = 1024, 16
T_VALUES = (128, 512, 2048, 8192)
M_VALUES = (3, 15, 63)


def _talk_bytes(B, T, s):
    fwd = 2 * B * T * C * s + 2 * B * T * H * s
    return fwd, fwd + 3 * B * T * C * s + 4 * B * T * H * s


def _ours(B, T, M, dtype, device):
    from .. import talk_conv

    x = torch.randn(B, T, C, dtype=dtype, device=device, requires_grad=True)
    left, right = (torch.rand(B, T, H, dtype=dtype, device=device, requires_grad=True) for _ in range(2))
    g = torch.randn(B, T, C, dtype=dtype, device=device)

    def forward():
        with torch.no_grad():
            return talk_conv(x, left, right, M, M)

    def forward_backward():
        return torch.autograd.grad(talk_conv(x, left, right, M, M), (x, left, right), g)

    return forward, forward_backward


def bench_cases(batch: int, dtype: torch.dtype, device) -> list[BenchCase]:
    s = torch.finfo(dtype).bits // 8
    cases = []
    for T in T_VALUES:
        for M in M_VALUES:
            params = {"B": batch, "T": T, "C": C, "H": H, "M": M}
            fwd, both = _talk_bytes(batch, T, s)
            for impl in ("triton", "torch"):
                cases.append(BenchCase(
                    "talk_conv", impl, params, functools.partial(_ours, batch, T, M, dtype, device), fwd, both,
                    env={"LIGHTCONV_BACKEND": impl},
                ))  # fmt: skip
            cases.append(attention_case("talk_conv", params, dtype, device))
    return cases
