#!/usr/bin/env bash
# WMT17 Chinese -> English (big models): LightConv / DynamicConv (Wu et al., 2019);
# newstest2017, detokenised sacreBLEU. The UN corpus needs a registration: put
# its archive in --downloads yourself (stage 1 says which file and where).
#
#   bash recipes/wmt17_zh_en/run.sh --model dynamicconv --launcher torchrun --gpus 8
set -euo pipefail
RECIPE_NAME=wmt17_zh_en
RECIPE_DESCRIPTION="WMT17 Zh-En: News Commentary v12, UN v1.0 (manual download), CWMT; jieba-segmented
Chinese, Moses-tokenised English; test newstest2017. Stages: 1 download, 2 prepare, 3 binarize,
4 train, 5 average, 6 evaluate."
# shellcheck source=../common/translation.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/translation.sh"

settings() {
    [[ $model == talk ]] && no_talk_setting
    SRC=zh TGT=en JOINED_DICT=0 PREPROCESS_ARGS=()
    PAPER_MAX_TOKENS=3584 PAPER_WORLD=8 PAPER_UPDATE_FREQ=16 PAPER_PRECISION=fp16
    METRICS="sacrebleu"
    PAPER_ARCH=${model}_wmt17_zh_en_big
    # Wu et al. publish no Zh-En command; they train it like En-De big
    # (section 5.1), which is what is used here.
    cosine_optim 30000 20000
    AVERAGE=best GEN_ARGS=(--beam 5 --lenpen 1)
    PAPER_SCORE=$([[ $model == dynamicconv ]] && echo 24.4 || echo 24.3)
    PAPER_SOURCE="Wu et al. 2019 (Table 2, sacreBLEU)"
}

run_translation_recipe "$@"
