# shellcheck shell=bash
# Stages 1-6 of a translation recipe, given its settings. A recipe
# (recipes/<setting>/run.sh) sets RECIPE_NAME, sources this file and defines
# `settings`, which reads $model and sets the paper's values:
#
#   SRC TGT                  language codes
#   PAPER_ARCH               the named architecture for --model
#   JOINED_DICT              1: one dictionary (and --share-all-embeddings)
#   PREPROCESS_ARGS=()       extra fairseq-preprocess arguments
#   PAPER_MAX_TOKENS PAPER_WORLD PAPER_UPDATE_FREQ   the paper's batch
#   PAPER_PRECISION          fp16 | fp32
#   OPTIM_ARGS=()            optimizer, schedule, criterion, updates
#   AVERAGE                  "epochs N" (average the last N epoch checkpoints) or "best"
#   GEN_ARGS=()              beam, lenpen, ... for fairseq-generate
#   METRICS                  space-separated: tok_bleu compound_bleu sacrebleu
#   PAPER_SCORE PAPER_GPU_HOURS PAPER_SOURCE   for the results file
#
# and calls run_translation_recipe "$@".

# shellcheck source=recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/recipe.sh"

run_translation_recipe() {
    declare_recipe_options
    parse_options "$@"
    check_recipe_options
    settings
    arch=${arch:-$PAPER_ARCH}
    resolve_batch "$PAPER_MAX_TOKENS" "$PAPER_WORLD" "$PAPER_UPDATE_FREQ"
    read -r -a PRECISION_ARGS <<< "$(precision_args "$PAPER_PRECISION")"

    prepared=$workdir/data/prepared
    bin=$workdir/data/bin
    ckpt=$workdir/checkpoints/$model
    modeldir=$workdir/model/$model
    decode=$workdir/decode/$model
    results=$workdir/results
    logs=$workdir/logs
    COMMANDS_LOG=$logs/commands.txt
    init_stages "$workdir"
    (( DRY_RUN )) || mkdir -p "$logs"
    log "workdir $workdir, stages $stage..$stop_stage, model $model (arch $arch), launcher $launcher"

    run_stage 1 download --sig "downloads=$downloads" stage_download
    run_stage 2 prepare stage_prepare
    run_stage 3 binarize --sig "joined=$JOINED_DICT ${PREPROCESS_ARGS[*]}" stage_binarize
    run_stage 4 "train@$model" --sig "$(train_signature)" stage_train
    run_stage 5 "average@$model" --sig "$AVERAGE" stage_average
    run_stage 6 "evaluate@$model" --sig "${GEN_ARGS[*]} $METRICS" stage_evaluate
    if (( stage <= 6 && stop_stage >= 6 && !DRY_RUN )); then
        require_file "$results/$model.txt" "stage 6 (evaluate) produced no result"
        tail -n 1 "$results/$model.txt"
    fi
}

stage_download() {
    require_file "$COMMON_DIR/fetch.py"
    fetch_archives "$RECIPE_NAME"
}

stage_prepare() {
    require_dir "$downloads" "run stage 1 (download) first, or pass --downloads DIR"
    run_logged "$logs/stage2.prepare.log" '' \
        "$PYTHON" "$COMMON_DIR/prepare.py" "$RECIPE_NAME" --downloads "$downloads" \
        --out "$prepared" --workers "$workers"
    require_file "$prepared/prepare.json" "prepare.py wrote no prepare.json"
}

stage_binarize() {
    local split lang
    for split in train valid test; do
        for lang in "$SRC" "$TGT"; do
            require_file "$prepared/$split.$lang" "run stage 2 (prepare) first"
        done
    done
    require_cmd fairseq-preprocess "install fairseq (make setup)"
    local joined=()
    (( JOINED_DICT )) && joined=(--joined-dictionary)
    (( DRY_RUN )) || rm -rf "$bin"
    run_logged "$logs/stage3.binarize.log" 'Wrote preprocessed' \
        fairseq-preprocess --source-lang "$SRC" --target-lang "$TGT" \
        --trainpref "$prepared/train" --validpref "$prepared/valid" --testpref "$prepared/test" \
        --destdir "$bin" --workers "$workers" "${joined[@]}" "${PREPROCESS_ARGS[@]}"
}

train_signature() {
    echo "arch=$arch world=$(world_size) max_tokens=$MAX_TOKENS update_freq=$UPDATE_FREQ" \
         "precision=${PRECISION_ARGS[*]} seed=$seed ${OPTIM_ARGS[*]} ${TRAIN_ARGS[*]}"
}

stage_train() {
    require_file "$bin/dict.$SRC.txt" "run stage 3 (binarize) first"
    require_cmd fairseq-train "install fairseq (make setup)"
    local share=()
    (( JOINED_DICT )) && share=(--share-all-embeddings)
    launch_train "$logs/stage4.train.$model.log" "$ckpt" \
        "$bin" --user-dir "$USER_DIR" --task translation --source-lang "$SRC" --target-lang "$TGT" \
        --arch "$arch" "${share[@]}" --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" \
        "${PRECISION_ARGS[@]}" "${OPTIM_ARGS[@]}" \
        --log-format simple --log-interval 100 "${TRAIN_ARGS[@]}"
    (( DRY_RUN )) || require_file "$ckpt/checkpoint_last.pt" "fairseq-train wrote no checkpoint"
}

# stage 5: the checkpoint to evaluate, and the model folder that
# fairseq-interactive and the hub interface load.
stage_average() {
    require_file "$ckpt/checkpoint_last.pt" "run stage 4 (train) first"
    (( DRY_RUN )) || mkdir -p "$modeldir"
    case $AVERAGE in
        "epochs "*)
            run_logged "$logs/stage5.average.$model.log" '' \
                "$PYTHON" "$COMMON_DIR/average_checkpoints.py" --inputs "$ckpt" \
                --num-epoch-checkpoints "${AVERAGE#epochs }" --output "$modeldir/model.pt" ;;
        best)
            require_file "$ckpt/checkpoint_best.pt" "fairseq-train wrote no checkpoint_best.pt"
            run_logged "$logs/stage5.average.$model.log" '' cp "$ckpt/checkpoint_best.pt" "$modeldir/model.pt" ;;
        *) die "settings: AVERAGE='$AVERAGE' (expected 'epochs N' or 'best')" ;;
    esac
    run_logged "$logs/stage5.model.$model.log" '' \
        cp "$bin/dict.$SRC.txt" "$bin/dict.$TGT.txt" "$prepared/bpecodes" "$modeldir/"
}

stage_evaluate() {
    require_file "$modeldir/model.pt" "run stage 5 (average) first"
    require_file "$bin/test.$SRC-$TGT.$SRC.bin" "run stage 3 (binarize) first"
    local device=()
    (( cpu )) && device=(--cpu --num-workers 0)
    (( DRY_RUN )) || mkdir -p "$decode" "$results"
    run_logged "$logs/stage6.generate.$model.log" '' \
        fairseq-generate "$bin" --user-dir "$USER_DIR" --task translation \
        --source-lang "$SRC" --target-lang "$TGT" --path "$modeldir/model.pt" \
        --gen-subset test --batch-size 128 --remove-bpe "${GEN_ARGS[@]}" "${device[@]}" \
        --results-path "$decode"
    run_logged "$logs/stage6.score.$model.log" '' \
        "$PYTHON" "$COMMON_DIR/evaluate.py" --generate-output "$decode/generate-test.txt" \
        --prepared "$prepared" --src "$SRC" --tgt "$TGT" --metrics $METRICS \
        --paper "$PAPER_SCORE" --paper-source "$PAPER_SOURCE" --checkpoint "$modeldir/model.pt" \
        --commands "$logs" --scope "$model" --json-out "$results/$model.json" --text-out "$results/$model.txt"
}

# The papers' schedules, in fairseq 0.12's flags: the 2019 cosine scheduler's
# --max-lr (peak) / --lr (floor) / --min-lr (stop) are now --lr / --min-lr /
# --stop-min-lr.
inverse_sqrt_optim() {  # MAX_UPDATE: the IWSLT schedule of both papers
    OPTIM_ARGS=(--optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0 --weight-decay 0.0001
                --lr 0.0005 --lr-scheduler inverse_sqrt --warmup-updates 4000 --warmup-init-lr 1e-07
                --stop-min-lr 1e-09 --max-update "$1"
                --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --keep-last-epochs 10)
}

cosine_optim() {  # MAX_UPDATE PERIOD: the WMT big-model schedule of both papers
    OPTIM_ARGS=(--optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0 --weight-decay 0.0
                --lr 0.001 --min-lr 1e-07 --stop-min-lr 1e-09 --lr-scheduler cosine
                --warmup-updates 10000 --warmup-init-lr 1e-07 --lr-shrink 1 --t-mult 1
                --lr-period-updates "$2" --max-update "$1"
                --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --keep-last-epochs 10)
}

no_talk_setting() {
    die "--model talk: Lioutas & Guo (2020) have no $RECIPE_NAME setting; TaLK recipes: iwslt14_de_en, wmt16_en_de, wmt14_en_fr"
}
