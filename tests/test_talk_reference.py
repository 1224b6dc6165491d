"""The PyTorch path of TaLK convolution against the float64 loop.

Outputs and all three gradients over a grid of odd shapes, the kink
conventions, the plain-window-sum property of integer offsets, float32
precision at T = 10,000, low precision dtypes, the custom-op registration,
and every bad argument; then the same across many chunks (the path's
CHUNK and SCAN_BLOCK made small), with offsets outside [0, 1] and positions
no window reaches.

Tolerance: the path sums at most SCAN_BLOCK = 64 float32 terms before a
float64 carry takes over, so its error is about 64 * 2^-24 = 3.8e-6 of the
magnitudes involved; 1e-5 (norm of the difference over norm of the
reference) is that bound with the margin the random data needs, and the
same figure the Triton kernels are held to.
"""

import pytest
import torch
from ref_talk_loop import loop_with_grads, talk_in_dtype, talk_loop, with_grads

from lightconv_kernels import talk_conv
from lightconv_kernels.talk import op, reference

FP32_TOL = 1e-5
NAMES = ("out", "grad_x", "grad_left", "grad_right")


@pytest.fixture(autouse=True)
def torch_backend(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", "torch")


def rel_err(a, b) -> float:
    diff = (a.double() - b.double()).norm().item()
    scale = b.double().norm().item()
    # A zero reference (offsets that are clamped everywhere) must be met exactly.
    return diff / scale if scale > 0 else diff


def make_inputs(B, T, C, H, causal, dtype=torch.float32, seed=0, offsets=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, C, generator=gen).to(dtype)
    draw = offsets or (lambda: torch.rand(B, T, H, generator=gen))
    left = draw().to(dtype)
    right = None if causal else draw().to(dtype)
    grad = torch.randn(B, T, C, generator=gen).to(dtype)  # the loop gets the same rounded values
    return x, left, right, grad


def assert_all_close(got, ref, tol=FP32_TOL):
    for name, a, r in zip(NAMES, got, ref):
        if r is None:
            assert a is None, name
            continue
        err = rel_err(a, r)
        assert err <= tol, f"{name}: relative error {err:.2e} > {tol}"


# (B, T, C, H, max_left, max_right, causal)
SHAPES = [
    (2, 9, 12, 3, 3, 2, False),  # odd T, H = 3 not a power of two
    (1, 1, 4, 2, 2, 0, True),  # T = 1, B = 1, causal
    (1, 1, 6, 3, 2, 3, False),  # T = 1, two-sided: everything clamped
    (3, 5, 10, 5, 7, 9, False),  # max offsets larger than T
    (2, 13, 9, 3, 4, 0, True),  # R = 3
    (1, 8, 4, 2, 20, 0, True),  # causal, max_left > T
    (2, 70, 8, 4, 5, 3, False),  # two scan blocks
    (1, 150, 6, 2, 100, 40, False),  # three scan blocks, windows across blocks
    (2, 17, 6, 6, 0, 0, False),  # R = 1, zero max offsets: out = x
    (1, 20, 4, 1, 0, 5, False),  # H = 1, right side only
]
IDS = [f"B{b}-T{t}-C{c}-H{h}-l{ml}-r{mr}{'-causal' if cs else ''}" for b, t, c, h, ml, mr, cs in SHAPES]


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_fp32_matches_fp64_loop(shape):
    B, T, C, H, ml, mr, causal = shape
    x, left, right, grad = make_inputs(B, T, C, H, causal)
    got = with_grads(talk_conv, x, left, right, ml, mr, grad)
    assert got[0].dtype == torch.float32 and got[0].shape == x.shape
    assert_all_close(got, loop_with_grads(x, left, right, ml, mr, grad))


@pytest.mark.parametrize("causal", [False, True], ids=["two-sided", "causal"])
def test_kink_conventions(causal):
    """Offsets in {0, 1/2, 1} with even max offsets put every boundary on an integer.

    There the gradient follows the documented conventions (slope of P~ from the
    right, x[T-1] at a = T; clamp gradient on the closed interval); the loop
    encodes the same ones by autograd, so the gradients must agree exactly
    up to rounding, including boundaries clamped exactly at 0 and T - 1.
    """
    B, T, C, H, ml, mr = 2, 12, 6, 3, 4, 2
    gen = torch.Generator().manual_seed(1)

    def offsets():
        return torch.randint(0, 3, (B, T, H), generator=gen) / 2

    x, left, right, grad = make_inputs(B, T, C, H, causal, offsets=offsets)
    mr = 0 if causal else mr
    assert_all_close(with_grads(talk_conv, x, left, right, ml, mr, grad), loop_with_grads(x, left, right, ml, mr, grad))


@pytest.mark.parametrize("seed", range(4))
def test_integer_offsets_give_plain_window_sum(seed):
    gen = torch.Generator().manual_seed(seed)
    B, T, C, H = 2, int(torch.randint(1, 40, (1,), generator=gen)), 6, 3
    ml, mr = (int(v) for v in torch.randint(0, 12, (2,), generator=gen))
    x = torch.randn(B, T, C, generator=gen)
    left = torch.randint(0, 2, (B, T, H), generator=gen).float()
    right = torch.randint(0, 2, (B, T, H), generator=gen).float()
    out = talk_conv(x, left, right, ml, mr)
    expected = torch.empty(B, T, C, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            for h in range(H):
                lo = max(t - int(left[b, t, h]) * ml, 0)
                hi = min(t + int(right[b, t, h]) * mr, T - 1)
                cols = slice(h * 2, h * 2 + 2)
                expected[b, t, cols] = x[b, lo : hi + 1, cols].double().sum(0) / (ml + mr + 1)
    assert rel_err(out, expected) <= FP32_TOL


def test_long_sequence_precision(monkeypatch):
    """T = 10,000 in float32 with a large mean: every output within 1e-4 of float64.

    Short windows (at most 4 positions) under prefix sums of up to 1e6 are
    where a global float32 prefix loses digits; the same data through one
    single block (a global prefix) must fail the bound, else the data could
    not tell the difference. In 40 chunks of 256 positions, whose float64
    carry runs on from chunk to chunk, the bound must hold as in one.
    """
    gen = torch.Generator().manual_seed(0)
    B, T, C, H, ml, mr = 1, 10_000, 4, 2, 2, 1
    x = 100 + torch.randn(B, T, C, generator=gen)
    left, right = torch.rand(B, T, H, generator=gen), torch.rand(B, T, H, generator=gen)
    ref = talk_loop(x, left, right, ml, mr)

    def worst(out):
        return ((out.double() - ref).abs() / ref.abs()).max().item()

    assert worst(talk_conv(x, left, right, ml, mr)) <= 1e-4
    monkeypatch.setattr(reference, "CHUNK", 256 * C)
    assert reference.chunk_shape(B, T, C) == (1, 256)
    assert worst(talk_conv(x, left, right, ml, mr)) <= 1e-4
    monkeypatch.setattr(reference, "SCAN_BLOCK", 2 * T)  # one chunk again: chunks are whole blocks
    assert worst(talk_conv(x, left, right, ml, mr)) > 1e-4


def assert_low_precision(got, baseline, ref, dtype):
    """Within 2x of plain PyTorch in ``dtype``, and within one rounding to ``dtype``.

    Every result is a float32-accurate value rounded once to ``dtype``, so its
    error is at most the unit roundoff u (2^-11 for float16, 2^-8 for
    bfloat16) plus the float32 tolerance: a far stricter bound than the first.
    """
    u = torch.finfo(dtype).eps / 2
    for name, a, base, r in zip(NAMES, got, baseline, ref):
        assert a.dtype == dtype, name
        err, base_err = rel_err(a, r), rel_err(base, r)
        assert base_err > 0, f"{name}: the {dtype} baseline is exact, so it cannot bound the error"
        assert err <= 2 * base_err, f"{name}: relative error {err:.2e} > 2 x torch {dtype} error {base_err:.2e}"
        assert err <= u + FP32_TOL, f"{name}: relative error {err:.2e} > one rounding to {dtype} ({u:.2e})"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_low_precision_within_twice_torch_error(dtype):
    B, T, C, H, ml, mr = 2, 24, 16, 4, 5, 3
    x, left, right, grad = make_inputs(B, T, C, H, False, dtype)
    got = with_grads(talk_conv, x, left, right, ml, mr, grad)
    baseline = with_grads(talk_in_dtype, x, left, right, ml, mr, grad)
    assert_low_precision(got, baseline, loop_with_grads(x, left, right, ml, mr, grad), dtype)


def test_mixed_dtypes():
    """bfloat16 activations with float32 offsets: each gradient in its input's dtype."""
    x, left, right, grad = make_inputs(2, 9, 12, 3, False, torch.bfloat16)
    left, right = left.float(), right.float()
    got = with_grads(talk_conv, x, left, right, 3, 2, grad)
    assert [t.dtype for t in got] == [torch.bfloat16, torch.bfloat16, torch.float32, torch.float32]
    ref = loop_with_grads(x, left, right, 3, 2, grad)
    # The offset gradients are float32 throughout (only the bfloat16 inputs are rounded, which the loop shares).
    assert rel_err(got[2], ref[2]) <= FP32_TOL and rel_err(got[3], ref[3]) <= FP32_TOL


@pytest.mark.parametrize("causal", [False, True], ids=["two-sided", "causal"])
def test_custom_op_registration(causal):
    x, left, right, _ = make_inputs(2, 7, 6, 3, causal)
    args = (x.requires_grad_(), left.requires_grad_(), None if causal else right.requires_grad_(), 3, 0 if causal else 2)
    torch.library.opcheck(op._talk, args)


def _bad(**changes):
    base = dict(
        x=torch.randn(2, 5, 6),
        offset_left=torch.rand(2, 5, 3),
        offset_right=torch.rand(2, 5, 3),
        max_left=2,
        max_right=2,
    )
    base.update(changes)
    return base


BAD = [
    (_bad(x=[1.0]), "x='list'"),
    (_bad(x=torch.randn(5, 6)), "x.shape=(5, 6)"),
    (_bad(x=torch.randn(2, 5, 6).long()), "x.dtype=torch.int64"),
    (_bad(x=torch.randn(2, 0, 6), offset_left=torch.rand(2, 0, 3), offset_right=None, max_right=0), "x.shape=(2, 0, 6)"),
    (_bad(offset_left=torch.rand(2, 5)), "offset_left.shape=(2, 5)"),
    (_bad(offset_left=torch.rand(2, 4, 3)), "offset_left.shape=(2, 4, 3)"),
    (_bad(offset_left=torch.rand(2, 5, 4)), "number of heads H (offset_left.shape[2])=4"),
    (_bad(offset_left=torch.rand(2, 5, 3).double()), "offset_left.dtype=torch.float64"),
    (_bad(offset_right=torch.rand(2, 5, 2)), "offset_right.shape=(2, 5, 2)"),
    (_bad(offset_right=torch.rand(1, 5, 3)), "offset_right.shape=(1, 5, 3)"),
    (_bad(offset_right=None), "max_right=2"),
    (_bad(max_left=-1), "max_left=-1"),
    (_bad(max_left=2.0), "max_left=2.0"),
    (_bad(max_right=True), "max_right=True"),
    (_bad(offset_left=torch.rand(2, 5, 3, device="meta")), "device="),
]


@pytest.mark.parametrize("kwargs, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_name_argument_and_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        talk_conv(**kwargs)
    assert message in str(info.value)


# Chunking: the path walks (batch rows, positions) chunks of
# reference.chunk_shape, at least 4 scan blocks of positions each, so a small
# SCAN_BLOCK and CHUNK make chunks of a few positions. The tolerance stays
# FP32_TOL: a smaller SCAN_BLOCK only shortens the float32 sums it bounds.
# (B, T, C, H, max_left, max_right, causal, SCAN_BLOCK, chunk (positions, batch rows))
CHUNKED = [
    (3, 45, 12, 3, 20, 13, False, 2, (8, 1)),  # 6 chunks, the last short; windows span several chunks
    (2, 37, 6, 2, 11, 0, True, 4, (16, 1)),  # causal, T not a multiple of the chunk
    (2, 70, 8, 4, 9, 30, False, 4, (16, 2)),  # both batch rows in each chunk; right reach > chunk
    (2, 600, 4, 2, 300, 170, False, 64, (256, 1)),  # default blocks: 3 chunks, windows across blocks and chunks
]
CHUNKED_IDS = [
    f"B{b}-T{t}-l{ml}-r{mr}{'-causal' if cs else ''}-L{L}-chunk{m}x{rows}"
    for b, t, _, _, ml, mr, cs, L, (m, rows) in CHUNKED
]


def force_chunks(monkeypatch, block, positions, rows, B, T, C):
    monkeypatch.setattr(reference, "SCAN_BLOCK", block)
    monkeypatch.setattr(reference, "CHUNK", positions * rows * C)
    assert reference.chunk_shape(B, T, C) == (rows, positions)


@pytest.mark.parametrize("shape", CHUNKED, ids=CHUNKED_IDS)
def test_chunks_match_fp64_loop(shape, monkeypatch):
    B, T, C, H, ml, mr, causal, block, (positions, rows) = shape
    force_chunks(monkeypatch, block, positions, rows, B, T, C)
    x, left, right, grad = make_inputs(B, T, C, H, causal, seed=3)
    assert_all_close(with_grads(talk_conv, x, left, right, ml, mr, grad), loop_with_grads(x, left, right, ml, mr, grad))


# (B, T, C, H, max_left, max_right, SCAN_BLOCK, chunk positions): windows over many
# blocks (their sums from two float64 carries), and over few (from a table of
# carry differences, here with starts a block after ends).
OUTSIDE = [(2, 41, 6, 3, 5, 4, 2, 8), (2, 300, 4, 2, 40, 30, 64, 256)]


@pytest.mark.parametrize("shape", OUTSIDE, ids=["many-blocks", "few-blocks"])
@pytest.mark.parametrize("causal", [False, True], ids=["two-sided", "causal"])
def test_chunks_with_offsets_outside_unit_interval(shape, causal, monkeypatch):
    """Offsets in [-1, 2): starts after ends, windows beyond max_left/max_right.

    A chunk's range of positions is taken from its window ends, not from
    max_left/max_right, so these reach past the halo the maxima imply and
    stay exact.
    """
    B, T, C, H, ml, mr, block, positions = shape
    mr = 0 if causal else mr
    force_chunks(monkeypatch, block, positions, 1, B, T, C)
    gen = torch.Generator().manual_seed(5)
    x, left, right, grad = make_inputs(B, T, C, H, causal, offsets=lambda: 3 * torch.rand(B, T, H, generator=gen) - 1)
    assert_all_close(with_grads(talk_conv, x, left, right, ml, mr, grad), loop_with_grads(x, left, right, ml, mr, grad))


def test_chunks_positions_no_window_reaches(monkeypatch):
    """Positions no window touches get a zero gradient, not what the memory held.

    Chunks of 8 positions; windows pushed right (offsets -1 left, +1 right:
    [t + 12, t + 7), negative) or pulled left (+1, -1: [t - 12, t - 5)) or
    one position long (0, 0). The first chunk's windows leave the start
    untouched, the third's begin after all the earlier ones end (a gap, that
    the last chunk's windows partly fill later), and the end stays
    untouched. The allocations are filled with NaN so that a position left
    unwritten shows.
    """
    B, T, C, H, ml, mr = 2, 40, 6, 3, 12, 6
    force_chunks(monkeypatch, 2, 8, 1, B, T, C)
    shift = torch.tensor([-1.0, 0.0, -1.0, 0.0, 1.0]).repeat_interleave(8).view(1, T, 1).expand(B, T, H)
    left, right = shift.contiguous(), -shift.contiguous()
    x, _, _, grad = make_inputs(B, T, C, H, False)
    ref = loop_with_grads(x, left, right, ml, mr, grad)
    untouched = [slice(0, 7), slice(19, 20), slice(35, 40)]
    assert all(ref[1][:, u].abs().max() < 1e-12 for u in untouched)

    def poisoned(make):
        return lambda *args, **kwargs: make(*args, **kwargs).fill_(float("nan"))

    monkeypatch.setattr(torch, "empty", poisoned(torch.empty))
    monkeypatch.setattr(torch, "empty_like", poisoned(torch.empty_like))
    got = with_grads(talk_conv, x, left, right, ml, mr, grad)
    assert all((got[1][:, u] == 0).all() for u in untouched)
    assert_all_close(got, ref)


@pytest.mark.parametrize("causal", [False, True], ids=["two-sided", "causal"])
def test_chunks_kink_conventions(causal, monkeypatch):
    """test_kink_conventions across chunks: boundaries on integers, clamped at 0 and T - 1."""
    B, T, C, H, ml, mr = 2, 30, 6, 3, 8, 0 if causal else 6
    force_chunks(monkeypatch, 2, 8, 1, B, T, C)
    gen = torch.Generator().manual_seed(6)

    def offsets():
        return torch.randint(0, 3, (B, T, H), generator=gen) / 2

    x, left, right, grad = make_inputs(B, T, C, H, causal, offsets=offsets)
    assert_all_close(with_grads(talk_conv, x, left, right, ml, mr, grad), loop_with_grads(x, left, right, ml, mr, grad))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_chunks_low_precision(dtype, monkeypatch):
    B, T, C, H, ml, mr = 2, 40, 16, 4, 9, 5
    force_chunks(monkeypatch, 4, 16, 1, B, T, C)
    x, left, right, grad = make_inputs(B, T, C, H, False, dtype)
    got = with_grads(talk_conv, x, left, right, ml, mr, grad)
    baseline = with_grads(talk_in_dtype, x, left, right, ml, mr, grad)
    assert_low_precision(got, baseline, loop_with_grads(x, left, right, ml, mr, grad), dtype)


def test_chunk_shape():
    """About CHUNK elements per chunk, in whole scan blocks, at least 4 of them (or all of T)."""
    L = reference.SCAN_BLOCK
    assert reference.chunk_shape(4, 8192, 512) == (4, reference.CHUNK // (4 * 512))
    assert reference.chunk_shape(1, 8192, 512) == (1, reference.CHUNK // 512)
    for B, T, C in [(1, 100_000, 64), (4, 8192, 512), (10, 10_000, 1024), (64, 30, 512), (256, 5000, 1024), (3, 7, 5)]:
        rows, positions = reference.chunk_shape(B, T, C)
        assert 1 <= rows <= B and 1 <= positions <= T
        assert positions == T or (positions % L == 0 and positions >= 4 * L)
        assert rows * positions * C <= max(reference.CHUNK, 4 * L * C)


@pytest.mark.parametrize("L", [64, 16, 72, 12], ids=["L64", "L16", "L72-runs-scanned-by-cumsum", "L12-not-runs-of-8"])
def test_block_scan_matches_cumsum(L):
    """The runs-of-8 scan (used above 2^16 elements, so not by the small tests above).

    Bound: a sum of n float32 terms in any order is within (n - 1) * 2^-24
    times the sum of their magnitudes of exact.
    """
    gen = torch.Generator().manual_seed(7)
    v = 10 + torch.randn(2, 5, L, 1000, generator=gen)
    assert v.numel() > 2**16
    got = reference.block_scan_(v.clone())
    exact = v.double().cumsum(2)
    bound = (L - 1) * 2.0**-24 * v.double().abs().cumsum(2)
    assert ((got.double() - exact).abs() <= bound).all()
