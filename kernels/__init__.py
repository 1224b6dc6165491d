"""Convolution ops of lightconv-plugin, independent of fairseq.

Public functions take batch-first (B, T, C) tensors in float32, float16 or
bfloat16 and return the input dtype, accumulating in float32. CUDA tensors run
Triton kernels, CPU tensors a PyTorch path; ``LIGHTCONV_BACKEND`` overrides the
choice (see :mod:`lightconv_kernels.backend`).
"""

from .conv import dynamic_conv, lightweight_conv
from .talk import talk_conv

__all__ = ["lightweight_conv", "dynamic_conv", "talk_conv"]
