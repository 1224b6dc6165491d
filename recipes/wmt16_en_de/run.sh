#!/usr/bin/env bash
# WMT16 English -> German (big models): LightConv / DynamicConv (Wu et al., 2019)
# and TaLK (Lioutas & Guo, 2020); newstest2014, compound-split BLEU (the
# papers') and detokenised sacreBLEU. Uses Google's preprocessed
# wmt16_en_de.tar.gz when it is in --downloads, else the raw WMT16 corpora.
#
#   bash recipes/wmt16_en_de/run.sh --model dynamicconv --launcher torchrun --gpus 8
#   bash recipes/wmt16_en_de/run.sh --launcher slurm --nodes 2 --gpus 8 --partition gpu --time 2-00:00:00
set -euo pipefail
RECIPE_NAME=wmt16_en_de
RECIPE_DESCRIPTION="WMT16 En-De: Moses-tokenised, joint BPE 32k, joined dictionary; valid newstest2013,
test newstest2014. Stages: 1 download, 2 prepare, 3 binarize, 4 train, 5 average, 6 evaluate."
# shellcheck source=../common/translation.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/translation.sh"

settings() {
    SRC=en TGT=de JOINED_DICT=1 PREPROCESS_ARGS=(--nwordssrc 32768 --nwordstgt 32768)
    PAPER_MAX_TOKENS=3584 PAPER_WORLD=8 PAPER_UPDATE_FREQ=16 PAPER_PRECISION=fp16
    METRICS="compound_bleu sacrebleu"
    case $model in
        lightweightconv|dynamicconv)
            PAPER_ARCH=${model}_wmt16_en_de_big
            cosine_optim 30000 20000
            AVERAGE=best GEN_ARGS=(--beam 5 --lenpen 0.5)
            PAPER_SCORE=$([[ $model == dynamicconv ]] && echo 29.7 || echo 28.9)
            PAPER_SOURCE="Wu et al. 2019 (Table 1); fairseq examples/pay_less_attention_paper" ;;
        talk)
            PAPER_ARCH=talk_wmt16_en_de_big
            cosine_optim 30243 20000
            AVERAGE="epochs 10" GEN_ARGS=(--beam 4 --lenpen 0.35)
            PAPER_SCORE=29.6
            PAPER_SOURCE="Lioutas & Guo 2020 (Table 1); the authors' published commands" ;;
    esac
}

run_translation_recipe "$@"
