"""Incremental decoding: stepping through a sequence equals the full causal op.

Tolerance: the full op (PyTorch path) is within SCAN_BLOCK * 2^-24 of exact
relative to its block-local magnitudes, and the step sums at most
max_left + 2 float32 values per state entry, so over these sequences
(max_left < SCAN_BLOCK) the two differ by at most 2 * SCAN_BLOCK * 2^-24
(norm of the difference over norm of the full op).
"""

import pytest
import torch
from ref_talk_loop import talk_loop

from lightconv_kernels import talk_conv
from lightconv_kernels.talk import reference, talk_step
from lightconv_kernels.talk.step import initial_state

TOL = 2 * reference.SCAN_BLOCK * 2.0**-24


@pytest.fixture(autouse=True)
def torch_backend(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", "torch")


def step_through(x, left, max_left):
    state, outs = None, []
    for t in range(x.shape[1]):
        out, state = talk_step(x[:, t], left[:, t], state, max_left)
        assert state.shape == (x.shape[0], x.shape[2], max_left + 2) and state.dtype == torch.float32
        outs.append(out)
    return torch.stack(outs, dim=1), state


def rel_err(a, b) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# (B, T, C, H, max_left): odd T, T = 1, max_left = 0, max_left > T, R = 1, H = 3.
SHAPES = [(2, 9, 12, 3, 3), (1, 1, 4, 2, 2), (2, 13, 6, 3, 0), (1, 20, 8, 4, 31), (2, 40, 5, 5, 7), (1, 100, 6, 3, 12)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}-T{t}-C{c}-H{h}-l{m}" for b, t, c, h, m in SHAPES])
def test_steps_equal_full_causal_op(shape):
    B, T, C, H, ml = shape
    gen = torch.Generator().manual_seed(0)
    x, left = torch.randn(B, T, C, generator=gen), torch.rand(B, T, H, generator=gen)
    stepped, _ = step_through(x, left, ml)
    assert stepped.dtype == torch.float32
    assert rel_err(stepped, talk_conv(x, left, None, ml, 0)) <= TOL


def test_integer_boundaries_and_clamping():
    """Offsets in {0, 1/2, 1} put boundaries on cells and clamp early positions at 0."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 15, 6, generator=gen)
    left = torch.randint(0, 3, (2, 15, 3), generator=gen) / 2
    stepped, _ = step_through(x, left, 6)
    assert rel_err(stepped, talk_conv(x, left, None, 6, 0)) <= TOL


def test_bfloat16_output_dtype():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 12, 8, generator=gen).bfloat16()
    left = torch.rand(2, 12, 4, generator=gen)
    stepped, state = step_through(x, left, 4)
    assert stepped.dtype == torch.bfloat16
    # Both round the same float32-accurate value once to bfloat16: at most one ulp apart.
    full = talk_conv(x, left, None, 4, 0)
    assert ((stepped.float() - full.float()).abs() <= full.float().abs() * 2**-7 + 1e-30).all()


def test_state_stays_small_over_long_decoding():
    """3000 steps of data with mean 100: entries stay window sums, the output stays float32-exact.

    A state of global float32 prefix sums would reach 3e5 and be off by about
    1e-4 relative on windows of a few positions (a 1.5e-4 worst case on this
    data); this layout must stay within TOL of the float64 loop.
    """
    gen = torch.Generator().manual_seed(4)
    B, T, C, H, ml = 1, 3000, 4, 2, 3
    x = 100 + torch.randn(B, T, C, generator=gen)
    left = torch.rand(B, T, H, generator=gen)
    stepped, state = step_through(x, left, ml)
    assert state.abs().max().item() <= (ml + 1) * x.abs().max().item() * (1 + TOL)
    ref = talk_loop(x, left, None, ml, 0)
    assert ((stepped.double() - ref).abs() / ref.abs()).max().item() <= TOL


def test_initial_state_is_none_state():
    gen = torch.Generator().manual_seed(5)
    x, left = torch.randn(2, 6, generator=gen), torch.rand(2, 3, generator=gen)
    a, sa = talk_step(x, left, None, 4)
    b, sb = talk_step(x, left, initial_state(2, 6, 4), 4)
    assert torch.equal(a, b) and torch.equal(sa, sb)


BAD = [
    (dict(x_t=torch.randn(2, 3, 6)), "x_t.shape=(2, 3, 6)"),
    (dict(offset_left_t=torch.rand(2, 4)), "number of heads H (offset_left_t.shape[1])=4"),
    (dict(offset_left_t=torch.rand(3, 3)), "offset_left_t.shape=(3, 3)"),
    (dict(state=torch.zeros(2, 6, 5)), "state.shape=(2, 6, 5)"),
    (dict(state=torch.zeros(2, 6, 6).double()), "state=torch.float64"),
    (dict(max_left=-1), "max_left=-1"),
]


@pytest.mark.parametrize("changes, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments(changes, message):
    kwargs = dict(x_t=torch.randn(2, 6), offset_left_t=torch.rand(2, 3), state=None, max_left=4)
    kwargs.update(changes)
    with pytest.raises(ValueError) as info:
        talk_step(**kwargs)
    assert message in str(info.value)
