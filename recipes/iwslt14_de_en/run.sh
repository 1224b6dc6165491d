#!/usr/bin/env bash
# IWSLT14 German -> English: LightConv / DynamicConv (Wu et al., 2019) and TaLK
# (Lioutas & Guo, 2020), from de-en.tgz to the paper's tokenised BLEU on one GPU.
#
#   bash recipes/iwslt14_de_en/run.sh --model dynamicconv
#   bash recipes/iwslt14_de_en/run.sh --model talk --launcher slurm --partition gpu
#   bash recipes/iwslt14_de_en/run.sh --dry-run            # every command, none run
set -euo pipefail
RECIPE_NAME=iwslt14_de_en
RECIPE_DESCRIPTION="IWSLT14 De-En: lowercased, Moses-tokenised, joint BPE 10k; test = dev2010 + TEDX.dev2012
+ tst2010-2012. Stages: 1 download, 2 prepare, 3 binarize, 4 train, 5 average, 6 evaluate."
# shellcheck source=../common/translation.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/translation.sh"

settings() {
    SRC=de TGT=en JOINED_DICT=0 PREPROCESS_ARGS=()
    PAPER_MAX_TOKENS=4000 PAPER_WORLD=1 PAPER_UPDATE_FREQ=1
    AVERAGE="epochs 10" METRICS="tok_bleu"
    case $model in
        lightweightconv|dynamicconv)
            PAPER_ARCH=${model}_iwslt_de_en PAPER_PRECISION=fp32
            inverse_sqrt_optim 50000
            GEN_ARGS=(--beam 4 --lenpen 1)
            PAPER_SCORE=$([[ $model == dynamicconv ]] && echo 35.2 || echo 34.8)
            PAPER_SOURCE="Wu et al. 2019 (Table 3); fairseq examples/pay_less_attention_paper" ;;
        talk)
            PAPER_ARCH=talk_iwslt_de_en PAPER_PRECISION=fp16
            inverse_sqrt_optim 85000
            OPTIM_ARGS+=(--max-epoch 52)
            GEN_ARGS=(--beam 5 --lenpen 1.6)
            PAPER_SCORE=35.5
            PAPER_SOURCE="Lioutas & Guo 2020 (Table 2); the authors' published commands" ;;
    esac
}

run_translation_recipe "$@"
