"""The PyTorch path of lightweight/dynamic convolution against the fp64 loop.

The PyTorch path is the CPU implementation and the Triton kernels' reference,
so it is checked here on its own: outputs and every gradient, a grid of odd
shapes, every bad argument, DropConnect, and torch.compile.
"""

import pytest
import torch

from lightconv_kernels import dynamic_conv, lightweight_conv
from lightconv_kernels.conv import reference
from ref_conv_loop import conv_loop, normalized_taps


@pytest.fixture(autouse=True)
def torch_backend(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", "torch")


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-300)).item()


# (B, T, C, H, K, padding_l): odd T, T = 1, K > T, H not a power of two, odd R,
# causal, centred, left-only padding.
SHAPES = [
    (2, 9, 12, 3, 3, 1),
    (1, 1, 4, 2, 1, 0),
    (1, 1, 6, 3, 4, 3),
    (3, 5, 10, 5, 7, 6),
    (2, 13, 9, 3, 4, 0),
    (2, 11, 8, 4, 31, 15),
    (1, 17, 6, 2, 64, 63),
    (2, 8, 15, 5, 2, 1),
]
IDS = [f"B{b}-T{t}-C{c}-H{h}-K{k}-p{p}" for b, t, c, h, k, p in SHAPES]


def _inputs(B, T, C, H, K, dynamic, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=g).to(dtype).requires_grad_()
    shape = (B, T, H, K) if dynamic else (H, K)
    w = torch.randn(*shape, generator=g).to(dtype).requires_grad_()
    return x, w


def assert_fp32_matches(out, ref, x, w, x64, w64):
    """Output, then both gradients for one random output gradient, within fp32's 1e-5."""
    assert rel_err(out, ref) <= 1e-5
    grad = torch.randn_like(ref)
    out.backward(grad.float())
    ref.backward(grad)
    assert rel_err(x.grad, x64.grad) <= 1e-5
    assert rel_err(w.grad, w64.grad) <= 1e-5


def _loop(x, w, padding_l, weight_softmax, keep=None, p=0.0):
    x64 = x.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    out = conv_loop(x64, normalized_taps(w64, weight_softmax, keep, p), padding_l)
    return out, x64, w64


@pytest.mark.parametrize("dynamic", [False, True], ids=["lightweight", "dynamic"])
@pytest.mark.parametrize("weight_softmax", [True, False], ids=["softmax", "raw"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_fp32_matches_fp64_loop(shape, weight_softmax, dynamic):
    B, T, C, H, K, padding_l = shape
    op = dynamic_conv if dynamic else lightweight_conv
    x, w = _inputs(B, T, C, H, K, dynamic)
    out = op(x, w, padding_l, weight_softmax=weight_softmax)
    ref, x64, w64 = _loop(x, w, padding_l, weight_softmax)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert_fp32_matches(out, ref, x, w, x64, w64)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["lightweight", "dynamic"])
def test_low_precision_within_twice_torch_error(dtype, dynamic):
    """Our fp32 accumulation must not be worse than 2x what plain PyTorch in ``dtype`` gets."""
    B, T, C, H, K, padding_l = 2, 33, 16, 4, 7, 3
    x, w = _inputs(B, T, C, H, K, dynamic, dtype)
    out = (dynamic_conv if dynamic else lightweight_conv)(x, w, padding_l)
    assert out.dtype == dtype
    ref, _, _ = _loop(x, w, padding_l, True)

    # The same computation done by PyTorch in the low-precision dtype: taps
    # applied one shifted slice at a time, everything in ``dtype``.
    taps = torch.softmax(w.detach(), dim=-1)
    taps = taps.view(1, 1, H, K) if not dynamic else taps
    xh = x.detach().view(B, T, H, C // H)
    base = torch.zeros_like(xh)
    for k in range(K):
        s = k - padding_l
        lo, hi = max(0, -s), min(T, T - s)
        tk = taps[:, lo:hi, :, k:k + 1] if dynamic else taps[..., k:k + 1]
        base[:, lo:hi] = base[:, lo:hi] + tk * xh[:, lo + s:hi + s]
    torch_err = rel_err(base.view(B, T, C), ref)
    assert rel_err(out, ref) <= 2 * torch_err


def test_dropconnect_matches_loop_with_same_mask():
    B, T, C, H, K, padding_l, p = 2, 7, 6, 3, 5, 2, 0.3
    x, w = _inputs(B, T, C, H, K, dynamic=True)
    torch.manual_seed(123)
    out = dynamic_conv(x, w, padding_l, weight_dropout=p, training=True)
    torch.manual_seed(123)  # the op draws its seed from torch's RNG: draw it again
    seed = torch.randint(0, 2**62, (1,))
    keep = reference.dropconnect_keep((B, T, H, K), p, seed, "cpu")
    assert 0 < keep.sum() < keep.numel()
    ref, x64, w64 = _loop(x, w, padding_l, True, keep, p)
    assert_fp32_matches(out, ref, x, w, x64, w64)


def test_dropconnect_only_in_training_and_at_rate_p():
    x, w = _inputs(1, 64, 8, 2, 3, dynamic=False)
    assert torch.equal(lightweight_conv(x, w, 1, weight_dropout=0.5, training=False),
                       lightweight_conv(x, w, 1))
    keep = reference.dropconnect_keep((200, 100), 0.25, torch.tensor([7]), "cpu")
    # 20,000 Bernoulli(0.75) draws: the kept fraction is within 5 standard deviations.
    assert abs(keep.float().mean().item() - 0.75) < 5 * (0.75 * 0.25 / 20000) ** 0.5


BAD_CALLS = [
    ("x.shape", lambda x, w: lightweight_conv(x[0], w, 1)),
    ("weight.shape", lambda x, w: lightweight_conv(x, w[None], 1)),
    ("x.dtype", lambda x, w: lightweight_conv(x.double(), w, 1)),
    ("number of heads H", lambda x, w: lightweight_conv(x, torch.randn(5, 3), 1)),
    ("padding_l", lambda x, w: lightweight_conv(x, w, 3)),
    ("padding_l", lambda x, w: lightweight_conv(x, w, -1)),
    ("padding_l", lambda x, w: lightweight_conv(x, w, 1.0)),
    ("weight_dropout", lambda x, w: lightweight_conv(x, w, 1, weight_dropout=1.0)),
    ("weight_softmax", lambda x, w: lightweight_conv(x, w, 1, weight_softmax=1)),
    ("x.shape", lambda x, w: lightweight_conv(x[:, :0], w, 1)),
    ("weight.shape", lambda x, w: dynamic_conv(x, torch.randn(2, 5, 4, 3), 1)),
    ("weight.shape", lambda x, w: dynamic_conv(x, w, 1)),
    ("weight.shape=\\(2, 6, 4, 0\\)", lambda x, w: dynamic_conv(x, torch.randn(2, 6, 4, 0), 0)),
]


@pytest.mark.parametrize("name,call", BAD_CALLS, ids=[f"{i}-{n}" for i, (n, _) in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_naming_the_argument(name, call):
    x, w = torch.randn(2, 6, 8), torch.randn(4, 3)
    with pytest.raises(ValueError, match=name if "\\" in name else name.replace("(", r"\(")):
        call(x, w)


def test_bad_backend_variable(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", "cuda")
    with pytest.raises(ValueError, match="LIGHTCONV_BACKEND='cuda'"):
        lightweight_conv(torch.randn(1, 4, 4), torch.randn(2, 3), 1)


@pytest.mark.parametrize("version,ok", [("3.1.0", False), ("3.2.0", False), ("3.3.0", True),
                                        ("3.3.1+git9e2a3b", True), ("3.10.0", True)])
def test_triton_older_than_the_kernels_need_is_one_clear_error(monkeypatch, version, ok):
    """Before any Triton module is imported or kernel launched, whatever op comes first."""
    import triton

    from lightconv_kernels import backend

    monkeypatch.setattr(triton, "__version__", version)
    monkeypatch.setattr(backend, "_MODULES", {})  # as in a fresh process
    monkeypatch.setenv("LIGHTCONV_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, w = torch.randn(1, 4, 4), torch.randn(2, 3)
    if ok:
        backend.check_triton()
        return
    with pytest.raises(RuntimeError, match=rf"triton.__version__='{version}'.*need triton >= 3.3.*LIGHTCONV_BACKEND=torch"):
        lightweight_conv(x, w, 1)
    assert backend._MODULES == {}


def test_missing_triton_is_one_clear_error(monkeypatch):
    import sys

    from lightconv_kernels import backend

    monkeypatch.setitem(sys.modules, "triton", None)  # import triton raises ImportError
    monkeypatch.setattr(backend, "_MODULES", {})
    monkeypatch.setenv("LIGHTCONV_BACKEND", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(ImportError, match="need triton >= 3.3.*LIGHTCONV_BACKEND=torch"):
        dynamic_conv(torch.randn(1, 4, 4), torch.randn(1, 4, 2, 3), 1)


@pytest.mark.parametrize("group_bytes", [1, 4 << 20], ids=["one-chunk-groups", "one-group"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["lightweight", "dynamic"])
@pytest.mark.parametrize("shape", [(2, 37, 12, 3, 5, 2), (1, 29, 8, 4, 7, 6), (2, 23, 6, 2, 4, 0),
                                   (1, 41, 8, 2, 9, 4)],
                         ids=["K5-centred", "K7-causal", "K4-left0", "K9-chunk-is-K-1"])
def test_many_chunks_and_groups(shape, dynamic, group_bytes, monkeypatch):
    """Short chunks, either each in its own group (the cropped single-chunk path at
    every boundary) or all in one group (the overlap-add path across chunks). At
    K = 9 a chunk is K - 1 long, the least the overlap-add allows."""
    monkeypatch.setattr(reference, "CHUNK", 4)
    monkeypatch.setattr(reference, "GROUP_BYTES", group_bytes)
    B, T, C, H, K, padding_l = shape
    assert -(-T // reference._Plan((B, T, C), H, K, padding_l).L) >= 3
    x, w = _inputs(B, T, C, H, K, dynamic)
    out = (dynamic_conv if dynamic else lightweight_conv)(x, w, padding_l)
    ref, x64, w64 = _loop(x, w, padding_l, True)
    assert_fp32_matches(out, ref, x, w, x64, w64)


@pytest.mark.parametrize("dynamic", [False, True], ids=["lightweight", "dynamic"])
@pytest.mark.parametrize("K", [3, 31], ids=["K3", "K31"])
def test_one_chunk_up_to_twice_the_chunk_length_then_many(K, dynamic):
    """At the default sizes: a sequence of 2L positions is one chunk, one more
    position makes several; both paths agree with the loop there."""
    L = reference._Plan((1, 10**4, 8), 2, K, K // 2).L
    assert L >= max(K - 1, reference.CHUNK) and L % 8 == 0
    for T, chunks in ((2 * L, 1), (2 * L + 1, 3)):
        plan = reference._Plan((2, T, 8), 2, K, K // 2)
        assert -(-T // plan.L) == chunks
        x, w = _inputs(2, T, 8, 2, K, dynamic)
        out = (dynamic_conv if dynamic else lightweight_conv)(x, w, K // 2)
        ref, x64, w64 = _loop(x, w, K // 2, True)
        assert_fp32_matches(out, ref, x, w, x64, w64)
