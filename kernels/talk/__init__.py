"""TaLK: time-aware large kernel convolution (Lioutas & Guo, 2020)."""

from .op import talk_conv
from .step import talk_step

__all__ = ["talk_conv", "talk_step"]
