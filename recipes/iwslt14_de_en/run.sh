#!/usr/bin/env bash
# IWSLT14 German -> English: LightConv / DynamicConv (Wu et al., 2019) and TaLK
# (Lioutas & Guo, 2020), from de-en.tgz to the paper's tokenised BLEU on one GPU.
#
#   bash recipes/iwslt14_de_en/run.sh --model dynamicconv
#   bash recipes/iwslt14_de_en/run.sh --model talk --launcher slurm --partition gpu
#   bash recipes/iwslt14_de_en/run.sh --model attention --depth-adaptive token-geometric
#   bash recipes/iwslt14_de_en/run.sh --dry-run            # every command, none run
set -euo pipefail
RECIPE_NAME=iwslt14_de_en
RECIPE_MODELS="dynamicconv lightweightconv talk attention"
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
        attention)
            # The Transformer baseline of both papers, with fairseq's published
            # IWSLT command (examples/translation): 4096 tokens, tied decoder
            # embeddings, beam 5; the schedule as the convolutions'.
            PAPER_ARCH=attention_iwslt_de_en PAPER_PRECISION=fp32 PAPER_MAX_TOKENS=4096
            inverse_sqrt_optim 50000
            OPTIM_ARGS+=(--share-decoder-input-output-embed)
            GEN_ARGS=(--beam 5 --lenpen 1)
            PAPER_SCORE=34.4
            PAPER_SOURCE="Wu et al. 2019 (Table 3, self-attention baseline)" ;;
    esac
    # Depth-Adaptive Transformer (Elbayad et al. 2020) on IWSLT14 De-En: a
    # token-level exit rule at 1.42 blocks of 6 on average.
    DA_PAPER="" DA_PAPER_SOURCE="Elbayad et al. 2020 report IWSLT14 De-En for the Transformer only"
    if [[ $model == attention ]]; then
        DA_PAPER=34.73@1.42 DA_PAPER_SOURCE="Elbayad et al. 2020 (IWSLT14 De-En, token-level exits)"
    fi
}

run_translation_recipe "$@"
