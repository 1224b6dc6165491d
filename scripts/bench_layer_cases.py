"""The layers and ops that ``scripts/bench_layers.py`` times, at one width.

Layer level is the sequence-mixing sub-layer as a model runs it, projections
included, in the layout that model keeps its activations in:

* ``lightweight``, ``dynamic``, ``talk``: ours, ``ConvSubBlock`` of the
  plugin's model (input Linear C -> C, mixer, output Linear C -> C; no GLU,
  as in the IWSLT settings), batch first;
* ``fairseq-lightweight``, ``fairseq-dynamic``: fairseq's
  ``LightweightConv1dTBC`` / ``DynamicConv1dTBC`` between the same two
  Linears, time first, as fairseq's ``lightconv`` model runs them (its
  PyTorch code: the CUDA extension is not built);
* ``attention``: multi-head self-attention with its projections (Q, K, V in
  one C -> 3C Linear, output C -> C) around
  ``torch.nn.functional.scaled_dot_product_attention``.

Op level is our public op alone on given inputs (``op-*``): what the
"time(8192) / time(2048)" goal is about.

Every case is a zero-argument callable for one mode: ``forward`` (training
mode, autograd recording), ``forward+backward`` (with a fixed output
gradient) or ``inference`` (eval mode under ``torch.inference_mode``).
Dropout is zero everywhere, so every call does the same work.
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass

LAYERS = ("lightweight", "dynamic", "talk", "fairseq-lightweight", "fairseq-dynamic", "attention")
OPS = ("op-lightweight", "op-dynamic", "op-talk")
MODES = ("forward", "forward+backward", "inference")
QUADRATIC = {"attention"}  # how an impl's cost grows with T before two points are measured


@dataclass(frozen=True)
class Shape:
    B: int = 4
    C: int = 512
    H: int = 8
    K: int = 31  # kernel width of the convolutions
    M: int = 15  # TaLK's largest offset each side: the same widest window, 2M + 1 = K


def _ours_layer(conv_type: str, shape: Shape):
    from lightconv_plugin.modules.blocks import ConvSubBlock

    args = argparse.Namespace(input_dropout=0.0, weight_softmax=True, weight_dropout=0.0, conv_edge="zeros")
    size = shape.M if conv_type == "talk" else shape.K
    # The block gained a ``side`` argument (for its error messages) while this was written.
    extra = {"side": "encoder"} if "side" in inspect.signature(ConvSubBlock).parameters else {}
    block = ConvSubBlock(shape.C, shape.C, conv_type, size, shape.H, False, False, args, **extra)
    return lambda x: block(x, None), block


class _FairseqConvLayer:
    def __init__(self, kind: str, shape: Shape):
        import torch
        from fairseq.modules import DynamicConv1dTBC, LightweightConv1dTBC

        cls = DynamicConv1dTBC if kind == "dynamic" else LightweightConv1dTBC
        self.modules = torch.nn.ModuleList([
            torch.nn.Linear(shape.C, shape.C),
            cls(shape.C, shape.K, padding_l=shape.K // 2, num_heads=shape.H, weight_softmax=True),
            torch.nn.Linear(shape.C, shape.C),
        ])  # fmt: skip

    def __call__(self, x):
        a, conv, b = self.modules
        return b(conv(a(x)))


class _Attention:
    def __init__(self, shape: Shape):
        import torch

        self.H = shape.H
        self.modules = torch.nn.ModuleList([torch.nn.Linear(shape.C, 3 * shape.C), torch.nn.Linear(shape.C, shape.C)])

    def __call__(self, x):
        import torch.nn.functional as F

        qkv, out = self.modules
        B, T, C = x.shape
        q, k, v = qkv(x).view(B, T, 3, self.H, C // self.H).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return out(y.transpose(1, 2).reshape(B, T, C))


def _op(impl: str, shape: Shape, T: int, requires_grad: bool):
    """(fn(x), extra leaf tensors) of one of our ops on fixed random mixing weights."""
    import torch

    import lightconv_kernels as lk

    B, H = shape.B, shape.H
    if impl == "op-lightweight":
        w = torch.randn(H, shape.K, requires_grad=requires_grad)
        return (lambda x: lk.lightweight_conv(x, w, shape.K // 2)), [w]
    if impl == "op-dynamic":
        w = torch.randn(B, T, H, shape.K, requires_grad=requires_grad)
        return (lambda x: lk.dynamic_conv(x, w, shape.K // 2)), [w]
    left, right = (torch.rand(B, T, H, requires_grad=requires_grad) for _ in range(2))
    return (lambda x: lk.talk_conv(x, left, right, shape.M, shape.M)), [left, right]


def build(impl: str, mode: str, T: int, shape: Shape):
    """The callable that runs ``impl`` once in ``mode`` at length T (allocates its inputs)."""
    import torch

    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    train = mode != "inference"
    leaves = []
    time_first = impl.startswith("fairseq-")
    if impl in OPS:
        fn, leaves = _op(impl, shape, T, train)
        params = []
    else:
        if impl in ("lightweight", "dynamic", "talk"):
            fn, module = _ours_layer(impl, shape)
        elif impl in ("fairseq-lightweight", "fairseq-dynamic"):
            fn = module = _FairseqConvLayer(impl.split("-")[1], shape)
            module = module.modules
        elif impl == "attention":
            fn = module = _Attention(shape)
            module = module.modules
        else:
            raise ValueError(f"impl={impl!r}: expected one of {LAYERS + OPS}")
        module.train(train)
        params = list(module.parameters())
    dims = (T, shape.B, shape.C) if time_first else (shape.B, T, shape.C)
    x = torch.randn(*dims, requires_grad=train)
    grad = torch.randn(*dims)
    if mode == "inference":
        def run():
            with torch.inference_mode():
                fn(x)
    elif mode == "forward":
        def run():
            fn(x)
    else:
        def run():
            torch.autograd.backward(fn(x), grad)
            for t in (x, *leaves, *params):
                t.grad = None
    return run
