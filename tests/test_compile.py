"""torch.compile traces every public op without a graph break (fullgraph=True
fails on any), forward and backward, and gives the eager result: on the
PyTorch path, and on the Triton path (under the interpreter without a GPU),
whose dynamic conv hands the softmax statistics from the forward op to the
backward op."""

import pytest
import torch

from lightconv_kernels import dynamic_conv, lightweight_conv, talk_conv

B, T, C, H, K = 2, 5, 8, 4, 3


def _light(x, proj):
    return lightweight_conv(x, proj.weight[: H * K, 0].view(H, K), 1, weight_dropout=0.1, training=True)


def _dynamic(x, proj):
    return dynamic_conv(x, proj(x)[..., : H * K].view(B, T, H, K), 2, weight_dropout=0.1, training=True)


def _talk(x, proj):
    left, right = torch.sigmoid(proj(x)[..., : 2 * H]).split(H, dim=-1)
    return talk_conv(x, left.contiguous(), right.contiguous(), 2, 3)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("layer", [_light, _dynamic, _talk], ids=["lightweight", "dynamic", "talk"])
def test_compiled_op_is_one_graph_and_matches_eager(layer, backend, monkeypatch):
    monkeypatch.setenv("LIGHTCONV_BACKEND", backend)
    proj = torch.nn.Linear(C, 2 * H * K, bias=False)
    x = torch.randn(B, T, C, requires_grad=True)
    compiled = torch.compile(lambda x: layer(x, proj).sum(), backend="aot_eager", fullgraph=True)

    torch.manual_seed(0)  # DropConnect draws its seed from torch's RNG
    out = compiled(x)
    out.backward()
    grad = x.grad.clone()
    x.grad = None
    torch.manual_seed(0)
    eager = layer(x, proj).sum()
    eager.backward()
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, x.grad, rtol=1e-5, atol=1e-6)
