# shellcheck shell=bash
# Stages 1-6 of a summarisation recipe: the translation recipe's stages
# (translation.sh: download, binarize, train, average, and its settings()
# contract) with the two that differ replaced:
#
#   2 prepare   summarize_prepare.py: stories -> {train,valid,test}.{article,summary}
#               (tokenised, lowercased, article cut, joint BPE) and test.raw.summary
#   6 evaluate  decode_test (BPE removed, no detokeniser: the hypotheses stay
#               in the training data's form), then rouge.py: ROUGE-1/2/Lsum F1 with
#               bootstrap 95% intervals against test.raw.summary
#
# settings() sets, besides translation.sh's variables, PAPER_ROUGE="R1/R2/L"
# (the paper's F1 x 100; its L is compared with rougeLsum, see rouge.py).
# There is no released summarisation model, so --pretrained is refused, and
# --depth-adaptive (a translation option) too.

# shellcheck source=translation.sh
source "$(dirname "${BASH_SOURCE[0]}")/translation.sh"

run_summarization_recipe() {
    local a
    for a in "$@"; do
        [[ $a == --pretrained || $a == --pretrained=* ]] \
            && die "--pretrained: neither paper released a $RECIPE_NAME model; train one (stages 1-6)"
        [[ $a == --depth-adaptive || $a == --depth-adaptive=* ]] \
            && die "--depth-adaptive: its stage 6 scores BLEU over exit thresholds; it is for the translation recipes"
    done
    run_translation_recipe "$@"
}

stage_prepare() {
    require_dir "$downloads" "run stage 1 (download) first, or pass --downloads DIR"
    run_logged "$logs/stage2.prepare.log" '' \
        "$PYTHON" "$COMMON_DIR/summarize_prepare.py" "$RECIPE_NAME" --downloads "$downloads" \
        --out "$prepared" --workers "$workers"
    require_file "$prepared/prepare.json" "summarize_prepare.py wrote no prepare.json"
}

stage_evaluate() {
    require_file "$modeldir/model.pt" "run stage 5 (average) first"
    require_file "$bin/test.$SRC-$TGT.$SRC.bin" "run stage 3 (binarize) first"
    require_file "$prepared/test.raw.$TGT" "run stage 2 (prepare) first"
    (( DRY_RUN )) || mkdir -p "$decode" "$results"
    decode_test "$bin" "$scope"
    run_logged "$logs/stage6.score.$scope.log" '' \
        "$PYTHON" "$COMMON_DIR/rouge.py" --ref "$prepared/test.raw.$TGT" --generate "$decode/generate-test.txt" \
        --workers "$workers" --paper "$PAPER_ROUGE" --paper-source "$PAPER_SOURCE" \
        --checkpoint "$modeldir/model.pt" --commands "$logs" --scope "$scope" \
        --json-out "$results/$scope.json" --text-out "$results/$scope.txt"
}
