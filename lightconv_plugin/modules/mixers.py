"""Registry of convolution types: ``--{encoder,decoder}-conv-type`` picks one.

A builder takes (conv_type, dim, num_heads, size, causal, args) where ``size``
is the layer's entry of ``--{encoder,decoder}-kernel-size-list`` (the kernel
width K, or the maximum window offset for TaLK) and returns a mixer module
with ``forward(x, pad_mask)`` and, when causal, ``step(x_t, state, pad_mask_t)``;
x arrives with padded positions zeroed, and ``pad_mask`` (B, T) (or None when
nothing is padded) says where they are.

Two optional attributes of a builder describe its type to the architecture,
which needs them before any mixer is built (self-attention sets both):

* ``takes_size = False``: the type has no kernel; the kernel-size list is not
  read, and only the layer count says how many layers there are;
* ``owns_projections = True``: the mixer has its own input and output
  projections, so the block adds none (and no GLU) around it.
"""

from __future__ import annotations

from .attention_mixer import build_attention_mixer
from .conv_mixers import build_ktap_mixer
from .talk_mixer import build_talk_mixer

MIXER_BUILDERS = {
    "lightweight": build_ktap_mixer,
    "dynamic": build_ktap_mixer,
    "talk": build_talk_mixer,
    "attention": build_attention_mixer,
}


def _builder(conv_type: str):
    if conv_type not in MIXER_BUILDERS:
        raise ValueError(f"conv_type={conv_type!r}: expected one of {sorted(MIXER_BUILDERS)}")
    return MIXER_BUILDERS[conv_type]


def takes_size(conv_type: str) -> bool:
    return getattr(_builder(conv_type), "takes_size", True)


def owns_projections(conv_type: str) -> bool:
    return getattr(_builder(conv_type), "owns_projections", False)


def build_mixer(conv_type: str, dim: int, num_heads: int, size, causal: bool, args):
    return _builder(conv_type)(conv_type, dim, num_heads, size, causal, args)
