"""The TF32 model of tests/tf32_dot.py, which the kernel tests run tl.dot through.

Its rounding is checked on values where truncation and round-to-nearest
differ, and a real kernel's tl.dot is checked to reach it, with the error
bounds that TF32 (10 mantissa bits per operand) and the three-product split
(about 21) imply.
"""

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from tf32_dot import emulate_tensor_cores, tf32_rounded, tf32_truncated

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="models the GPU's tl.dot in the interpreter")

ULP = 2.0**-10  # TF32's unit in the last place at 1


@pytest.mark.parametrize(
    "value, rounded, truncated",
    [
        (1 + ULP / 2, 1 + ULP, 1.0),  # a tie: away from zero
        (-(1 + ULP / 2), -(1 + ULP), -1.0),
        (1 + ULP / 4, 1.0, 1.0),
        (1 + 3 * ULP / 4, 1 + ULP, 1.0),
        (1 + ULP, 1 + ULP, 1 + ULP),  # already TF32
        (2 - 2.0**-23, 2.0, 2 - ULP),  # the mantissa carries into the exponent
        (0.0, 0.0, 0.0),
    ],
)
def test_tf32_rounding(value, rounded, truncated):
    a = np.array([value], dtype=np.float32)
    assert tf32_rounded(a)[0] == np.float32(rounded)
    assert tf32_truncated(a)[0] == np.float32(truncated)


@triton.jit
def _dot_kernel(a_ptr, b_ptr, out_ptr, N: tl.constexpr, PRECISION: tl.constexpr):
    r = tl.arange(0, N)
    a = tl.load(a_ptr + r[:, None] * N + r[None, :])
    b = tl.load(b_ptr + r[:, None] * N + r[None, :])
    out = tl.dot(a, b, tl.zeros((N, N), tl.float32), input_precision=PRECISION)
    tl.store(out_ptr + r[:, None] * N + r[None, :], out)


def _dot(a, b, precision):
    out = torch.full(a.shape, float("nan"))  # float32 whatever the operands
    _dot_kernel[(1,)](a, b, out, a.shape[0], precision)
    return out


# Worst-case error of each product relative to |a||b|, plus float32 accumulation
# over N = 32 terms (N x 2^-24):
#   tf32:   both operands truncated, each by less than 2^-10 relative;
#   tf32x3: the small parts (at most 2^-11 |a|) truncated by less than 2^-10 of
#           themselves, and small x small (2^-22) dropped.
N = 32
BOUNDS = {"tf32": 2 * 2.0**-10 + N * 2.0**-24, "tf32x3": 3 * 2.0**-21 + N * 2.0**-24, "ieee": N * 2.0**-24}


@pytest.mark.parametrize("precision", BOUNDS)
def test_kernel_dot_reaches_the_model_with_its_error_bound(monkeypatch, precision):
    calls = emulate_tensor_cores(monkeypatch)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(N, N, generator=gen), torch.randn(N, N, generator=gen)
    out = _dot(a, b, precision).double()
    exact = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs()
    err = ((out - exact).abs() / scale).max().item()
    assert calls == ([] if precision == "ieee" else [precision.upper().replace("X3", "x3")])
    assert err <= BOUNDS[precision], f"{precision}: {err:.2e} > {BOUNDS[precision]:.2e}"
    if precision == "tf32":  # the model is on: plain float32 would be 100x closer
        assert err > 100 * BOUNDS["ieee"], f"tf32 error {err:.2e} is that of float32"


def test_sixteen_bit_operands_keep_exact_products(monkeypatch):
    calls = emulate_tensor_cores(monkeypatch)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(N, N, generator=gen).half(), torch.randn(N, N, generator=gen).half()
    out = _dot(a, b, "tf32").double()
    exact = a.double() @ b.double()
    assert calls == []
    assert ((out - exact).abs() / (a.double().abs() @ b.double().abs())).max() <= BOUNDS["ieee"]
