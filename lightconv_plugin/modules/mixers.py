"""Registry of convolution types: ``--{encoder,decoder}-conv-type`` picks one.

A builder takes (conv_type, dim, num_heads, size, causal, args) where ``size``
is the layer's entry of ``--{encoder,decoder}-kernel-size-list`` (the kernel
width K, or the maximum window offset for TaLK) and returns a mixer module
with ``forward(x, pad_mask)`` and, when causal, ``step(x_t, state, pad_mask_t)``;
x arrives with padded positions zeroed, and ``pad_mask`` (B, T) (or None when
nothing is padded) says where they are.
"""

from __future__ import annotations

from .conv_mixers import build_ktap_mixer
from .talk_mixer import build_talk_mixer

MIXER_BUILDERS = {
    "lightweight": build_ktap_mixer,
    "dynamic": build_ktap_mixer,
    "talk": build_talk_mixer,
}


def build_mixer(conv_type: str, dim: int, num_heads: int, size: int, causal: bool, args):
    if conv_type not in MIXER_BUILDERS:
        raise ValueError(f"conv_type={conv_type!r}: expected one of {sorted(MIXER_BUILDERS)}")
    return MIXER_BUILDERS[conv_type](conv_type, dim, num_heads, size, causal, args)
