"""The Triton kernels of TaLK against the float64 loop reference.

Without a GPU they run under the Triton interpreter (tests/conftest.py), so
shapes are tiny. Every buffer the launchers allocate is poisoned first (NaN,
or an out-of-range key for the integer boundary keys), so an element a
kernel forgets to write fails the comparison. Outputs and all gradients are
compared; tolerances are those of test_talk_reference.py (float32: 1e-5 in
norm; float16/bfloat16: within 2x plain PyTorch in that dtype and within one
rounding to it).
"""

from __future__ import annotations

import pytest
import torch
import triton
from ref_talk_loop import loop_with_grads, talk_in_dtype, talk_loop, with_grads
from test_talk_reference import assert_all_close, assert_low_precision, make_inputs

from lightconv_kernels import talk_conv, triton_common
from lightconv_kernels.talk import triton_bwd, triton_fwd, triton_impl

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _poisoned(shape, dtype, device):
    fill = float("nan") if dtype.is_floating_point else torch.iinfo(dtype).max
    return torch.full(shape, fill, dtype=dtype, device=device)


@pytest.fixture(autouse=True)
def triton_backend(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", "triton")
    monkeypatch.setattr(triton_impl, "empty", _poisoned)


def inputs(shape, dtype=torch.float32, seed=0, offsets=None):
    B, T, C, H, ml, mr, causal = shape
    return tuple(None if t is None else t.to(DEVICE) for t in make_inputs(B, T, C, H, causal, dtype, seed, offsets))


def check_fp32(shape, seed=0, offsets=None):
    ml, mr = shape[4:6]
    x, left, right, grad = inputs(shape, seed=seed, offsets=offsets)
    got = with_grads(talk_conv, x, left, right, ml, mr, grad)
    assert got[0].dtype == torch.float32 and got[0].device == x.device
    assert_all_close(got, loop_with_grads(x, left, right, ml, mr, grad))


# (B, T, C, H, max_left, max_right, causal)
CASES = [
    (2, 9, 12, 3, 3, 2, False),  # odd T, H = 3
    (1, 1, 4, 2, 2, 0, True),  # T = 1, causal
    (1, 1, 6, 3, 2, 3, False),  # T = 1, two-sided: everything clamped
    (2, 13, 9, 3, 4, 0, True),  # R = 3
    (1, 8, 4, 2, 20, 7, False),  # max offsets larger than T
    (1, 70, 6, 2, 5, 3, False),  # two scan blocks, several tiles of positions and cells
    (1, 24, 80, 1, 6, 6, False),  # R = 80: several channel blocks of one head
]
IDS = [f"B{b}-T{t}-C{c}-H{h}-l{ml}-r{mr}{'-causal' if cs else ''}" for b, t, c, h, ml, mr, cs in CASES]


@pytest.mark.parametrize("shape", CASES, ids=IDS)
def test_fp32_matches_float64_reference(shape):
    check_fp32(shape)


def test_kink_conventions():
    """Boundaries exactly on integers (see test_talk_reference.test_kink_conventions)."""
    gen = torch.Generator().manual_seed(1)
    check_fp32((2, 12, 6, 3, 4, 2, False), offsets=lambda: torch.randint(0, 3, (2, 12, 3), generator=gen) / 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_low_precision(dtype):
    shape = (2, 16, 24, 3, 5, 3, False)
    x, left, right, grad = inputs(shape, dtype)
    got = with_grads(talk_conv, x, left, right, 5, 3, grad)
    baseline = with_grads(talk_in_dtype, x, left, right, 5, 3, grad)
    assert_low_precision(got, baseline, loop_with_grads(x, left, right, 5, 3, grad), dtype)


N_CONFIGS = max(
    len(c) for c in (triton_fwd.SCAN_CONFIGS, triton_fwd.FWD_CONFIGS, triton_bwd.OFFSETS_CONFIGS, triton_bwd.GRAD_X_CONFIGS)
)


@pytest.mark.parametrize("config", range(N_CONFIGS), ids=lambda i: f"config{i}")
def test_every_autotune_config(monkeypatch, config):
    """Each configuration on a shape with several tiles in every dimension.

    T = 140 spans three scan blocks and several position/cell tiles of every
    BLOCK_T; C = 192 in 3 heads of 64 spans several channel blocks; max_left
    of 40 gives cells with many boundaries (several BLOCK_S chunks).
    """
    monkeypatch.setattr(triton_common, "INTERPRET_CONFIG", config)
    check_fp32((1, 140, 192, 3, 40, 9, False), seed=config)


def test_long_sequence_precision(monkeypatch):
    """As in test_talk_reference: T = 10,000, large mean, every output within 1e-4.

    Each output is computed independently of the tile it is in, so a tile of
    2048 positions (fast under the interpreter) gives the same numbers as the
    GPU configurations.
    """
    if not torch.cuda.is_available():
        big_tile = triton.Config({"BLOCK_T": 2048, "BLOCK_C": 64}, num_warps=4, num_stages=2)
        monkeypatch.setattr(triton_fwd.talk_fwd_kernel, "configs", [big_tile])
    gen = torch.Generator().manual_seed(0)
    B, T, C, H, ml, mr = 1, 10_000, 2, 1, 2, 1
    x = 100 + torch.randn(B, T, C, generator=gen)
    left, right = torch.rand(B, T, H, generator=gen), torch.rand(B, T, H, generator=gen)
    ref = talk_loop(x, left, right, ml, mr)
    out = talk_conv(x.to(DEVICE), left.to(DEVICE), right.to(DEVICE), ml, mr).cpu()
    assert ((out.double() - ref).abs() / ref.abs()).max().item() <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the interpreter is deterministic by construction")
def test_backward_is_bitwise_reproducible():
    shape = (4, 2048, 1024, 16, 63, 63, False)
    x, left, right, grad = inputs(shape, torch.bfloat16)
    first = with_grads(talk_conv, x, left, right, 63, 63, grad)
    second = with_grads(talk_conv, x, left, right, 63, 63, grad)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
