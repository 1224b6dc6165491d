"""Halting of the Depth-Adaptive decoder (Elbayad, Gu, Grave & Auli, ICLR 2020).

A decoder of N blocks has an output classifier after each block; a token
leaves ("exits") at some block n and is predicted from that block's state.
This module holds what decides n and what supervises that decision:

* the halting heads, each giving log q(n), a distribution over the N exits:
  - ``sequence``: one exit per sentence, q(n|x) = softmax(W s + b), s the mean
    of the encoder output over real source tokens;
  - ``token-multinomial``: q_t(n) = softmax(W h_t^1 + b), read from block 1;
  - ``token-geometric``: chi_t^n = sigmoid(w . h_t^n + b) for n < N, the
    probability of leaving at block n having reached it; q_t(n) = chi_t^n
    prod_{n' < n} (1 - chi_t^{n'}), and q_t(N) what is left;
  - ``confidence`` has no head: a token leaves at the first block whose
    classifier is confident enough (decided at inference, nothing to train);
* the oracles, which turn each block's log-likelihood of the reference
  (or whether its argmax is the reference) into the exit the head should
  predict: the lowest block that maximises the (smoothed) score minus a
  penalty ``lam`` per block, per sentence or per token.

Blocks are numbered 0..N-1 here (the paper's 1..N).
"""

from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

EXIT_MODES = ("sequence", "token-multinomial", "token-geometric", "confidence")
ORACLES = ("sequence-likelihood", "sequence-correctness", "token-likelihood", "token-correctness")


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 logits to fp32 before a softmax; fp32/fp64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _head(fan_in: int, fan_out: int) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class SequenceHalting(nn.Module):
    """log q(n | x) from the mean encoder output: (B, S, C_enc) -> (B, N)."""

    def __init__(self, encoder_dim: int, num_blocks: int):
        super().__init__()
        self.proj = _head(encoder_dim, num_blocks)

    def forward(self, encoder_out: torch.Tensor, encoder_pad_mask: Optional[torch.Tensor]):
        if encoder_pad_mask is None:
            mean = encoder_out.mean(dim=1)
        else:
            keep = (~encoder_pad_mask).unsqueeze(-1).to(encoder_out.dtype)
            mean = (encoder_out * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        return F.log_softmax(_upcast(self.proj(mean)), dim=-1)


class TokenMultinomialHalting(nn.Module):
    """log q_t(n) from block 0's output: (B, T, C) -> (B, T, N)."""

    def __init__(self, dim: int, num_blocks: int):
        super().__init__()
        self.proj = _head(dim, num_blocks)

    def forward(self, first_block_out: torch.Tensor):
        return F.log_softmax(_upcast(self.proj(first_block_out)), dim=-1)


class TokenGeometricHalting(nn.Module):
    """chi_t^n = sigmoid(w . h_t^n + b), one (w, b) shared by the blocks."""

    def __init__(self, dim: int, num_blocks: int):
        super().__init__()
        self.num_blocks = num_blocks
        self.proj = _head(dim, 1)

    def logits(self, block_out: torch.Tensor) -> torch.Tensor:
        """The logit of chi at one block: (B, T, C) -> (B, T)."""
        return _upcast(self.proj(block_out).squeeze(-1))

    def forward(self, block_outs: List[torch.Tensor]):
        """log q_t(n) from the outputs of blocks 0..N-2 (block N-1 needs no chi): (B, T, N)."""
        if len(block_outs) < self.num_blocks - 1:
            raise ValueError(f"block_outs: need the outputs of {self.num_blocks - 1} blocks, got {len(block_outs)}")
        z = torch.stack([self.logits(h) for h in block_outs[: self.num_blocks - 1]], dim=-1)
        log_leave, log_stay = F.logsigmoid(z), F.logsigmoid(-z)
        # log of prod_{n' < n} (1 - chi^{n'}): 0 for n = 0.
        reached = torch.cat([torch.zeros_like(z[..., :1]), log_stay.cumsum(dim=-1)], dim=-1)
        leave = torch.cat([log_leave, torch.zeros_like(z[..., :1])], dim=-1)
        return reached + leave


def build_halting(mode: str, dim: int, encoder_dim: int, num_blocks: int) -> Optional[nn.Module]:
    if mode not in EXIT_MODES:
        raise ValueError(f"--exit-mode must be one of {', '.join(EXIT_MODES)}, got {mode!r}")
    if mode == "sequence":
        return SequenceHalting(encoder_dim, num_blocks)
    if mode == "token-multinomial":
        return TokenMultinomialHalting(dim, num_blocks)
    if mode == "token-geometric":
        return TokenGeometricHalting(dim, num_blocks)
    return None


def smooth_over_time(score: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """sum_{t'} exp(-(t - t')^2 / sigma^2) score[t'] over the real tokens t' of each row.

    score (B, T, N), mask (B, T) True on real tokens; sigma = 0 leaves score as it is.
    """
    if sigma < 0:
        raise ValueError(f"oracle sigma must be >= 0, got {sigma}")
    score = score.masked_fill(~mask.unsqueeze(-1), 0.0)
    if sigma == 0:
        return score
    t = torch.arange(score.size(1), device=score.device, dtype=score.dtype)
    kernel = torch.exp(-((t[:, None] - t[None, :]) ** 2) / sigma**2)
    return torch.einsum("ts,bsn->btn", kernel, score)


def oracle_exits(oracle: str, token_ll: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor,
                 sigma: float = 1.0, lam: float = 0.0) -> torch.Tensor:
    """The exit each head should predict.

    token_ll (B, T, N): log p(y_t | h_t^n) of the reference token at each block;
    correct (B, T, N): whether block n's argmax is the reference token;
    mask (B, T): True on real target tokens. Returns (B,) for the sequence
    oracles and (B, T) for the token ones (pad positions: 0). Ties go to the
    lowest block.
    """
    if oracle not in ORACLES:
        raise ValueError(f"--halting-oracle must be one of {', '.join(ORACLES)}, got {oracle!r}")
    score = token_ll if oracle.endswith("likelihood") else correct.to(token_ll.dtype)
    penalty = lam * torch.arange(score.size(-1), device=score.device, dtype=score.dtype)
    if oracle.startswith("sequence"):
        total = score.masked_fill(~mask.unsqueeze(-1), 0.0).sum(dim=1)
        return (total - penalty).argmax(dim=-1)
    smoothed = smooth_over_time(score, mask, sigma)
    return (smoothed - penalty).argmax(dim=-1).masked_fill(~mask, 0)
