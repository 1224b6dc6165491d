"""Independent float64 reference of lightweight/dynamic convolution.

Written as the formula reads, one output position and one tap at a time, with
no code shared with the package. Gradients come from autograd through it.
"""

import torch


def normalized_taps(weight, weight_softmax=True, keep=None, dropout_p=0.0):
    w = weight.double()
    if weight_softmax:
        w = torch.exp(w - w.max(dim=-1, keepdim=True).values)
        w = w / w.sum(dim=-1, keepdim=True)
    if keep is not None:
        w = w * keep.double() / (1.0 - dropout_p)
    return w


def conv_loop(x, w, padding_l):
    """x (B, T, C); w normalised taps, (H, K) or (B, T, H, K). Returns float64 (B, T, C)."""
    x = x.double()
    B, T, C = x.shape
    H, K = w.shape[-2:]
    R = C // H
    head_of_channel = torch.arange(C, device=x.device) // R
    rows = []
    for t in range(T):
        acc = torch.zeros(B, C, dtype=torch.float64, device=x.device)
        for k in range(K):
            j = t + k - padding_l
            if 0 <= j < T:
                w_tk = w[:, k] if w.dim() == 2 else w[:, t, :, k]  # (H,) or (B, H)
                acc = acc + w_tk[..., head_of_channel] * x[:, j, :]
        rows.append(acc)
    return torch.stack(rows, dim=1)
