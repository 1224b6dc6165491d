#!/usr/bin/env bash
# WMT14 English -> French (big models): LightConv / DynamicConv (Wu et al., 2019)
# and TaLK (Lioutas & Guo, 2020); newstest2014, tokenised BLEU (the papers')
# and detokenised sacreBLEU.
#
#   bash recipes/wmt14_en_fr/run.sh --model dynamicconv --launcher torchrun --gpus 8
set -euo pipefail
RECIPE_NAME=wmt14_en_fr
RECIPE_DESCRIPTION="WMT14 En-Fr: Moses-normalised and tokenised (-a), joint BPE 40k, joined dictionary;
test newstest2014. Stages: 1 download, 2 prepare, 3 binarize, 4 train, 5 average, 6 evaluate."
# shellcheck source=../common/translation.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/translation.sh"

settings() {
    SRC=en TGT=fr JOINED_DICT=1 PREPROCESS_ARGS=(--thresholdsrc 0 --thresholdtgt 0)
    PAPER_WORLD=8 PAPER_PRECISION=fp16
    METRICS="tok_bleu sacrebleu"
    case $model in
        lightweightconv|dynamicconv)
            PAPER_ARCH=${model}_wmt14_en_fr_big
            PAPER_MAX_TOKENS=3584 PAPER_UPDATE_FREQ=16
            cosine_optim 30000 70000
            AVERAGE=best GEN_ARGS=(--beam 5 --lenpen 0.9)
            PAPER_SCORE=$([[ $model == dynamicconv ]] && echo 43.2 || echo 43.1)
            PAPER_SOURCE="Wu et al. 2019 (Table 1); fairseq examples/pay_less_attention_paper" ;;
        talk)
            PAPER_ARCH=talk_wmt14_en_fr_big
            PAPER_MAX_TOKENS=1800 PAPER_UPDATE_FREQ=32
            cosine_optim 80000 70000
            AVERAGE="epochs 10" GEN_ARGS=(--beam 6 --lenpen 0.65)
            PAPER_SCORE=43.2
            PAPER_SOURCE="Lioutas & Guo 2020 (Table 1); the authors' published commands" ;;
    esac
}

run_translation_recipe "$@"
