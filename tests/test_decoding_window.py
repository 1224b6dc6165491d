"""The K-tap mixers' decoding step: its window contraction, both ways, against a loop.

``taps_over_window`` sums a step's taps over the time-major window one way
on CPU (a matmul per head) and another on a GPU (broadcast multiply and
sum). The model tests decode on CPU only, so the GPU's way is checked here,
on CPU, against an fp64 loop and through a whole model's decoding.
"""

import pytest
import torch

import lightconv_plugin.modules.conv_mixers as cm
from lightconv_plugin.modules.conv_mixers import DynamicConvMixer, taps_over_window

# (B, width, H, R): one of everything, a window of 1, odd heads and widths, the IWSLT decoder's widest.
SHAPES = [(1, 1, 1, 1), (3, 5, 2, 4), (2, 1, 3, 5), (4, 7, 3, 5), (2, 31, 4, 3)]


# Sums are in float32 and rounded once to the window's dtype: within its unit roundoff of the exact sum.
ROUNDOFF = {torch.float32: 1e-5, torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}


def _loop(window, taps):
    B, width, C = window.shape
    H = taps.shape[1]
    out = torch.zeros(B, 1, C, dtype=torch.float64)
    for b in range(B):
        for c in range(C):
            h = c // (C // H)
            for j in range(width):
                out[b, 0, c] += taps[b, h, j].double() * window[b, j, c].double()
    return out


@pytest.mark.parametrize("dtype", list(ROUNDOFF), ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("per_head", [True, False], ids=["per-head-matmul", "multiply-sum"])
@pytest.mark.parametrize("B,width,H,R", SHAPES)
def test_taps_over_window_is_the_loop(B, width, H, R, per_head, dtype):
    g = torch.Generator().manual_seed(B * 1000 + width * 10 + H)
    window = torch.randn(B, width, H * R, generator=g).to(dtype)  # fp16/bf16: as --fp16/--bf16 decode
    taps = torch.softmax(torch.randn(B, H, width, generator=g), -1)
    out = taps_over_window(window, taps, per_head)
    assert out.shape == (B, 1, H * R) and out.dtype == dtype
    torch.testing.assert_close(out.double(), _loop(window, taps), rtol=ROUNDOFF[dtype], atol=1e-6)


@pytest.mark.parametrize("per_head", [True, False], ids=["per-head-matmul", "multiply-sum"])
def test_strided_window_slice_as_the_step_keeps_it(per_head):
    # The state is the tail of the last window, a view with the window's row stride.
    g = torch.Generator().manual_seed(0)
    full = torch.randn(3, 9, 12, generator=g)
    window = full[:, 2:]
    taps = torch.softmax(torch.randn(3, 4, 7, generator=g), -1)
    torch.testing.assert_close(taps_over_window(window, taps, per_head).double(), _loop(window, taps),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edge", ["zeros", "renorm"])
def test_gpu_way_decodes_what_the_full_forward_computes(monkeypatch, edge):
    # Force the multiply-sum way into the step, as on a GPU.
    monkeypatch.setattr(cm, "taps_over_window", lambda w, t, per_head: taps_over_window(w, t, False))
    torch.manual_seed(0)
    mixer = DynamicConvMixer(12, 3, 5, causal=True, edge=edge).eval()
    x = torch.randn(2, 8, 12)
    pad = torch.zeros(2, 8, dtype=torch.bool)
    pad[1, :2] = True  # left padding: renorm must leave it out of the window
    x = x.masked_fill(pad.unsqueeze(-1), 0.0)
    with torch.no_grad():
        full = mixer(x, pad)
        state, steps = None, []
        for t in range(8):
            y, state = mixer.step(x[:, t:t + 1], state, pad[:, t:t + 1])
            steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1)[~pad], full[~pad], rtol=1e-5, atol=1e-6)
