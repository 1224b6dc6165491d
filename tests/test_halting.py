"""Halting heads and oracles of the Depth-Adaptive decoder against loops written
from the paper's formulas (fp64) and hand-worked cases."""

from __future__ import annotations

import math

import pytest
import torch

from lightconv_plugin.modules.halting import (
    SequenceHalting, TokenGeometricHalting, TokenMultinomialHalting, build_halting, oracle_exits,
    smooth_over_time)


def test_geometric_q_is_the_product_of_stay_probabilities():
    torch.manual_seed(0)
    N, B, T, C = 4, 2, 3, 5
    head = TokenGeometricHalting(C, N).double()
    outs = [torch.randn(B, T, C, dtype=torch.float64) for _ in range(N - 1)]
    log_q = head(outs)
    w, b = head.proj.weight[0], head.proj.bias[0]
    for i in range(B):
        for t in range(T):
            chi = [1 / (1 + math.exp(-(float(outs[n][i, t] @ w.detach()) + float(b.detach())))) for n in range(N - 1)]
            expected, stay = [], 1.0
            for n in range(N - 1):
                expected.append(stay * chi[n])
                stay *= 1 - chi[n]
            expected.append(stay)
            assert torch.allclose(log_q[i, t].exp(), torch.tensor(expected, dtype=torch.float64), rtol=1e-12)
    assert torch.allclose(log_q.exp().sum(-1), torch.ones(B, T, dtype=torch.float64))


def test_sequence_head_reads_the_mean_over_real_tokens():
    torch.manual_seed(1)
    head = SequenceHalting(6, 3).double()
    enc = torch.randn(2, 5, 6, dtype=torch.float64)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    garbage = enc.clone()
    garbage[1, 2:] = 1e3  # padding must not matter
    log_q = head(garbage, pad)
    assert torch.allclose(log_q[1], head(enc[1:2, :2], None)[0])
    assert torch.allclose(log_q[0], torch.log_softmax(head.proj(enc[0].mean(0)), -1))
    multi = TokenMultinomialHalting(6, 3).double()
    assert multi(enc).shape == (2, 5, 3)


def test_build_halting_names_a_bad_mode():
    assert build_halting("confidence", 4, 4, 3) is None
    with pytest.raises(ValueError, match="--exit-mode must be one of .* got 'fast'"):
        build_halting("fast", 4, 4, 3)


def test_smoothing_is_the_gaussian_kernel_sum_over_real_tokens():
    torch.manual_seed(2)
    score = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    sigma = 1.5
    out = smooth_over_time(score, mask, sigma)
    for b in range(2):
        for t in range(4):
            for n in range(3):
                ref = sum(math.exp(-((t - s) ** 2) / sigma**2) * float(score[b, s, n])
                          for s in range(4) if mask[b, s])
                assert out[b, t, n].item() == pytest.approx(ref, rel=1e-12)
    assert torch.equal(smooth_over_time(score, mask, 0.0)[0], score[0])
    with pytest.raises(ValueError, match="sigma must be >= 0, got -1"):
        smooth_over_time(score, mask, -1)


def test_oracles_on_a_worked_example():
    # One sentence of 3 tokens, 3 blocks. Log-likelihoods of the reference:
    ll = torch.tensor([[[-2.0, -0.5, -0.4],    # token 0: block 2 best, block 1 nearly
                        [-0.1, -0.2, -0.3],    # token 1: block 0 best
                        [-3.0, -1.0, -2.0]]])  # token 2: block 1 best
    correct = torch.tensor([[[False, True, True], [True, True, True], [False, False, True]]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    # Sequence likelihood: sums -5.1, -1.7, -2.7 -> block 1.
    assert oracle_exits("sequence-likelihood", ll, correct, mask).tolist() == [1]
    # With a penalty of 1 per block: -5.1, -2.7, -4.7 -> still block 1; of 2: -5.1, -3.7, -6.7.
    assert oracle_exits("sequence-likelihood", ll, correct, mask, lam=2.0).tolist() == [1]
    # Sequence correctness: 1, 2, 3 correct -> block 2; a penalty of 1.5 -> 1, 0.5, 0 -> block 0.
    assert oracle_exits("sequence-correctness", ll, correct, mask).tolist() == [2]
    assert oracle_exits("sequence-correctness", ll, correct, mask, lam=1.5).tolist() == [0]
    # Token likelihood without smoothing: per token 2, 0, 1.
    assert oracle_exits("token-likelihood", ll, correct, mask, sigma=0).tolist() == [[2, 0, 1]]
    # Token correctness: ties go to the lowest correct block: 1, 0, 2.
    assert oracle_exits("token-correctness", ll, correct, mask, sigma=0).tolist() == [[1, 0, 2]]
    # A wide kernel makes every token follow the sentence: the sequence answer everywhere.
    assert oracle_exits("token-likelihood", ll, correct, mask, sigma=1e6).tolist() == [[1, 1, 1]]


def test_oracles_ignore_padding_and_name_a_bad_oracle():
    torch.manual_seed(3)
    ll = -torch.rand(2, 4, 3)
    correct = torch.rand(2, 4, 3) > 0.5
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    noisy = ll.clone()
    noisy[1, 2:] = 100.0
    for oracle in ("sequence-likelihood", "token-likelihood"):
        a = oracle_exits(oracle, ll, correct, mask, sigma=1.0)
        b = oracle_exits(oracle, noisy, correct, mask, sigma=1.0)
        assert torch.equal(a, b), oracle
    assert oracle_exits("token-likelihood", noisy, correct, mask)[1, 2:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="--halting-oracle must be one of .* got 'best'"):
        oracle_exits("best", ll, correct, mask)
