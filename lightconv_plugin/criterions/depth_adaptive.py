"""Training loss of the Depth-Adaptive decoder: ``--criterion depth_adaptive_cross_entropy``.

Decoding loss, by ``--da-training``:
* ``aligned`` (the paper's default, one forward pass): the weighted mean over
  blocks of each block classifier's label-smoothed loss on every token;
* ``mixed``: the mean over ``--mixed-samples`` exit patterns, each token's
  exit drawn uniformly from the N blocks and its state copied above
  (``DepthAdaptiveDecoder.forward_with_exits``), of the loss of each token's
  exit classifier.

Halting loss (the halting head's, ``--exit-mode`` other than confidence):
-log q(n*) with n* the oracle's exit (``--halting-oracle``, smoothing
``--oracle-sigma``, per-block penalty ``--oracle-lambda``; modules/halting.py),
summed over target tokens (a sentence-level head counts its sentence once per
target token, so that ``--halting-alpha`` weighs both kinds alike), added
with weight alpha. With ``--train-halting-only`` on the model, only that term
trains anything.
"""


import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from fairseq.dataclass import FairseqDataclass
from omegaconf import II

from ..models.depth_adaptive import DepthAdaptiveDecoder
from ..modules.halting import ORACLES, oracle_exits

MAX_LOGGED_BLOCKS = 16


@dataclass
class DepthAdaptiveCriterionConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing epsilon of every block's loss"})
    exit_loss_weights: str = field(default="", metadata={
        "help": "comma-separated weight of each block's loss (normalised to sum 1); empty: uniform"})
    da_training: str = field(default="aligned", metadata={"help": "'aligned' (every block on every token) or 'mixed' (sampled exits)"})
    mixed_samples: int = field(default=1, metadata={"help": "exit patterns sampled per batch with --da-training mixed"})
    halting_oracle: str = field(default="token-correctness", metadata={"help": "oracle exit: " + ", ".join(ORACLES)})
    halting_alpha: float = field(default=1.0, metadata={"help": "weight of the halting loss"})
    oracle_sigma: float = field(default=1.0, metadata={"help": "width of the token oracles' Gaussian smoothing over positions (0: none)"})
    oracle_lambda: float = field(default=0.0, metadata={"help": "oracle penalty per block (favours early exits)"})
    sentence_avg: bool = II("optimization.sentence_avg")


@register_criterion("depth_adaptive_cross_entropy", dataclass=DepthAdaptiveCriterionConfig)
class DepthAdaptiveCriterion(FairseqCriterion):
    def __init__(self, task, label_smoothing, exit_loss_weights, da_training, mixed_samples, halting_oracle,
                 halting_alpha, oracle_sigma, oracle_lambda, sentence_avg):
        super().__init__(task)
        if da_training not in ("aligned", "mixed"):
            raise ValueError(f"--da-training must be 'aligned' or 'mixed', got {da_training!r}")
        if mixed_samples < 1:
            raise ValueError(f"--mixed-samples must be >= 1, got {mixed_samples}")
        if halting_oracle not in ORACLES:
            raise ValueError(f"--halting-oracle must be one of {', '.join(ORACLES)}, got {halting_oracle!r}")
        if halting_alpha < 0 or oracle_sigma < 0 or not 0 <= label_smoothing < 1:
            raise ValueError(f"--halting-alpha ({halting_alpha}) and --oracle-sigma ({oracle_sigma}) must be "
                             f">= 0 and --label-smoothing ({label_smoothing}) in [0, 1)")
        self.eps = label_smoothing
        self.weights_text = exit_loss_weights
        self.training_mode = da_training
        self.mixed_samples = mixed_samples
        self.oracle = halting_oracle
        self.alpha = halting_alpha
        self.sigma = oracle_sigma
        self.lam = oracle_lambda
        self.sentence_avg = sentence_avg

    def block_weights(self, n: int) -> list:
        if not self.weights_text:
            return [1.0 / n] * n
        try:
            w = [float(v) for v in self.weights_text.split(",")]
        except ValueError:
            w = []
        if len(w) != n or any(v < 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"--exit-loss-weights: expected {n} non-negative numbers (one per decoder "
                             f"block) with a positive sum, got {self.weights_text!r}")
        return [v / sum(w) for v in w]

    def _smoothed(self, logits, target):
        lprobs = F.log_softmax(logits.float(), dim=-1)
        loss, nll = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), target.reshape(-1), self.eps,
                                            ignore_index=self.padding_idx)
        return loss, nll, lprobs

    def forward(self, model, sample, reduce=True):
        decoder = model.decoder
        if not isinstance(decoder, DepthAdaptiveDecoder):
            raise ValueError("--criterion depth_adaptive_cross_entropy needs a Depth-Adaptive decoder "
                             "(--exit-classifiers shared or per-block)")
        net_input = sample["net_input"]
        target = sample["target"]
        mask = target.ne(self.padding_idx)
        encoder_out = model.encoder(net_input["src_tokens"], src_lengths=net_input["src_lengths"])
        prev = net_input["prev_output_tokens"]
        n_blocks = decoder.num_blocks
        weights = self.block_weights(n_blocks)
        log = {}

        # Aligned pass: every block's loss (the decoding loss unless mixed) and the oracle's inputs.
        logits_last, extra = decoder(prev, encoder_out=encoder_out)
        blocks = extra["inner_states"][1:]
        aligned = 0.0
        token_ll, correct = [], []
        for n, h in enumerate(blocks):
            logits = logits_last if n == n_blocks - 1 else decoder.exit_logits(n, h)
            loss_n, nll_n, lprobs = self._smoothed(logits, target)
            aligned = aligned + weights[n] * loss_n
            if n < MAX_LOGGED_BLOCKS:
                log[f"nll_block{n + 1}"] = nll_n.data
            with torch.no_grad():
                token_ll.append(lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1))
                correct.append(lprobs.argmax(dim=-1).eq(target))
        _, nll_last, _ = self._smoothed(logits_last, target)

        if self.training_mode == "aligned":
            decoding = aligned
        else:
            decoding = 0.0
            for _ in range(self.mixed_samples):
                exits = torch.randint(0, n_blocks, target.shape, device=target.device)
                loss_m, _, _ = self._smoothed(decoder.forward_with_exits(prev, encoder_out, exits), target)
                decoding = decoding + loss_m / self.mixed_samples

        halting = torch.zeros((), device=target.device)
        log_q = extra.get("halting_log_q")
        if log_q is not None and self.alpha > 0:
            exits = oracle_exits(self.oracle, torch.stack(token_ll, -1), torch.stack(correct, -1), mask,
                                 self.sigma, self.lam)
            halting = self._halting_loss(log_q, exits, mask)
            log["halting_loss"] = halting.data
            log["oracle_exit_sum"] = (exits.unsqueeze(-1).expand_as(mask) if exits.dim() == 1 else exits)[mask].sum().data + mask.sum().data
        loss = decoding + self.alpha * halting

        ntokens = sample["ntokens"]
        sample_size = sample["target"].size(0) if self.sentence_avg else ntokens
        log.update(loss=loss.data, nll_loss=nll_last.data, ntokens=ntokens,
                   nsentences=sample["target"].size(0), sample_size=sample_size)
        return loss, sample_size, log

    def _halting_loss(self, log_q, exits, mask):
        if log_q.dim() == 2:  # a sentence-level head
            if exits.dim() != 1:
                raise ValueError(f"--halting-oracle {self.oracle}: a token oracle cannot supervise the "
                                 "sentence-level head (--exit-mode sequence); use a sequence-* oracle")
            picked = log_q.gather(1, exits.unsqueeze(1)).squeeze(1)
            return -(picked * mask.sum(dim=1).to(picked.dtype)).sum()
        if exits.dim() == 1:  # one exit per sentence, taught to every token
            exits = exits.unsqueeze(1).expand_as(mask)
        picked = log_q.gather(-1, exits.unsqueeze(-1)).squeeze(-1)
        return -picked[mask].sum()

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size, ntokens = total("sample_size"), total("ntokens")
        metrics.log_scalar("loss", total("loss") / sample_size / math.log(2), sample_size, round=3)
        metrics.log_scalar("nll_loss", total("nll_loss") / ntokens / math.log(2), ntokens, round=3)
        metrics.log_derived("ppl", lambda m: 2 ** m["nll_loss"].avg)
        for n in range(MAX_LOGGED_BLOCKS):
            key = f"nll_block{n + 1}"
            if any(key in log for log in logging_outputs):
                metrics.log_scalar(key, total(key) / ntokens / math.log(2), ntokens, round=3)
        if any("halting_loss" in log for log in logging_outputs):
            metrics.log_scalar("halting_loss", total("halting_loss") / ntokens / math.log(2), ntokens, round=3)
            metrics.log_scalar("oracle_ae", total("oracle_exit_sum") / ntokens, ntokens, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
