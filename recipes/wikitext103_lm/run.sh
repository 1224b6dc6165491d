#!/usr/bin/env bash
# WikiText-103 language model: TaLK (Lioutas & Guo, 2020), from
# wikitext-103-v1.zip to the test perplexity (the paper: 23.3).
#
#   bash recipes/wikitext103_lm/run.sh --launcher torchrun --gpus 8
#   bash recipes/wikitext103_lm/run.sh --dry-run            # every command, none run
#
# The architecture (talk_lm_wikitext103) is the authors' talkconv_lm_wiki103,
# built like fairseq's transformer_lm_wiki103 (Baevski & Auli, 2019): tied
# adaptive input and softmax, cutoffs 20000,60000. The authors publish no LM
# training command, so training and evaluation follow the published command
# of that model (fairseq examples/language_model/README.adaptive_inputs.md
# and the 2019 language_model README's evaluation): Nesterov, clip 0.1, lr 1
# warmed up from 1e-7 over 16K updates, cosine (period 270K, t-mult 2, shrink
# 0.75, floor 1e-4), 286K updates of 3072 tokens x 3 on 8 GPUs, blocks of 3072
# tokens ignoring sentence boundaries; evaluation on complete sentences with a
# 2560-token context window, the last 512 tokens of each window scored.
# Not published, our choices (also in --help):
#   fp16                       the paper's hardware and every TaLK command trained in fp16
#   --no-epoch-checkpoints     ~200 epochs: only best and last are kept
set -euo pipefail
RECIPE_NAME=wikitext103_lm
DEFAULT_MODEL="talk"
RECIPE_DESCRIPTION="WikiText-103: wiki.{train,valid,test}.tokens as they are (headings, blank lines, @-@ kept),
word level, every train type in the dictionary (--only-source); TaLK with the published training command
of fairseq's adaptive-input WikiText-103 model (the authors publish none for the LM); perplexity with
fairseq-eval-lm, context window 2560, over every test token and each line's end-of-sentence token.
Not published, our choices: fp16 (as every TaLK command), --no-epoch-checkpoints (disk).
Stages: 1 download, 2 prepare, 3 binarize, 4 train, 5 average (checkpoint_best), 6 evaluate."
# shellcheck source=../common/lm.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/lm.sh"

settings() {
    [[ $model == talk ]] || die "--model $model: Wu et al. (2019) have no WikiText-103 setting; their language model: recipes/gbw_lm (dynamicconv, lightweightconv)"
    PAPER_ARCH=talk_lm_wikitext103
    MIN_COUNT=1 PREPARE_ARGS=()
    PAPER_MAX_TOKENS=3072 PAPER_WORLD=8 PAPER_UPDATE_FREQ=3 PAPER_PRECISION=fp16
    OPTIM_ARGS=(--sample-break-mode none --tokens-per-sample 3072 --skip-invalid-size-inputs-valid-test
                --optimizer nag --clip-norm 0.1
                --lr-scheduler cosine --lr 1.0 --min-lr 0.0001 --stop-min-lr 1e-09
                --warmup-updates 16000 --warmup-init-lr 1e-07
                --lr-period-updates 270000 --t-mult 2 --lr-shrink 0.75 --max-update 286000
                --criterion adaptive_loss --ddp-backend legacy_ddp --no-epoch-checkpoints)
    AVERAGE=best
    EVAL_ARGS=(--sample-break-mode complete --tokens-per-sample 3072 --context-window 2560
               --max-tokens 3072 --softmax-batch 1024)
    PAPER_SCORE=23.3
    PAPER_SOURCE="Lioutas & Guo 2020 (WikiText-103 test perplexity); training command of fairseq's transformer_lm_wiki103 (Baevski & Auli 2019)"
}

run_lm_recipe "$@"
