"""Benchmark cases of lightweight and dynamic conv, for ``scripts/bench_kernels.py``.

C = 1024 channels in H = 16 heads, centred taps, softmax on, no DropConnect,
for T in {128, 512, 2048, 8192} and K in {3, 15, 31}. Each op runs on the
Triton kernels and on this package's PyTorch path (the same public function
with ``LIGHTCONV_BACKEND=torch``). Dynamic conv also has two yardsticks at the
same width: scaled-dot-product self-attention (16 heads of 64) and fairseq's
``DynamicConv1dTBC``, which ``scripts/bench_kernels.py`` adds (this package
never imports fairseq).

Bytes moved, s = bytes per element of x, s_w of the weight, W = weight elements
(H*K shared, B*T*H*K dynamic):
  forward:            2*B*T*C*s + W*s_w                  (read x, w; write out)
  forward + backward: forward + 3*B*T*C*s + 2*W*s_w      (read grad_out, x, w; write grad_x, grad_w)
Attention: see ``lightconv_kernels.bench_case.attention_case``.
"""

from __future__ import annotations

import functools

import torch

from ..bench_case import BenchCase, attention_case

C, H = 1024, 16
T_VALUES = (128, 512, 2048, 8192)
K_VALUES = (3, 15, 31)


def _conv_bytes(B, T, K, dynamic, s, s_w):
    w = B * T * H * K if dynamic else H * K
    fwd = 2 * B * T * C * s + w * s_w
    return fwd, fwd + 3 * B * T * C * s + 2 * w * s_w


def _ours(op, B, T, K, dtype, device):
    from .. import dynamic_conv, lightweight_conv

    fn = dynamic_conv if op == "dynamic_conv" else lightweight_conv
    x = torch.randn(B, T, C, dtype=dtype, device=device, requires_grad=True)
    shape = (B, T, H, K) if op == "dynamic_conv" else (H, K)
    w = torch.randn(*shape, dtype=dtype, device=device, requires_grad=True)
    g = torch.randn(B, T, C, dtype=dtype, device=device)

    def forward():
        with torch.no_grad():
            return fn(x, w, K // 2)

    def forward_backward():
        return torch.autograd.grad(fn(x, w, K // 2), (x, w), g)

    return forward, forward_backward


def bench_cases(batch: int, dtype: torch.dtype, device) -> list[BenchCase]:
    s = torch.finfo(dtype).bits // 8
    cases = []
    for T in T_VALUES:
        for K in K_VALUES:
            params = {"B": batch, "T": T, "C": C, "H": H, "K": K}
            for op in ("lightweight_conv", "dynamic_conv"):
                fwd, both = _conv_bytes(batch, T, K, op == "dynamic_conv", s, s)
                for impl in ("triton", "torch"):
                    cases.append(BenchCase(
                        op, impl, params, functools.partial(_ours, op, batch, T, K, dtype, device), fwd, both,
                        env={"LIGHTCONV_BACKEND": impl},
                    ))  # fmt: skip
            cases.append(attention_case("dynamic_conv", params, dtype, device))
    return cases
