# shellcheck shell=bash
# Stages 1-6 of a language-model recipe (fairseq --task language_modeling on
# text binarised with fairseq-preprocess --only-source), given its settings.
# A recipe (recipes/<setting>/run.sh) sets RECIPE_NAME (and DEFAULT_MODEL if
# not dynamicconv), may define `recipe_options` (declares its own options),
# sources this file and defines `settings`, which reads $model and sets the
# paper's values:
#
#   PAPER_ARCH               the named architecture for --model
#   MIN_COUNT                dictionary: train word types seen fewer times map to <unk> (1: every type)
#   PREPARE_ARGS=()          extra lm_prepare.py arguments
#   PAPER_MAX_TOKENS PAPER_WORLD PAPER_UPDATE_FREQ   the paper's batch
#   PAPER_PRECISION          fp16 | fp32
#   OPTIM_ARGS=()            samples, optimizer, schedule, criterion, updates
#   AVERAGE                  "best" (checkpoint_best.pt) or "epochs N" (average the last N)
#   EVAL_ARGS=()             fairseq-eval-lm: sample breaks, tokens per sample, context window
#   PAPER_SCORE PAPER_SOURCE the paper's test perplexity ("" if it reports none) and where from
#
# and calls run_lm_recipe "$@". Stage 6 fails unless fairseq-eval-lm scored
# every token of the test set (eval_lm_report.py); its last line is the
# perplexity.

# shellcheck source=recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/recipe.sh"

run_lm_recipe() {
    declare_recipe_options
    [[ -n ${DEFAULT_MODEL:-} ]] && set_option_default model "$DEFAULT_MODEL"
    option eval_args "" "extra fairseq-eval-lm arguments, appended last (word-split), e.g. '--context-window 1024'"
    if declare -F recipe_options >/dev/null; then recipe_options; fi
    parse_options "$@"
    check_recipe_options
    [[ -z $gen_args ]] || die "--gen-args '$gen_args': a language model is not decoded; give fairseq-eval-lm flags with --eval-args"
    read -r -a EXTRA_EVAL_ARGS <<< "$eval_args"
    settings
    arch=${arch:-$PAPER_ARCH}
    resolve_batch "$PAPER_MAX_TOKENS" "$PAPER_WORLD" "$PAPER_UPDATE_FREQ"
    read -r -a PRECISION_ARGS <<< "$(precision_args "$PAPER_PRECISION")"

    prepared=$workdir/data/prepared
    bin=$workdir/data/bin
    ckpt=$workdir/checkpoints/$model
    modeldir=$workdir/model/$model
    results=$workdir/results
    logs=$workdir/logs
    COMMANDS_LOG=$logs/commands.txt
    init_stages "$workdir"
    (( DRY_RUN )) || mkdir -p "$logs"
    log "workdir $workdir, stages $stage..$stop_stage, model $model (arch $arch), launcher $launcher"

    run_stage 1 download --sig "downloads=$downloads" stage_download
    run_stage 2 prepare --sig "min_count=$MIN_COUNT ${PREPARE_ARGS[*]}" stage_prepare
    run_stage 3 binarize --sig "min_count=$MIN_COUNT" stage_binarize
    run_stage 4 "train@$model" --sig "$(train_signature)" stage_train
    run_stage 5 "average@$model" --sig "$AVERAGE" stage_average
    run_stage 6 "evaluate@$model" --sig "${EVAL_ARGS[*]} ${EXTRA_EVAL_ARGS[*]}" stage_evaluate
    if (( stage <= 6 && stop_stage >= 6 && !DRY_RUN )); then
        require_file "$results/$model.txt" "stage 6 (evaluate) produced no result"
        tail -n 1 "$results/$model.txt"
    fi
}

stage_download() {
    require_file "$COMMON_DIR/fetch.py"
    fetch_archives "$RECIPE_NAME" "$logs/stage1.download.log"
}

stage_prepare() {
    require_dir "$downloads" "run stage 1 (download) first, or pass --downloads DIR"
    run_logged "$logs/stage2.prepare.log" '^lm_prepare' \
        "$PYTHON" "$COMMON_DIR/lm_prepare.py" "$RECIPE_NAME" --downloads "$downloads" \
        --out "$prepared" --min-count "$MIN_COUNT" "${PREPARE_ARGS[@]}"
    require_file "$prepared/prepare.json" "lm_prepare.py wrote no prepare.json"
}

# prepared_field KEY.KEY...: a value of stage 2's prepare.json.
prepared_field() {
    "$PYTHON" - "$prepared/prepare.json" "$1" <<'EOF'
import json, sys
value = json.load(open(sys.argv[1], encoding="utf-8"))
for key in sys.argv[2].split("."):
    value = value[key]
print(value)
EOF
}

# The dictionary step is what needs memory on a cluster node: each of the
# --workers processes counts the word types of its part of train.txt and
# pickles its counts back, and the main process holds all of them before it
# merges. ~150 bytes per type: measured for a Python Counter of words (123 B)
# with room for fairseq's Dictionary entries.
dictionary_memory_note() {
    if (( DRY_RUN )); then
        log "stage 3: the memory the dictionary step needs is estimated from stage 2's type count when the stage runs"
        return 0
    fi
    local types kept
    types=$(prepared_field vocabulary.train_types)
    kept=$(prepared_field vocabulary.kept_types)
    log "stage 3 memory: the dictionary step counts $types train word types in $workers worker process(es):" \
        "up to $(( (2 * workers + 1) * types * 150 / 1048576 )) MiB ((2 x $workers + 1) x $types types x 150 B);" \
        "binarising then holds the $kept-type dictionary in $((workers + 1)) processes" \
        "($(( (workers + 1) * kept * 150 / 1048576 )) MiB). Ask a cluster node for that much more than" \
        "the text buffers, or lower --workers."
}

stage_binarize() {
    local split threshold=()
    for split in train valid test; do
        require_file "$prepared/$split.txt" "run stage 2 (prepare) first"
    done
    require_file "$prepared/prepare.json" "run stage 2 (prepare) first"
    require_cmd fairseq-preprocess "install fairseq (make setup)"
    (( MIN_COUNT > 1 )) && threshold=(--thresholdsrc "$MIN_COUNT")
    dictionary_memory_note
    (( DRY_RUN )) || rm -rf "$bin"
    run_logged "$logs/stage3.binarize.log" 'Wrote preprocessed|types' \
        fairseq-preprocess --only-source --trainpref "$prepared/train.txt" \
        --validpref "$prepared/valid.txt" --testpref "$prepared/test.txt" \
        --destdir "$bin" --workers "$workers" "${threshold[@]}"
    (( DRY_RUN )) || check_dictionary
}

# fairseq pads dict.txt with "madeupwordNNNN 0" lines to a multiple of 8.
check_dictionary() {
    local kept in_dict
    kept=$(prepared_field vocabulary.kept_types)
    in_dict=$(awk '!($1 ~ /^madeupword[0-9]+$/ && $2 == 0)' "$bin/dict.txt" | wc -l)
    (( in_dict == kept )) \
        || die "stage 3: $bin/dict.txt has $in_dict word types, but stage 2 counted $kept train types seen at least $MIN_COUNT time(s)"
    log "dictionary: $in_dict word types (train types seen at least $MIN_COUNT time(s); others map to <unk>)"
}

train_signature() {
    echo "arch=$arch world=$(world_size) max_tokens=$MAX_TOKENS update_freq=$UPDATE_FREQ" \
         "precision=${PRECISION_ARGS[*]} seed=$seed ${OPTIM_ARGS[*]} ${TRAIN_ARGS[*]}"
}

stage_train() {
    require_file "$bin/dict.txt" "run stage 3 (binarize) first"
    require_cmd fairseq-train "install fairseq (make setup)"
    launch_train "$logs/stage4.train.$model.log" "$ckpt" \
        "$bin" --user-dir "$USER_DIR" --task language_modeling --arch "$arch" \
        --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" "${PRECISION_ARGS[@]}" "${OPTIM_ARGS[@]}" \
        --log-format simple --log-interval 100 "${TRAIN_ARGS[@]}"
    (( DRY_RUN )) || require_file "$ckpt/checkpoint_last.pt" "fairseq-train wrote no checkpoint"
}

# stage 5: the checkpoint to evaluate, with the dictionary, in the model
# folder that fairseq-eval-lm and the hub interface load.
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
    run_logged "$logs/stage5.model.$model.log" '' cp "$bin/dict.txt" "$modeldir/"
}

stage_evaluate() {
    require_file "$modeldir/model.pt" "run stage 5 (average) first"
    require_file "$bin/test.bin" "run stage 3 (binarize) first"
    require_file "$prepared/prepare.json" "run stage 2 (prepare) first"
    require_cmd fairseq-eval-lm "install fairseq (make setup)"
    local device=()
    (( cpu )) && device=(--cpu --num-workers 0)
    (( DRY_RUN )) || mkdir -p "$results"
    run_logged "$logs/stage6.eval-lm.$model.log" 'Evaluated|Perplexity' \
        fairseq-eval-lm "$bin" --user-dir "$USER_DIR" --path "$modeldir/model.pt" --gen-subset test \
        "${EVAL_ARGS[@]}" "${device[@]}" "${EXTRA_EVAL_ARGS[@]}"
    run_logged "$logs/stage6.report.$model.log" '.' \
        "$PYTHON" "$COMMON_DIR/eval_lm_report.py" --eval-log "$logs/stage6.eval-lm.$model.log" \
        --prepared "$prepared" --split test --paper "$PAPER_SCORE" --paper-source "$PAPER_SOURCE" \
        --checkpoint "$modeldir/model.pt" --commands "$logs" --scope "$model" \
        --json-out "$results/$model.json" --text-out "$results/$model.txt"
}
