"""Depth-Adaptive decoding (Elbayad, Gu, Grave & Auli, ICLR 2020) for every decoder here.

With ``--exit-classifiers shared|per-block`` the decoder gets an output
classifier after each block and a token may leave the decoder early. Blocks
are numbered 0..N-1 in code; logs and the README count exits 1..N, as the paper.

Training (``depth_adaptive_cross_entropy``, criterions/depth_adaptive.py)
reads every block's state from one ordinary forward pass (``inner_states``).

Decoding (``extract_features`` with an incremental state, i.e.
fairseq-generate): each token runs blocks until its exit rule fires
(``--exit-mode``, ``--exit-threshold``), then its state h^n is copied to every
block above. A block a token skipped still turns the copied state into its
own mixer state (the convolution window, TaLK's prefix state, attention's keys
and values), so later tokens that go deeper see every position's history: the
paper's "copy the state and recompute keys and values". Per-row exits in a
batch: a block runs for the whole batch while any row is still in it (the
rows that left keep their state, the block only updates its mixer state from
it); once every row has left, the blocks above only update their mixer state.

``forward_with_exits`` is the same computation over a whole sequence given
each token's exit: the reference of the incremental path in the tests, and
the forward pass of mixed training (sampled exits).
"""

from __future__ import annotations

import atexit
import sys
from typing import List, Optional

import torch
import torch.nn as nn
from fairseq import utils

from ..modules.halting import EXIT_MODES, build_halting
from .seq2seq import ConvDecoder

CLASSIFIERS = ("none", "shared", "per-block")


def add_depth_adaptive_args(parser):
    add = parser.add_argument
    add("--exit-classifiers", choices=CLASSIFIERS,
        help="Depth-Adaptive decoder: an output classifier after every decoder block, one "
             "shared by all blocks or one per block ('none': the plain decoder)")
    add("--exit-mode", choices=EXIT_MODES,
        help="how a token's exit is chosen: 'sequence' (one per sentence, from the encoder), "
             "'token-multinomial' (from block 1), 'token-geometric' (a halting probability "
             "after each block), 'confidence' (the classifier's top probability)")
    add("--exit-threshold", metavar="T[,T...]",
        help="decoding: leave at the first block whose score exceeds T (confidence: top "
             "probability; token-geometric: halting probability; sequence and "
             "token-multinomial: cumulative exit probability); one value, or one per block "
             "but the last; 1 or more never leaves early")
    add("--train-halting-only", type=utils.eval_bool, nargs="?", const=True, metavar="BOOL",
        help="freeze every parameter but the halting head's (train it on a trained model, e.g. "
             "--finetune-from-model of a plain one: the head then starts from its initialisation)")


def set_depth_adaptive_defaults(args):
    for key, value in {"exit_classifiers": "none", "exit_mode": "token-geometric",
                       "exit_threshold": "1.0", "train_halting_only": False}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def freeze_all_but_halting(model: nn.Module, args) -> None:
    """--train-halting-only: only the halting head's parameters stay trainable."""
    halting = getattr(model.decoder, "halting", None)
    if halting is None:
        raise ValueError(f"--train-halting-only: --exit-mode {args.exit_mode} has no halting parameters "
                         f"(--exit-classifiers {args.exit_classifiers}); nothing would train")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in halting.parameters():
        p.requires_grad_(True)


def parse_thresholds(value, num_blocks: int) -> List[float]:
    """'0.9' or '0.9,0.8,...' (one per block but the last) -> N-1 floats."""
    text = str(value)
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v != v or v < 0 for v in values):
        raise ValueError(f"--exit-threshold: expected numbers >= 0, got {text!r}")
    if len(values) == 1:
        values = values * (num_blocks - 1)
    if len(values) != num_blocks - 1:
        raise ValueError(f"--exit-threshold: {len(values)} values for {num_blocks} blocks "
                         f"(give one, or {num_blocks - 1}: the last block always exits), got {text!r}")
    return values


class ExitStats:
    """Average exit and the decoder's estimated FLOPs, over the tokens decoded so far.

    Two accountings of what was spent: ``token`` is the paper's (each token
    pays the blocks it ran, the mixer-state updates of the blocks above, and
    its exit decisions); ``batch`` is what this implementation computes (a
    block runs for the whole batch while any of its rows is still in it).
    """

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.tokens = 0
        self.exits = torch.zeros(num_blocks, dtype=torch.long)
        self.flops = {"full": 0.0, "token": 0.0, "batch": 0.0}

    def add(self, exit_block: torch.Tensor, **flops: float):
        self.tokens += exit_block.numel()
        self.exits += torch.bincount(exit_block.flatten().cpu(), minlength=self.num_blocks)
        for key, value in flops.items():
            self.flops[key] += value

    def average_exit(self) -> float:
        """The paper's AE: mean over tokens of the exit block, counted 1..N."""
        n = torch.arange(1, self.num_blocks + 1, dtype=torch.float64)
        return float((self.exits.double() * n).sum() / max(self.tokens, 1))

    def saved(self, key: str) -> float:
        full = self.flops["full"]
        return 1 - self.flops[key] / full if full else 0.0

    def report(self) -> str:
        share = ", ".join(f"{int(c)}" for c in self.exits)
        per_token = self.flops["full"] / max(self.tokens, 1) / 1e6
        return (f"depth-adaptive decoding: {self.tokens} tokens, average exit (AE) "
                f"{self.average_exit():.2f} of {self.num_blocks} blocks; tokens per exit block: "
                f"{share}; decoder FLOPs saved {100 * self.saved('token'):.1f}% per token "
                f"({100 * self.saved('batch'):.1f}% as computed here, whole batches per block; "
                f"estimated from the layer shapes, full depth {per_token:.2f} MFLOPs per token)")


def _linear_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Linear))


class DepthAdaptiveDecoder(ConvDecoder):
    def __init__(self, args, dictionary, embed_tokens, encoder_dim: int, no_encoder_attn=False):
        super().__init__(args, dictionary, embed_tokens, no_encoder_attn=no_encoder_attn)
        if self.adaptive_softmax is not None:
            raise ValueError("--exit-classifiers: the Depth-Adaptive decoder needs a plain output "
                             "projection; it does not support --adaptive-softmax-cutoff")
        n = len(self.layers)
        if n < 2:
            raise ValueError(f"--exit-classifiers: needs at least 2 decoder blocks, got decoder_layers={n}")
        self.num_blocks = n
        self.exit_mode = args.exit_mode
        self.halting = build_halting(args.exit_mode, args.decoder_embed_dim, encoder_dim, n)
        self.block_classifiers = None
        if args.exit_classifiers == "per-block":
            if args.share_decoder_input_output_embed:
                raise ValueError("--exit-classifiers per-block: the output projection is tied to the "
                                 "embeddings, so every block's classifier would be the same; use 'shared'")
            dim = self.output_projection.in_features
            self.block_classifiers = nn.ModuleList(nn.Linear(dim, len(dictionary), bias=False) for _ in range(n - 1))
            for layer in self.block_classifiers:
                nn.init.normal_(layer.weight, mean=0, std=dim**-0.5)
        self.train_halting_only = bool(args.train_halting_only)
        self.thresholds = parse_thresholds(args.exit_threshold, n)
        self.forced_exit: Optional[int] = None  # every token leaves at this block (analysis, tests)
        self._q_cache: Optional[torch.Tensor] = None  # q(n) of the step being decoded
        self.stats = ExitStats(n)
        self._reported = False

    # ------------------------------------------------------------ checkpoints
    def upgrade_state_dict_named(self, state_dict, name):
        """Load a checkpoint that has no halting head: a plain model's, or one trained with another
        --exit-mode (fairseq calls this, in place, before every load).

        With --train-halting-only the head about to be trained is added to it as initialised
        here, which is what retrofitting a trained model needs; otherwise that would be an
        untrained head deciding the exits, so the load stops and says how to train one.
        """
        super().upgrade_state_dict_named(state_dict, name)
        prefix = f"{name}." if name else ""
        head = {} if self.halting is None else {f"{prefix}halting.{k}": v for k, v in self.halting.state_dict().items()}
        if not head or any(key in state_dict for key in head):
            return state_dict
        if not self.train_halting_only:
            raise ValueError(
                f"the checkpoint has no halting head for --exit-mode {self.exit_mode}: train one on it with "
                "--train-halting-only True (e.g. --finetune-from-model), or decode with --exit-mode confidence")
        if self.block_classifiers is not None and f"{prefix}block_classifiers.0.weight" not in state_dict:
            raise ValueError(
                "--train-halting-only with --exit-classifiers per-block: the checkpoint has no per-block "
                "classifiers, and they would stay at their random initialisation; train them first, or "
                "use --exit-classifiers shared (the output projection after every block)")
        state_dict.update(head)
        return state_dict

    # ------------------------------------------------------------ classifiers
    def exit_logits(self, n: int, h: torch.Tensor) -> torch.Tensor:
        """Logits of block n's classifier on its output h (B, T, C)."""
        if self.final_norm is not None:
            h = self.final_norm(h)
        if self.project_out is not None:
            h = self.project_out(h)
        if self.block_classifiers is not None and n < self.num_blocks - 1:
            return self.block_classifiers[n](h)
        return self.output_projection(h)

    def halting_log_q(self, block_outs, encoder_out, encoder_pad_mask):
        """log q(n) of the halting head, (B, N) or (B, T, N); None for 'confidence'."""
        if self.halting is None:
            return None
        if self.exit_mode == "sequence":
            return self.halting(encoder_out.transpose(0, 1), encoder_pad_mask)
        if self.exit_mode == "token-multinomial":
            return self.halting(block_outs[0])
        return self.halting(block_outs)

    # ------------------------------------------------------------ forward
    def forward(self, prev_output_tokens, encoder_out=None, incremental_state=None,
                features_only: bool = False, **unused):
        if incremental_state is None or self.training:
            return super().forward(prev_output_tokens, encoder_out, None if self.training else incremental_state,
                                   features_only=features_only)
        logits, x, extra = self._decode_step(prev_output_tokens, encoder_out, incremental_state)
        return (x if features_only else logits), extra

    def extract_features(self, prev_output_tokens, encoder_out=None, incremental_state=None, **unused):
        """Every block at full depth (training, scoring); extra["halting_log_q"] for the criterion."""
        x, extra = super().extract_features(prev_output_tokens, encoder_out, incremental_state)
        enc, enc_mask = self._encoder(encoder_out)
        extra["halting_log_q"] = self.halting_log_q(extra["inner_states"][1:], enc, enc_mask)
        return x, extra

    @staticmethod
    def _encoder(encoder_out):
        if encoder_out is None:
            return None, None
        enc = encoder_out["encoder_out"][0]
        mask = encoder_out["encoder_padding_mask"][0] if encoder_out.get("encoder_padding_mask") else None
        return enc, mask

    def _inputs(self, prev_output_tokens, incremental_state):
        tokens = prev_output_tokens if incremental_state is None else prev_output_tokens[:, -1:]
        pad_mask = tokens.eq(self.padding_idx)
        return self.embed(prev_output_tokens, incremental_state), (pad_mask if pad_mask.any() else None)

    def forward_with_exits(self, prev_output_tokens, encoder_out, exits: torch.Tensor):
        """Logits (B, T, V) when token t leaves at block exits[b, t] and its state is copied above.

        Block m runs on the whole sequence; a token that left below m keeps
        its state, which is also what block m's mixer reads at that position.
        """
        x, pad_mask = self._inputs(prev_output_tokens, None)
        enc, enc_mask = self._encoder(encoder_out)
        for m, layer in enumerate(self.layers):
            y, _ = layer(x, pad_mask, enc, enc_mask, None)
            x = torch.where((exits >= m).unsqueeze(-1), y, x)
        logits = x.new_zeros(*exits.shape, self.output_projection.out_features)
        for n in exits.unique().tolist():
            rows = exits == n
            logits[rows] = self.exit_logits(n, x[rows].unsqueeze(0)).squeeze(0)
        return logits

    # ------------------------------------------------------------ decoding
    def _leaves(self, m: int, x, enc, enc_mask):
        """Rows (B,) whose exit rule fires after block m (m < N-1)."""
        if self.forced_exit is not None:
            return torch.full(x.shape[:1], m >= self.forced_exit, dtype=torch.bool, device=x.device)
        tau = self.thresholds[m]
        if tau >= 1.0:
            return torch.zeros(x.shape[:1], dtype=torch.bool, device=x.device)
        if self.exit_mode == "confidence":
            probs = utils.softmax(self.exit_logits(m, x), dim=-1)
            return probs.max(dim=-1).values[:, -1] > tau
        if self.exit_mode == "token-geometric":
            return torch.sigmoid(self.halting.logits(x))[:, -1] > tau
        # sequence / token-multinomial: the first block where the cumulative q exceeds tau.
        log_q = self._q_cache
        return log_q.exp().cumsum(dim=-1)[..., m] > tau

    def _decode_step(self, prev_output_tokens, encoder_out, incremental_state):
        x, pad_mask = self._inputs(prev_output_tokens, incremental_state)
        enc, enc_mask = self._encoder(encoder_out)
        bsz = x.size(0)
        alive = torch.ones(bsz, dtype=torch.bool, device=x.device)
        exit_block = torch.full((bsz,), self.num_blocks - 1, dtype=torch.long, device=x.device)
        self._q_cache: Optional[torch.Tensor] = None
        if self.exit_mode == "sequence" and self.forced_exit is None:
            self._q_cache = self.halting(enc.transpose(0, 1), enc_mask)
        src_len = enc.size(0) if enc is not None else 0
        full = sum(self._block_cost(layer, src_len) for layer in self.layers) * bsz
        token = batch = 0.0
        attn = None
        for m, layer in enumerate(self.layers):
            block, state = self._block_cost(layer, src_len), self._state_cost(layer)
            n_alive = int(alive.sum())
            token += block * n_alive + state * (bsz - n_alive)
            if n_alive:
                need_attn = m == self.num_blocks - 1
                y, a = layer(x, pad_mask, enc, enc_mask, incremental_state, need_attn=need_attn)
                x = torch.where(alive.view(-1, 1, 1), y, x)
                attn = a if a is not None else attn
                batch += block * bsz
            else:
                layer.update_mixer_state(x, pad_mask, incremental_state)
                batch += state * bsz
            if m < self.num_blocks - 1 and n_alive:
                if self.exit_mode == "token-multinomial" and m == 0 and self.forced_exit is None:
                    self._q_cache = self.halting(x)[:, -1]
                leave = alive & self._leaves(m, x, enc, enc_mask)
                if self.forced_exit is None and self.thresholds[m] < 1.0:
                    decision = self._decision_cost(alive)
                    token, batch = token + decision, batch + decision
                exit_block[leave] = m
                alive &= ~leave
        logits = x.new_empty(bsz, 1, self.output_projection.out_features)
        for n in exit_block.unique().tolist():
            rows = exit_block == n
            logits[rows] = self.exit_logits(n, x[rows])
        self.stats.add(exit_block, full=full, token=token, batch=batch)
        self._register_report()
        return logits, x, {"attn": [attn], "inner_states": [x], "exit_block": exit_block}

    # Estimated decoder FLOPs per token: 2 per weight of every matrix product,
    # plus encoder-decoder attention's scores and sums over S source tokens.
    def _block_cost(self, layer, src_len: int) -> float:
        d = self.output_projection.in_features
        return 2.0 * _linear_weights(layer) + (4.0 * src_len * d if layer.encoder_attn is not None else 0.0)

    def _state_cost(self, layer) -> float:
        return 2.0 * _linear_weights(layer.conv)

    def _decision_cost(self, alive) -> float:
        """A confident exit costs a classifier, a geometric one a dot product; the others nothing per block."""
        rows, d = int(alive.sum()), self.output_projection.in_features
        if self.exit_mode == "confidence":
            return 2.0 * d * self.output_projection.out_features * rows
        return 2.0 * d * rows if self.exit_mode == "token-geometric" else 0.0

    def _register_report(self):
        # fairseq-generate logs into its results file and closes it before the
        # process ends; the totals go to stderr when it does.
        if not self._reported:
            self._reported = True
            atexit.register(lambda: print(self.stats.report(), file=sys.stderr, flush=True))
