"""The ``edge`` rules of lightweight/dynamic conv against an fp64 loop, on every backend.

``edge_conv_loop`` (tests/ref_conv_loop.py) applies each rule as it is stated,
one (b, t, h) at a time from the logits; the ops compute the rules by
rewriting the arguments of the ``zeros`` op. Both backends run: the PyTorch
path, and the Triton kernels (under the interpreter without a GPU) with every
buffer they allocate poisoned with NaN. Outputs and both gradients; float32
within 1e-5 relative, float16/bfloat16 within twice the error of the same
computation written in plain PyTorch in that dtype.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from ref_conv_loop import edge_conv_loop

import lightconv_kernels as lk
from lightconv_kernels.conv import reference, triton_impl

FP32_TOL = 1e-5
OPS = {"light": lk.lightweight_conv, "dynamic": lk.dynamic_conv}
EDGES = ["zeros", "renorm", "fairseq"]

# (B, T, C, H, K, padding_l)
SHAPES = {
    "causal-K7>T5": (2, 5, 6, 3, 7, 6),
    "causal-K4-T9": (2, 9, 8, 2, 4, 3),
    "centred-K7>T5": (2, 5, 6, 2, 7, 3),
    "centred-K3-T8": (2, 8, 9, 3, 3, 1),
    "left-K4-T6": (2, 6, 4, 2, 4, 0),
    "causal-T1": (2, 1, 4, 2, 3, 2),
}


def _valid(kind, B, T):
    """None, or row 0 left-padded by 2 and row 1 right-padded by 1 (as far as T allows)."""
    if kind == "none":
        return None
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[0, : min(2, T - 1)] = False
    valid[1, T - min(1, T - 1):] = False
    return valid


@pytest.fixture(params=["torch", "triton"])
def backend(request, monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", request.param)
    if request.param == "triton":
        monkeypatch.setattr(triton_impl, "empty",
                            lambda shape, dtype, device: torch.full(shape, float("nan"), dtype=dtype, device=device))
    torch.manual_seed(0)
    return request.param


def _inputs(op, B, T, C, H, K, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=gen).to(dtype)
    w = torch.randn(*((H, K) if op == "light" else (B, T, H, K)), generator=gen).to(dtype)
    g = torch.randn(B, T, C, generator=gen).to(dtype)
    return x, w, g


def _ours(op, x, w, g, padding_l, **kw):
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    out = OPS[op](x, w, padding_l, **kw)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), g)
    return out.detach(), grad_x, grad_w


def _loop(x, w, g, padding_l, edge, valid, **kw):
    x = x.detach().double().requires_grad_()
    w = w.detach().double().requires_grad_()
    out = edge_conv_loop(x, w, padding_l, edge, valid, **kw)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), g.double(), allow_unused=True)
    return out.detach(), grad_x, (torch.zeros_like(w) if grad_w is None else grad_w)


def _rel(a, ref):
    diff, scale = (a.double() - ref.double()).norm().item(), ref.double().norm().item()
    return diff / scale if scale > 0 else diff


def _assert_close(got, ref, tol):
    for name, a, r in zip(("out", "grad_x", "grad_w"), got, ref):
        err = _rel(a, r)
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol:.1e}"


@pytest.mark.parametrize("valid_kind", ["none", "padded"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_fp32_matches_fp64_loop(backend, op, edge, shape, valid_kind):
    B, T, C, H, K, padding_l = shape
    x, w, g = _inputs(op, B, T, C, H, K)
    valid = _valid(valid_kind, B, T)
    got = _ours(op, x, w, g, padding_l, edge=edge, valid=valid)
    assert got[0].dtype == torch.float32 and not got[0].isnan().any()
    _assert_close(got, _loop(x, w, g, padding_l, edge, valid), FP32_TOL)


@pytest.mark.parametrize("edge", EDGES)
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_dropconnect_after_the_edge_rule(backend, monkeypatch, op, edge):
    """DropConnect acts on the taps the rule produced; the mask is the op's own."""
    B, T, C, H, K, padding_l, p = 2, 5, 6, 3, 7, 6, 0.3
    x, w, g = _inputs(op, B, T, C, H, K)
    impl = triton_impl if backend == "triton" else reference
    calls = []
    forward = impl.forward

    def spy(x_, w_, pad, softmax, dropout_p, seed, save_stats):
        calls.append((tuple(w_.shape), seed))
        return forward(x_, w_, pad, softmax, dropout_p, seed, save_stats)

    monkeypatch.setattr(impl, "forward", spy)
    got = _ours(op, x, w, g, padding_l, edge=edge, weight_dropout=p, training=True)
    shape, seed = calls[0]
    if backend == "triton":
        keep = triton_impl.dropconnect_keep_mask(seed, shape, p)
    else:
        keep = reference.dropconnect_keep(shape, p, seed, "cpu")
    assert 0 < keep.sum() < keep.numel()
    _assert_close(got, _loop(x, w, g, padding_l, edge, None, keep=keep, dropout_p=p), FP32_TOL)


def _renormed_taps_in_dtype(w, inside):
    """The renorm taps computed by plain PyTorch in w's dtype: softmax over the inside taps."""
    logits = w.unsqueeze(0).unsqueeze(0) if w.dim() == 2 else w  # (B|1, T|1, H, K)
    return torch.softmax(logits.masked_fill(~inside.unsqueeze(2), float("-inf")), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_renorm_low_precision_within_twice_torch_error(backend, op, dtype):
    B, T, C, H, K, padding_l = 2, 17, 24, 3, 7, 6
    x, w, g = _inputs(op, B, T, C, H, K, dtype)
    got = _ours(op, x, w, g, padding_l, edge="renorm")
    ref = _loop(x, w, g, padding_l, "renorm", None)

    xb, wb = x.clone().requires_grad_(), w.clone().requires_grad_()
    src = torch.arange(T)[:, None] + torch.arange(K)[None, :] - padding_l
    taps = _renormed_taps_in_dtype(wb, ((src >= 0) & (src < T)).unsqueeze(0))
    padded = F.pad(xb.view(B, T, H, C // H), (0, 0, 0, 0, padding_l, K - 1 - padding_l))
    base = padded[:, 0:T] * taps[..., 0:1]
    for k in range(1, K):
        base = base + padded[:, k:k + T] * taps[..., k:k + 1]
    base = base.view(B, T, C)
    baseline = (base.detach(), *torch.autograd.grad(base, (xb, wb), g))
    for name, a, b, r in zip(("out", "grad_x", "grad_w"), got, baseline, ref):
        assert a.dtype == dtype
        err, base_err = _rel(a, r), _rel(b, r)
        assert base_err > 0
        assert err <= 2 * base_err, f"{name}: {err:.2e} > 2 x torch {dtype} error {base_err:.2e}"


def test_fairseq_equals_zeros_for_lightweight(backend):
    """fairseq's LightweightConv1dTBC takes the softmax before its short-batch cut."""
    x, w, _ = _inputs("light", 2, 4, 6, 3, 7)
    assert torch.equal(lk.lightweight_conv(x, w, 6, edge="fairseq"), lk.lightweight_conv(x, w, 6))


def test_renorm_equals_zeros_where_every_tap_is_inside(backend):
    B, T, C, H, K, padding_l = 1, 12, 6, 3, 5, 2
    for op in OPS:
        x, w, _ = _inputs(op, B, T, C, H, K)
        a = OPS[op](x, w, padding_l, edge="renorm")
        b = OPS[op](x, w, padding_l)
        inner = slice(padding_l, T - (K - 1 - padding_l))
        assert _rel(a[:, inner], b[:, inner]) <= FP32_TOL
        assert _rel(a[:, :padding_l], b[:, :padding_l]) > 1e-3  # the edges do differ


BAD = [
    ("edge='ones'", dict(edge="ones")),
    ("edge='renorm'.*weight_softmax=True", dict(edge="renorm", weight_softmax=False)),
    ("valid.shape", dict(valid=torch.ones(2, 5, dtype=torch.bool))),
    ("valid=torch.float32", dict(valid=torch.ones(2, 6))),
]


@pytest.mark.parametrize("match,kw", BAD, ids=[m for m, _ in BAD])
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_bad_edge_arguments(op, match, kw):
    x, w, _ = _inputs(op, 2, 6, 4, 2, 3)
    with pytest.raises(ValueError, match=match):
        OPS[op](x, w, 1, **kw)
