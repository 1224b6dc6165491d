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


def edge_conv_loop(x, weight, padding_l, edge, valid=None, weight_softmax=True, keep=None, dropout_p=0.0):
    """The convolution with an edge rule, from the logits, one (b, t, h) at a time.

    Which taps the softmax of position t runs over:
    zeros: all K; renorm: those whose source is inside [0, T) and valid (none:
    the output is 0); fairseq: for a dynamic weight in a causal layer with
    T < K, the last T taps (and a tap outside then reads 0), else all K.
    ``keep`` is a DropConnect keep-mask of the weight's shape (after any cut).
    Returns float64 (B, T, C).
    """
    x = x.double()
    w = weight.double()
    B, T, C = x.shape
    H, K = w.shape[-2:]
    R = C // H
    if valid is None:
        valid = torch.ones(B, T, dtype=torch.bool)
    out = torch.zeros(B, T, C, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            for h in range(H):
                logits = w[h] if w.dim() == 2 else w[b, t, h]
                taps = list(range(K))
                cut = edge == "fairseq" and w.dim() == 4 and padding_l == K - 1 and T < K
                if cut:
                    taps = taps[K - T:]
                inside = [k for k in taps if 0 <= t + k - padding_l < T and bool(valid[b, t + k - padding_l])]
                support = inside if edge == "renorm" else taps
                if not support:
                    continue
                z = [logits[k] for k in support]
                if weight_softmax:
                    m = max(float(v.detach()) for v in z)
                    e = [torch.exp(v - m) for v in z]
                    total = sum(e)
                    probs = {k: e[i] / total for i, k in enumerate(support)}
                else:
                    probs = {k: z[i] for i, k in enumerate(support)}
                for k in inside:
                    if k not in probs:
                        continue
                    tap = probs[k]
                    if keep is not None:
                        j = k - (K - T) if cut else k
                        mask = keep[h, j] if keep.dim() == 2 else keep[b, t, h, j]
                        tap = tap * float(mask) / (1.0 - dropout_p)
                    out[b, t, h * R:(h + 1) * R] += tap * x[b, t + k - padding_l, h * R:(h + 1) * R]
    return out
