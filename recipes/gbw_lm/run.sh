#!/usr/bin/env bash
# One Billion Word language model: DynamicConv / LightConv (Wu et al., 2019),
# from the r13output tarball to the test perplexity (the paper: 26.67, DynamicConv).
#
#   bash recipes/gbw_lm/run.sh --model dynamicconv --launcher slurm --nodes 4 --gpus 8 --partition gpu
#   bash recipes/gbw_lm/run.sh --dry-run            # every command, none run
#
# Training values: Wu et al. (2019, experimental setup), who follow Baevski &
# Auli (2019, sections 4.3-4.5): batches of single sentences, 2048 tokens per GPU on
# 32 GPUs (65K tokens per update), Nesterov momentum 0.99, gradients
# renormalised above 0.1, learning rate warmed up from 1e-7 to 1 over 16K
# updates then one cosine cycle, 975K updates, adaptive input and softmax
# with 60K / 100K / remaining bands (lightconv_plugin/models/lm_archs.py).
# Not published, our choices (also in --help):
#   --tokens-per-sample 1024   the longest sentence a sample holds (fairseq's
#                              default); longer training sentences are skipped
#                              with fairseq's warning; stage 6 fails if a test one was
#   --min-lr 1e-5              the cosine floor: Baevski & Auli's first-cycle floor
#   valid = held-out shard 1   any shard but the test one (0); --valid-shard
#   --no-epoch-checkpoints     80 epochs of 12K updates: only best and last are kept
#   evaluation batches         --max-tokens 2048, --softmax-batch 1024 (memory only)
set -euo pipefail
RECIPE_NAME=gbw_lm
RECIPE_DESCRIPTION="One Billion Word: train = the 99 training shards, test = news.en.heldout-00000-of-00050,
valid = another held-out shard; word level (dictionary: every train type seen at least 3 times, the
benchmark's ~793K-word vocabulary; --only-source); one sentence per sample; perplexity with
fairseq-eval-lm over every test word and each sentence's end-of-sentence token.
Not published, our choices: --tokens-per-sample 1024 (fairseq's default; stage 6 checks that every
test token was scored), cosine floor 1e-5 (Baevski & Auli's), valid = held-out shard 1 (not the test
shard), --no-epoch-checkpoints (disk), eval --max-tokens 2048 --softmax-batch 1024 (memory only).
Stage 3 logs the memory fairseq-preprocess's dictionary step needs for --workers N.
Stages: 1 download, 2 prepare, 3 binarize, 4 train, 5 average (checkpoint_best), 6 evaluate."
# shellcheck source=../common/lm.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/lm.sh"

recipe_options() {
    option valid_shard 1 "held-out shard (1..49) used as the valid set; 0 is the test set"
}

settings() {
    [[ $model == talk ]] && die "--model talk: Lioutas & Guo (2020) have no Billion Word setting; TaLK language model: recipes/wikitext103_lm"
    require_int valid_shard 1
    (( valid_shard <= 49 )) || die "--valid-shard must be 1..49 (0 is the test shard), got $valid_shard"
    PAPER_ARCH=${model}_lm_gbw
    MIN_COUNT=3 PREPARE_ARGS=(--valid-shard "$valid_shard")
    PAPER_MAX_TOKENS=2048 PAPER_WORLD=32 PAPER_UPDATE_FREQ=1 PAPER_PRECISION=fp16
    OPTIM_ARGS=(--sample-break-mode eos --tokens-per-sample 1024 --skip-invalid-size-inputs-valid-test
                --optimizer nag --momentum 0.99 --clip-norm 0.1 --weight-decay 0.0
                --lr-scheduler cosine --lr 1.0 --min-lr 1e-05 --warmup-updates 16000 --warmup-init-lr 1e-07
                --lr-period-updates 959000 --t-mult 1 --lr-shrink 1 --max-update 975000
                --criterion adaptive_loss --ddp-backend legacy_ddp --no-epoch-checkpoints)
    AVERAGE=best
    EVAL_ARGS=(--sample-break-mode eos --tokens-per-sample 1024 --max-tokens 2048 --softmax-batch 1024)
    if [[ $model == dynamicconv ]]; then
        PAPER_SCORE=26.67
        PAPER_SOURCE="Wu et al. 2019 (Billion Word results table, test perplexity); setup of Baevski & Auli 2019"
    else
        PAPER_SCORE=""
        PAPER_SOURCE="none: Wu et al. 2019 report only DynamicConv on Billion Word"
    fi
}

run_lm_recipe "$@"
