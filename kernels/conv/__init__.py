"""Lightweight and dynamic convolution (Wu et al., 2019)."""

from .op import dynamic_conv, lightweight_conv

__all__ = ["lightweight_conv", "dynamic_conv"]
