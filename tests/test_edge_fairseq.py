"""The edge rules against fairseq 0.12's own convolution modules, weights copied.

* ``fairseq``: fairseq's lightconv model builds DynamicConv_scripatable, whose
  full forward cuts a causal kernel longer than the input before the softmax;
  ours with ``edge="fairseq"`` must give its outputs, on short and long inputs.
* ``zeros``: equals fairseq's incremental decoding of the same module (one
  position at a time), which does not cut.
* ``renorm``: equals DynamicConv1dTBC with ``renorm_padding=True`` (its band
  softmax over the positions inside the tensor), causal and centred.
* LightweightConv1dTBC takes the softmax before its cut, so for the
  lightweight op ``fairseq`` and ``zeros`` both give its output.
"""

import pytest
import torch
from fairseq.modules.dynamic_convolution import DynamicConv1dTBC, DynamicConv_scripatable
from fairseq.modules.lightweight_convolution import LightweightConv1dTBC

import lightconv_plugin  # noqa: F401  (fairseq's logging fix)
from lightconv_plugin.modules.conv_mixers import DynamicConvMixer, LightweightConvMixer

C, H, K, B = 12, 3, 7, 2
TOL = dict(rtol=1e-5, atol=1e-6)


def _ours_dynamic(fs, causal, edge):
    mixer = DynamicConvMixer(C, H, K, causal, edge=edge).eval()
    with torch.no_grad():
        mixer.weight_proj.weight.copy_(fs.weight_linear.weight)
    return mixer


def _fairseq_dynamic(cls, padding_l, **kw):
    torch.manual_seed(0)
    return cls(C, K, padding_l=padding_l, weight_softmax=True, num_heads=H, **kw).eval()


@pytest.mark.parametrize("T", [1, 3, 6, 7, 10])
def test_fairseq_edge_is_fairseqs_training_forward(T):
    fs = _fairseq_dynamic(DynamicConv_scripatable, K - 1)
    x = torch.randn(B, T, C)
    want = fs(x.transpose(0, 1).contiguous()).transpose(0, 1)
    torch.testing.assert_close(_ours_dynamic(fs, True, "fairseq")(x), want, **TOL)
    if T < K:  # the cut changes every position here
        assert not torch.allclose(_ours_dynamic(fs, True, "zeros")(x), want, **TOL)


@pytest.mark.parametrize("T", [3, 10])
def test_zeros_edge_is_fairseqs_incremental_decoding(T):
    fs = _fairseq_dynamic(DynamicConv_scripatable, K - 1)
    x = torch.randn(B, T, C)
    state = {}
    steps = [fs(x[:, t:t + 1].transpose(0, 1), incremental_state=state) for t in range(T)]
    want = torch.cat(steps, 0).transpose(0, 1)
    ours = _ours_dynamic(fs, True, "zeros")
    torch.testing.assert_close(ours(x), want, **TOL)
    # and its own step function, for zeros and fairseq alike (fairseq decodes without the cut)
    for edge in ("zeros", "fairseq"):
        mixer, st, outs = _ours_dynamic(fs, True, edge), None, []
        for t in range(T):
            y, st = mixer.step(x[:, t:t + 1], st)
            outs.append(y)
        torch.testing.assert_close(torch.cat(outs, 1), want, **TOL)


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "centred"])
@pytest.mark.parametrize("T", [3, 9])
def test_renorm_edge_is_fairseqs_renorm_padding(T, causal):
    padding_l = K - 1 if causal else (K - 1) // 2
    fs = _fairseq_dynamic(DynamicConv1dTBC, padding_l, renorm_padding=True)
    x = torch.randn(B, T, C)
    want = fs(x.transpose(0, 1).contiguous(), unfold=False).transpose(0, 1)
    torch.testing.assert_close(_ours_dynamic(fs, causal, "renorm")(x), want, **TOL)


@pytest.mark.parametrize("T", [3, 10])
def test_lightweight_fairseq_and_zeros_are_fairseqs(T):
    torch.manual_seed(0)
    fs = LightweightConv1dTBC(C, K, padding_l=K - 1, weight_softmax=True, num_heads=H).eval()
    x = torch.randn(B, T, C)
    want = fs(x.transpose(0, 1).contiguous()).transpose(0, 1)
    for edge in ("zeros", "fairseq"):
        ours = LightweightConvMixer(C, H, K, True, edge=edge).eval()
        with torch.no_grad():
            ours.weight.copy_(fs.weight.view(H, K))
        torch.testing.assert_close(ours(x), want, **TOL)
