"""The Triton kernels of lightweight/dynamic conv against the float64 loop reference.

Without a GPU the kernels run on CPU tensors under the Triton interpreter
(tests/conftest.py switches it on), so shapes are tiny. Every output buffer the
launchers allocate is filled with NaN first, so an element a kernel forgets to
write fails the comparison. Outputs and both gradients are compared. Under the
interpreter, tl.dot (the band bodies' products) goes through a model of the
GPU's TF32 tensor-core arithmetic (tests/tf32_dot.py), which the interpreter
alone would compute exactly.

Tolerances: float32 results must be within 1e-5 relative error (norm of the
difference over norm of the reference). For float16/bfloat16 the yardstick is
the same convolution written in plain PyTorch in that dtype (taps, products
and the sum over taps all in the low dtype): the kernels, which accumulate in
float32, must not be more than twice as far from the float64 reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from ref_conv_loop import conv_loop, normalized_taps
from tf32_dot import emulate_tensor_cores

import lightconv_kernels as lk
from lightconv_kernels import triton_common
from lightconv_kernels.conv import triton_backward, triton_band, triton_conv, triton_impl

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
FP32_TOL = 1e-5
OPS = {"light": lk.lightweight_conv, "dynamic": lk.dynamic_conv}


@dataclass(frozen=True)
class Case:
    B: int
    T: int
    C: int
    H: int
    K: int
    pad: str  # "left" (0), "centre" ((K - 1) // 2) or "causal" (K - 1)
    softmax: bool = True
    dropout: float = 0.0

    @property
    def padding_l(self) -> int:
        return {"left": 0, "centre": (self.K - 1) // 2, "causal": self.K - 1}[self.pad]

    @property
    def id(self) -> str:
        extra = ("" if self.softmax else "-nosoftmax") + (f"-drop{self.dropout}" if self.dropout else "")
        return f"B{self.B}-T{self.T}-C{self.C}-H{self.H}-K{self.K}-{self.pad}{extra}"


CASES = [
    Case(2, 7, 12, 3, 3, "centre"),  # R = 4, H not a power of two, odd T
    Case(1, 1, 12, 3, 1, "left"),  # T = 1, K = 1
    Case(2, 5, 9, 3, 2, "left", softmax=False),  # R = 3 (odd), even K
    Case(2, 9, 10, 5, 4, "causal"),  # H = 5, R = 2
    Case(1, 6, 6, 3, 7, "causal"),  # K > T
    Case(2, 11, 15, 3, 7, "centre", softmax=False),  # R = 5
    Case(1, 13, 8, 2, 31, "centre"),  # K > T, both ends padded
    Case(1, 24, 6, 3, 64, "causal"),  # K spans two BLOCK_K chunks, both reaching x
    Case(1, 12, 4, 1, 64, "centre", softmax=False),
    Case(1, 10, 80, 1, 3, "centre"),  # R = 80: several channel chunks, ragged
    Case(2, 9, 12, 3, 3, "centre", dropout=0.3),
    Case(1, 12, 6, 3, 7, "causal", softmax=False, dropout=0.5),
    Case(1, 12, 4, 2, 64, "centre", dropout=0.25),
]
LOWP_CASES = [
    Case(2, 16, 24, 3, 3, "centre"),
    Case(2, 17, 20, 5, 7, "causal", softmax=False),
    Case(1, 24, 16, 2, 31, "left", dropout=0.2),
]


def _poisoned(shape, dtype, device):
    return torch.full(shape, float("nan"), dtype=dtype, device=device)


@pytest.fixture(autouse=True)
def triton_backend(monkeypatch):
    """The Triton path, NaN-poisoned outputs, and (interpreted) the GPU's TF32 tl.dot.

    Yields the precisions of the tl.dot calls made under the TF32 model.
    """
    monkeypatch.setenv("LIGHTCONV_BACKEND", "triton")
    monkeypatch.setattr(triton_impl, "empty", _poisoned)
    torch.manual_seed(0)  # the DropConnect seed the op draws, hence the masks, are fixed
    # The band bodies' tl.dot multiplies on the tensor cores in TF32; the
    # interpreter alone would multiply exactly and hide that rounding.
    yield emulate_tensor_cores(monkeypatch) if DEVICE == "cpu" else None


def _inputs(op: str, case: Case, dtype, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    shape_w = (case.H, case.K) if op == "light" else (case.B, case.T, case.H, case.K)
    x = torch.randn(case.B, case.T, case.C, generator=gen).to(dtype)
    w = torch.randn(*shape_w, generator=gen).to(dtype)
    g = torch.randn(case.B, case.T, case.C, generator=gen).to(dtype)
    return x.to(DEVICE), w.to(DEVICE), g.to(DEVICE)


def _run_kernels(monkeypatch, op: str, case: Case, x, w, g):
    """Output, grad_x, grad_w through the public function, and the keep-mask it used."""
    seeds = []
    forward = triton_impl.forward

    def spy(x_, w_, padding_l, weight_softmax, dropout_p, seed, save_stats):
        seeds.append(seed)
        return forward(x_, w_, padding_l, weight_softmax, dropout_p, seed, save_stats)

    monkeypatch.setattr(triton_impl, "forward", spy)
    x = x.clone().requires_grad_()
    w = w.clone().requires_grad_()
    out = OPS[op](
        x, w, case.padding_l, weight_softmax=case.softmax, weight_dropout=case.dropout, training=case.dropout > 0
    )
    grad_x, grad_w = torch.autograd.grad(out, (x, w), g)
    keep = None
    if case.dropout:
        assert seeds and seeds[0] is not None
        keep = triton_impl.dropconnect_keep_mask(seeds[0], w.shape, case.dropout)
        assert 0 < keep.sum() < keep.numel(), "degenerate mask: choose another seed"
    return out.detach(), grad_x, grad_w, keep


def _reference(case: Case, x, w, g, keep):
    """float64 output and gradients from the loop reference, by autograd."""
    x = x.detach().double().requires_grad_()
    w = w.detach().double().requires_grad_()
    out = conv_loop(x, normalized_taps(w, case.softmax, keep, case.dropout), case.padding_l)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), g.double())
    return out, grad_x, grad_w


def _torch_in_dtype(case: Case, x, w, g, keep):
    """The convolution written in plain PyTorch, every operation in the dtype of x."""
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    taps = torch.softmax(w, dim=-1) if case.softmax else w
    if keep is not None:
        taps = taps * keep.to(taps.dtype) / (1.0 - case.dropout)
    B, T, C = x.shape
    H, K = taps.shape[-2:]
    taps = taps.view(1, 1, H, K) if taps.dim() == 2 else taps
    padded = F.pad(x.view(B, T, H, C // H), (0, 0, 0, 0, case.padding_l, K - 1 - case.padding_l))
    out = padded[:, 0:T] * taps[..., 0:1]
    for k in range(1, K):
        out = out + padded[:, k : k + T] * taps[..., k : k + 1]
    out = out.view(B, T, C)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), g)
    return out.detach(), grad_x, grad_w


def _rel_error(actual, ref) -> float:
    assert actual.shape == ref.shape
    diff = (actual.double() - ref).norm().item()
    scale = ref.norm().item()
    # A zero reference (e.g. the softmax gradient when K = 1) must be met exactly.
    return diff / scale if scale > 0 else diff


NAMES = ("out", "grad_x", "grad_w")

# The kernels have two bodies (tap by tap, and a band matrix on tl.dot) that
# the autotuner chooses between; the grids run both. One FORCE_CONFIG index
# selects the same body of the conv kernel and the fused dynamic backward kernel.
TAPS_CONFIG = next(i for i, c in enumerate(triton_conv.CONV_CONFIGS) if not c.kwargs["BAND"])
BAND_CONFIG = next(i for i, c in enumerate(triton_conv.CONV_CONFIGS) if c.kwargs["BAND"])
BODIES = {"taps": TAPS_CONFIG, "band": BAND_CONFIG}


def _use_body(monkeypatch, body: str):
    monkeypatch.setattr(triton_common, "FORCE_CONFIG", BODIES[body])


@pytest.mark.parametrize("body", ["taps", "band"])
def test_conv_body_env_restricts_the_autotuner_and_the_interpreter(monkeypatch, body):
    monkeypatch.setenv("LIGHTCONV_CONV_BODY", body)
    for kernel in (triton_conv.conv_taps_kernel, triton_backward.dynamic_backward_kernel,
                   triton_backward.light_backward_kernel):
        assert kernel.early_config_prune is triton_band.keep_requested_body
        kept = kernel.early_config_prune(kernel.configs, None)
        assert kept and all(bool(c.kwargs["BAND"]) == (body == "band") for c in kept)
        assert triton_common.chosen_config(kernel) in kept
    monkeypatch.setenv("LIGHTCONV_CONV_BODY", "auto")
    assert triton_band.keep_requested_body(triton_conv.CONV_CONFIGS, None) == triton_conv.CONV_CONFIGS


def test_conv_body_env_runs_the_band_body(monkeypatch, triton_backend):
    monkeypatch.setenv("LIGHTCONV_CONV_BODY", "band")
    chosen = []
    choose = triton_common.chosen_config
    monkeypatch.setattr(triton_common, "chosen_config", lambda k: chosen.append(choose(k)) or chosen[-1])
    case = Case(2, 9, 12, 3, 5, "centre")
    x, w, g = _inputs("dynamic", case, torch.float32)
    got = _run_kernels(monkeypatch, "dynamic", case, x, w, g)
    assert len(chosen) == 2 and all(c.kwargs["BAND"] > 0 for c in chosen)  # forward, fused backward
    if DEVICE == "cpu":  # float32 operands: the three-product split on the tensor cores
        assert triton_backend and set(triton_backend) == {"TF32x3"}
    for name, a, r in zip(NAMES, got[:3], _reference(case, x, w, g, None)):
        assert _rel_error(a, r) <= FP32_TOL, name


def test_bad_conv_body_env_fails_before_any_launch(monkeypatch):
    monkeypatch.setenv("LIGHTCONV_CONV_BODY", "fastest")
    monkeypatch.setattr(triton_impl, "launch", lambda *a, **k: pytest.fail("launched"))
    x, w, _ = _inputs("dynamic", Case(1, 4, 4, 2, 3, "centre"), torch.float32)
    with pytest.raises(ValueError, match="LIGHTCONV_CONV_BODY='fastest'"):
        lk.dynamic_conv(x, w, 1)


def test_one_config_index_selects_the_same_body_of_every_kernel():
    assert triton_backward.BACKWARD_CONFIGS[TAPS_CONFIG].kwargs["BAND"] == 0
    assert triton_backward.BACKWARD_CONFIGS[BAND_CONFIG].kwargs["BAND"] > 0
    assert triton_conv.CONV_CONFIGS[BAND_CONFIG].kwargs["BAND"] > 0


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_fp32_matches_float64_reference(monkeypatch, op, case, body):
    _use_body(monkeypatch, body)
    x, w, g = _inputs(op, case, torch.float32)
    got = _run_kernels(monkeypatch, op, case, x, w, g)
    ref = _reference(case, x, w, g, got[3])
    for name, a, r in zip(NAMES, got[:3], ref):
        assert a.dtype == (w.dtype if name == "grad_w" else x.dtype)
        err = _rel_error(a, r)
        assert err <= FP32_TOL, f"{name}: relative error {err:.2e} > {FP32_TOL}"


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("case", LOWP_CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_low_precision_within_twice_torch_error(monkeypatch, triton_backend, op, case, dtype, body):
    _use_body(monkeypatch, body)
    x, w, g = _inputs(op, case, dtype)
    got = _run_kernels(monkeypatch, op, case, x, w, g)
    if DEVICE == "cpu":  # 16-bit inputs: one TF32 product in the band body, no tl.dot tap by tap
        assert set(triton_backend) == ({"TF32"} if body == "band" else set())
    ref = _reference(case, x, w, g, got[3])
    baseline = _torch_in_dtype(case, x, w, g, got[3])
    for name, a, b, r in zip(NAMES, got[:3], baseline, ref):
        assert a.dtype == dtype
        err, base_err = _rel_error(a, r), _rel_error(b, r)
        assert base_err > 0, f"{name}: the {dtype} baseline is exact, so it cannot bound the error"
        assert err <= 2 * base_err, f"{name}: relative error {err:.2e} > 2 x torch {dtype} error {base_err:.2e}"


@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_mixed_dtypes(monkeypatch, op):
    """bfloat16 activations with float32 logits: each gradient in its input's dtype."""
    case = Case(2, 9, 12, 3, 5, "centre")
    x, w, g = _inputs(op, case, torch.bfloat16)
    w = w.float()
    got = _run_kernels(monkeypatch, op, case, x, w, g)
    ref = _reference(case, x, w, g, None)
    assert (got[0].dtype, got[1].dtype, got[2].dtype) == (torch.bfloat16, torch.bfloat16, torch.float32)
    # Only the bfloat16 rounding of out and grad_x remains; grad_w is computed in float32 throughout.
    assert _rel_error(got[0], ref[0]) <= 2**-8
    assert _rel_error(got[1], ref[1]) <= 2**-8
    assert _rel_error(got[2], ref[2]) <= FP32_TOL


N_CONFIGS = max(len(triton_conv.CONV_CONFIGS), len(triton_backward.BACKWARD_CONFIGS))


@pytest.mark.parametrize("config", range(N_CONFIGS), ids=lambda i: f"config{i}")
@pytest.mark.parametrize("op", ["light", "dynamic"])
def test_every_autotune_config(monkeypatch, op, config):
    """Each configuration on a shape that needs several tiles in every dimension.

    Each kernel runs configuration number ``config`` (modulo its count)
    instead of the autotuner's choice (see ``triton_common.launch``). The
    lightweight backward runs in 16-position splits here, so T = 70 ends in a
    ragged one and each split takes several blocks of tap products.
    """
    monkeypatch.setattr(triton_common, "FORCE_CONFIG", config)
    monkeypatch.setattr(triton_backward, "LIGHT_SPLIT", 16)
    case = Case(2, 70, 128, 2, 5, "centre", dropout=0.2)
    x, w, g = _inputs(op, case, torch.float32, seed=config)
    got = _run_kernels(monkeypatch, op, case, x, w, g)
    ref = _reference(case, x, w, g, got[3])
    for name, a, r in zip(NAMES, got[:3], ref):
        err = _rel_error(a, r)
        assert err <= FP32_TOL, f"{name}: relative error {err:.2e} > {FP32_TOL}"


def test_light_grad_w_is_reproducible(monkeypatch):
    case = Case(2, 50, 12, 3, 7, "centre")
    monkeypatch.setattr(triton_backward, "LIGHT_SPLIT", 16)
    x, w, g = _inputs("light", case, torch.float32)
    first = _run_kernels(monkeypatch, "light", case, x, w, g)[2]
    second = _run_kernels(monkeypatch, "light", case, x, w, g)[2]
    assert torch.equal(first, second)


def test_keep_mask_is_a_function_of_seed_and_index():
    seed = torch.tensor([1234], dtype=torch.int64, device=DEVICE)
    p = 0.3
    keep = triton_impl.dropconnect_keep_mask(seed, (40, 50), p)
    assert keep.shape == (40, 50) and keep.dtype == torch.bool
    # Same seed: same mask; the flat index is the Philox counter, so the mask
    # of a smaller tensor is a prefix of that of a larger one.
    assert torch.equal(keep, triton_impl.dropconnect_keep_mask(seed, (40, 50), p))
    assert torch.equal(keep.flatten()[:700], triton_impl.dropconnect_keep_mask(seed, (700,), p))
    other = triton_impl.dropconnect_keep_mask(seed + 1, (40, 50), p)
    assert not torch.equal(keep, other)
    # 2000 Bernoulli(0.7) draws: 4 standard deviations is about +-0.041.
    assert abs(keep.float().mean().item() - (1 - p)) < 4 * (p * (1 - p) / keep.numel()) ** 0.5


def test_host_helpers_match_triton():
    """The launchers' own next_pow2/cdiv (triton's are ~5 us per host call) give triton's results."""
    import triton

    for n in range(1, 5000):
        assert triton_common.next_pow2(n) == triton.next_power_of_2(n), n
        for d in (1, 3, 16, 64, 512):
            assert triton_common.cdiv(n, d) == triton.cdiv(n, d), (n, d)


@pytest.mark.parametrize("config", range(len(triton_conv.CONV_CONFIGS)), ids=lambda i: f"config{i}")
@pytest.mark.parametrize("K", [1, 5, 64])
def test_forward_saves_the_softmax_statistics_of_every_row(monkeypatch, K, config):
    """The log-sum-exp of each dynamic weight row, which the fused backward reads for its
    neighbours' rows, written by the forward: several tiles of positions and heads, and
    R = 80 so that two channel blocks of the same heads share the rows (one writes them)."""
    monkeypatch.setattr(triton_common, "FORCE_CONFIG", config)
    B, T, H, R = 2, 70, 3, 80
    gen = torch.Generator().manual_seed(K)
    x = torch.randn(B, T, H * R, generator=gen).to(DEVICE)
    w = (4 * torch.randn(B, T, H, K, generator=gen)).to(DEVICE)
    out, stats = triton_impl.forward(x, w, K // 2, True, 0.0, None, True)
    assert stats.shape == (B, T, H) and stats.dtype == torch.float32
    assert _rel_error(stats, torch.logsumexp(w.double(), dim=-1)) <= FP32_TOL
    assert _rel_error(out, conv_loop(x.double(), normalized_taps(w.double(), True, None, 0.0), K // 2)) <= FP32_TOL


@pytest.mark.parametrize("op", ["light", "dynamic"])
@pytest.mark.parametrize("softmax", [True, False])
def test_statistics_are_saved_only_for_a_dynamic_softmax_that_needs_a_backward(monkeypatch, op, softmax):
    case = Case(2, 9, 12, 3, 5, "centre", softmax=softmax)
    x, w, _ = _inputs(op, case, torch.float32)
    saved = []
    forward = triton_impl.forward

    def spy(*args):
        out, stats = forward(*args)
        saved.append(stats)
        return out, stats

    monkeypatch.setattr(triton_impl, "forward", spy)
    with torch.no_grad():
        OPS[op](x, w, case.padding_l, weight_softmax=softmax)
    OPS[op](x, w, case.padding_l, weight_softmax=softmax)  # nothing requires a gradient
    OPS[op](x.requires_grad_(), w, case.padding_l, weight_softmax=softmax)
    assert saved[:2] == [None, None]
    assert (saved[2] is not None) == (op == "dynamic" and softmax)


def test_dynamic_softmax_backward_without_statistics_fails_before_any_launch(monkeypatch):
    monkeypatch.setattr(triton_impl, "launch", lambda *a, **k: pytest.fail("launched"))
    x, w, g = _inputs("dynamic", Case(2, 6, 12, 3, 5, "centre"), torch.float32)
    for stats in (None, torch.empty(0), torch.empty(2, 6, 4)):
        with pytest.raises(ValueError, match=r"stats of shape .*\(B, T, H\) = \(2, 6, 3\)"):
            triton_impl.backward(g, x, w, 2, True, 0.0, None, stats)
