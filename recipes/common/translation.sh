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
#   DA_PAPER DA_PAPER_SOURCE  (optional) the Depth-Adaptive paper's "BLEU@AE"
#
# and calls run_translation_recipe "$@".
#
# --pretrained NAME takes another path (run_pretrained_recipe, below): a
# model released by Wu et al. (2019) is downloaded with its binarised test set,
# converted to this plugin's model, decoded with the paper's GEN_ARGS and
# scored; there is nothing to prepare, binarize or train.

# shellcheck source=recipe.sh
source "$(dirname "${BASH_SOURCE[0]}")/recipe.sh"

run_translation_recipe() {
    declare_recipe_options
    declare_pretrained_options
    declare_depth_adaptive_options
    parse_options "$@"
    check_recipe_options
    if [[ -n $pretrained ]]; then
        run_pretrained_recipe
        return
    fi
    settings
    arch=${arch:-$PAPER_ARCH}
    # A run's stages 4-6 and files are named by its scope: the model, or the
    # model with its Depth-Adaptive exit rule.
    scope=$model
    if [[ $depth_adaptive != none ]]; then
        depth_adaptive_settings
        scope=$model-da-$depth_adaptive
    fi
    resolve_batch "$PAPER_MAX_TOKENS" "$PAPER_WORLD" "$PAPER_UPDATE_FREQ"
    read -r -a PRECISION_ARGS <<< "$(precision_args "$PAPER_PRECISION")"

    prepared=$workdir/data/prepared
    bin=$workdir/data/bin
    ckpt=$workdir/checkpoints/$scope
    modeldir=$workdir/model/$scope
    decode=$workdir/decode/$scope
    results=$workdir/results
    logs=$workdir/logs
    COMMANDS_LOG=$logs/commands.txt
    init_stages "$workdir"
    (( DRY_RUN )) || mkdir -p "$logs"
    log "workdir $workdir, stages $stage..$stop_stage, model $scope (arch $arch), launcher $launcher"

    run_stage 1 download --sig "downloads=$downloads" stage_download
    run_stage 2 prepare stage_prepare
    run_stage 3 binarize --sig "joined=$JOINED_DICT ${PREPROCESS_ARGS[*]}" stage_binarize
    run_stage 4 "train@$scope" --sig "$(train_signature)" stage_train
    run_stage 5 "average@$scope" --sig "$AVERAGE" stage_average
    if [[ $depth_adaptive == none ]]; then
        run_stage 6 "evaluate@$scope" --sig "${GEN_ARGS[*]} ${EXTRA_GEN_ARGS[*]} $METRICS" stage_evaluate
    else
        run_stage 6 "evaluate@$scope" --sig "${GEN_ARGS[*]} ${EXTRA_GEN_ARGS[*]} $METRICS $exit_thresholds" \
            stage_evaluate_depth_adaptive
    fi
    if (( stage <= 6 && stop_stage >= 6 && !DRY_RUN )); then
        require_file "$results/$scope.txt" "stage 6 (evaluate) produced no result"
        tail -n 1 "$results/$scope.txt"
    fi
}

stage_download() {
    require_file "$COMMON_DIR/fetch.py"
    fetch_archives "$RECIPE_NAME" "$logs/stage1.download.log"
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
    launch_train "$logs/stage4.train.$scope.log" "$ckpt" \
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
            run_logged "$logs/stage5.average.$scope.log" '' \
                "$PYTHON" "$COMMON_DIR/average_checkpoints.py" --inputs "$ckpt" \
                --num-epoch-checkpoints "${AVERAGE#epochs }" --output "$modeldir/model.pt" ;;
        best)
            require_file "$ckpt/checkpoint_best.pt" "fairseq-train wrote no checkpoint_best.pt"
            run_logged "$logs/stage5.average.$scope.log" '' cp "$ckpt/checkpoint_best.pt" "$modeldir/model.pt" ;;
        *) die "settings: AVERAGE='$AVERAGE' (expected 'epochs N' or 'best')" ;;
    esac
    run_logged "$logs/stage5.model.$scope.log" '' \
        cp "$bin/dict.$SRC.txt" "$bin/dict.$TGT.txt" "$prepared/bpecodes" "$modeldir/"
}

stage_evaluate() {
    require_file "$modeldir/model.pt" "run stage 5 (average) first"
    require_file "$bin/test.$SRC-$TGT.$SRC.bin" "run stage 3 (binarize) first"
    (( DRY_RUN )) || mkdir -p "$decode" "$results"
    decode_test "$bin" "$scope"
    run_logged "$logs/stage6.score.$scope.log" '' \
        "$PYTHON" "$COMMON_DIR/evaluate.py" --generate-output "$decode/generate-test.txt" \
        --prepared "$prepared" --src "$SRC" --tgt "$TGT" --metrics $METRICS \
        --paper "$PAPER_SCORE" --paper-source "$PAPER_SOURCE" --checkpoint "$modeldir/model.pt" \
        --commands "$logs" --scope "$scope" --json-out "$results/$scope.json" --text-out "$results/$scope.txt"
}

# decode_test DATA_DIR LOGNAME [ARGS...]: stage 6's fairseq-generate of the test
# split with $modeldir/model.pt into $decode; BPE removed, no detokeniser (each
# metric takes the text from there).
decode_test() {
    local device=()
    (( cpu )) && device=(--cpu --num-workers 0)
    run_logged "$logs/stage6.generate.$2.log" '' \
        fairseq-generate "$1" --user-dir "$USER_DIR" --task translation \
        --source-lang "$SRC" --target-lang "$TGT" --path "$modeldir/model.pt" \
        --gen-subset test --batch-size 128 --remove-bpe "${GEN_ARGS[@]}" "${device[@]}" "${EXTRA_GEN_ARGS[@]}" \
        "${@:3}" --results-path "$decode"
}

# ------------------------------------------------------- --depth-adaptive
# The Depth-Adaptive decoder (Elbayad et al., 2020) on any model of the
# recipe: one classifier after each decoder block, trained aligned (every
# block's label-smoothed loss, uniform weights) with the halting head
# supervised by the token-correctness oracle; stage 6 decodes the test set at
# each of --exit-thresholds and reports BLEU against the average exit.

declare_depth_adaptive_options() {
    option depth_adaptive none "Depth-Adaptive decoder, by its exit rule: none | token-geometric | token-multinomial | sequence | confidence"
    option exit_thresholds "1.0 0.9 0.8 0.7 0.6 0.5 0.4 0.3" "with --depth-adaptive: the exit thresholds stage 6 decodes at (1.0: full depth, the reference)"
}

depth_adaptive_settings() {
    require_choice depth_adaptive none token-geometric token-multinomial sequence confidence
    [[ -n $pretrained ]] && die "--depth-adaptive: a released model has no exit classifiers; train one (no --pretrained)"
    local t full=0 i
    for t in $exit_thresholds; do
        [[ $t =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--exit-thresholds: expected numbers >= 0, got '$t' in '$exit_thresholds'"
        awk -v t="$t" 'BEGIN { exit !(t >= 1) }' && full=1
    done
    (( full )) || die "--exit-thresholds '$exit_thresholds': include 1.0, the full-depth decoder every other threshold is compared with"
    for i in "${!OPTIM_ARGS[@]}"; do
        [[ ${OPTIM_ARGS[i]} == label_smoothed_cross_entropy ]] && OPTIM_ARGS[i]=depth_adaptive_cross_entropy
    done
    OPTIM_ARGS+=(--exit-classifiers shared --exit-mode "$depth_adaptive" --da-training aligned
                 --halting-oracle token-correctness --oracle-sigma 1 --halting-alpha 1)
}

stage_evaluate_depth_adaptive() {
    require_file "$modeldir/model.pt" "run stage 5 (average) first"
    require_file "$bin/test.$SRC-$TGT.$SRC.bin" "run stage 3 (binarize) first"
    local t runs=() out=$decode
    (( DRY_RUN )) || mkdir -p "$results"
    for t in $exit_thresholds; do
        local decode=$out/threshold-$t
        (( DRY_RUN )) || { rm -rf "$decode"; mkdir -p "$decode"; }
        decode_test "$bin" "$scope.t$t" --model-overrides "{'exit_threshold': '$t'}"
        run_logged "$logs/stage6.score.$scope.t$t.log" '' \
            "$PYTHON" "$COMMON_DIR/evaluate.py" --generate-output "$decode/generate-test.txt" \
            --prepared "$prepared" --src "$SRC" --tgt "$TGT" --metrics $METRICS \
            --json-out "$decode/score.json" --text-out "$decode/score.txt"
        runs+=("$t=$decode/score.json=$logs/stage6.generate.$scope.t$t.log")
    done
    run_logged "$logs/stage6.report.$scope.log" '' \
        "$PYTHON" "$COMMON_DIR/depth_adaptive_report.py" "${runs[@]}" \
        --paper "${DA_PAPER:-}" --paper-source "${DA_PAPER_SOURCE:-}" --checkpoint "$modeldir/model.pt" \
        --commands "$logs" --scope "$scope" --json-out "$results/$scope.json" --text-out "$results/$scope.txt"
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

cosine_optim() {  # MAX_UPDATE PERIOD [WEIGHT_DECAY]: the WMT big-model schedule of both papers
    OPTIM_ARGS=(--optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0 --weight-decay "${3:-0.0}"
                --lr 0.001 --min-lr 1e-07 --stop-min-lr 1e-09 --lr-scheduler cosine
                --warmup-updates 10000 --warmup-init-lr 1e-07 --lr-shrink 1 --t-mult 1
                --lr-period-updates "$2" --max-update "$1"
                --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --keep-last-epochs 10)
}

no_talk_setting() {
    die "--model talk: Lioutas & Guo (2020) have no $RECIPE_NAME setting; TaLK recipes: iwslt14_de_en, wmt16_en_de, wmt14_en_fr"
}

# ------------------------------------------------------------- --pretrained
# A released model: stage 1 fetches its archive and test set (fetch.py
# --pretrained), 2 extracts both, 3 and 4 do not apply, 5 converts the
# checkpoint into <workdir>/model/NAME (the folder fairseq-interactive and the
# hub interface load), 6 decodes the released test set and scores it. Its
# sentinels, logs and commands.txt live apart from the training path's
# (<workdir>/pretrained, <workdir>/logs/pretrained), so the two never
# invalidate each other's stages in a shared work directory.

declare_pretrained_options() {
    option pretrained "" "a released model (fairseq hub name, e.g. dynamicconv.glu.wmt16.en-de): download, convert, evaluate; no training"
    flag unsafe_load "--pretrained: let the converter unpickle any object of the checkpoint (only for archives you trust)"
}

# pretrained_release: the release's fields (datasets.RELEASES, through fetch.py)
# as PT_* variables; a name the setting did not release is one error line.
pretrained_release() {
    local out key value
    out=$("$PYTHON" "$COMMON_DIR/fetch.py" "$RECIPE_NAME" --downloads "$downloads" \
          --pretrained "$pretrained" --describe 2>&1) || die "$(tail -n 1 <<< "${out#fetch.py: error: }")"
    while IFS='=' read -r key value; do
        case $key in
            model) PT_MODEL=$value ;;
            archive) PT_ARCHIVE=$value ;;
            test_set) PT_TEST_SET=$value ;;
            in_paper) PT_IN_PAPER=$value ;;
            ref_archive) PT_REF_ARCHIVE=$value ;;
            ref_member) PT_REF_MEMBER=$value ;;
        esac
    done <<< "$out"
    [[ -n ${PT_MODEL:-} && -n ${PT_ARCHIVE:-} && -n ${PT_TEST_SET:-} ]] \
        || die "fetch.py --describe gave no release fields for $pretrained: $out"
}

run_pretrained_recipe() {
    pretrained_release
    model=$PT_MODEL
    settings
    # The binarised test set has tokenised references only (T- lines), so the
    # metrics on detokenised text need the raw reference of the release.
    PT_METRICS=("${METRICS%% *}")
    if [[ -n $PT_REF_ARCHIVE && $METRICS == *sacrebleu* && ${PT_METRICS[0]} != sacrebleu ]]; then
        PT_METRICS+=(sacrebleu)
    fi
    [[ ${PT_METRICS[0]} == sacrebleu && -z $PT_REF_ARCHIVE ]] \
        && die "--pretrained $pretrained: sacreBLEU needs a raw reference and the release names none"
    PT_PAPER_SCORE=$PAPER_SCORE PT_PAPER_SOURCE=$PAPER_SOURCE
    if (( !PT_IN_PAPER )); then
        PT_PAPER_SCORE=""
        PT_PAPER_SOURCE="none: Wu et al. 2019 report no number for this configuration of $model on $RECIPE_NAME"
    fi

    local root=$workdir/pretrained/$pretrained
    release=$root/release
    testset=$root/test-set
    modeldir=$workdir/model/$pretrained
    decode=$workdir/decode/$pretrained
    results=$workdir/results
    logs=$workdir/logs/pretrained
    COMMANDS_LOG=$logs/commands.txt
    init_stages "$workdir/pretrained"
    (( DRY_RUN )) || mkdir -p "$logs"
    log "workdir $workdir, stages $stage..$stop_stage, released model $pretrained (model $model)"

    run_stage 1 "download@$pretrained" --sig "downloads=$downloads" stage_pretrained_download
    run_stage 2 "extract@$pretrained" --sig "downloads=$downloads" stage_pretrained_extract
    skip_stage 3 binarize "the released test set comes binarised with the model's dictionaries"
    skip_stage 4 train "--pretrained uses the released model"
    run_stage 5 "convert@$pretrained" --sig "unsafe_load=$unsafe_load" stage_pretrained_convert
    run_stage 6 "evaluate@$pretrained" --sig "${GEN_ARGS[*]} ${EXTRA_GEN_ARGS[*]} ${PT_METRICS[*]}" stage_pretrained_evaluate
    if (( stage <= 6 && stop_stage >= 6 && !DRY_RUN )); then
        require_file "$results/$pretrained.txt" "stage 6 (evaluate) produced no result"
        tail -n 1 "$results/$pretrained.txt"
    fi
}

skip_stage() {  # N NAME WHY: a stage of the training path that has nothing to do here
    (( $1 < stage || $1 > stop_stage )) && return 0
    if (( DRY_RUN )); then
        echo "# stage $1 ($2): skipped, $3"
    else
        log "skipping stage $1 ($2): $3"
    fi
}

stage_pretrained_download() {
    require_file "$COMMON_DIR/fetch.py"
    fetch_archives "$RECIPE_NAME" "$logs/stage1.download.$pretrained.log" --pretrained "$pretrained"
}

# extract_top_folder ARCHIVE DEST: the archive's one top folder (the released
# layout, which fairseq's hub loader also relies on) becomes DEST.
extract_top_folder() {
    local archive=$1 dest=$2 tmp=$2.extract
    require_file "$archive" "run stage 1 (download) first"
    (( DRY_RUN )) || rm -rf "$tmp" "$dest"
    (( DRY_RUN )) || mkdir -p "$tmp"
    run_logged "$logs/stage2.extract.$pretrained.log" '' tar -xf "$archive" -C "$tmp"
    if (( DRY_RUN )); then
        echo "# then: mv $(printf '%q' "$tmp")/<its one top folder> $(printf '%q' "$dest")"
        return 0
    fi
    local tops=("$tmp"/* "$tmp"/.[!.]*)
    local found=()
    local t
    for t in "${tops[@]}"; do [[ -e $t ]] && found+=("$t"); done
    if (( ${#found[@]} != 1 )) || [[ ! -d ${found[0]} ]]; then
        die "$archive: expected one top folder (the released layout), found: ${found[*]##*/}"
    fi
    mv "${found[0]}" "$dest"
    rmdir "$tmp"
}

stage_pretrained_extract() {
    require_cmd tar
    extract_top_folder "$downloads/$PT_ARCHIVE" "$release"
    extract_top_folder "$downloads/$PT_TEST_SET" "$testset"
    (( DRY_RUN )) && return 0
    local f
    for f in model.pt "dict.$SRC.txt" "dict.$TGT.txt"; do
        require_file "$release/$f" "$PT_ARCHIVE lacks $f"
    done
    [[ -s $release/bpecodes || -s $release/code ]] || die "$PT_ARCHIVE has no BPE codes (bpecodes or code)"
    for f in "dict.$SRC.txt" "dict.$TGT.txt"; do
        require_file "$testset/$f" "$PT_TEST_SET lacks $f"
        # Same symbols in the same order is what makes the ids agree; the counts do not matter.
        cmp -s <(cut -d' ' -f1 "$release/$f") <(cut -d' ' -f1 "$testset/$f") \
            || die "$f differs between $PT_ARCHIVE and $PT_TEST_SET: the test set was not made for this model"
    done
    # fairseq's translation task reads a split binarised in either direction.
    [[ -s $testset/test.$SRC-$TGT.$SRC.bin || -s $testset/test.$TGT-$SRC.$SRC.bin ]] \
        || die "$PT_TEST_SET has no binarised test split (test.$SRC-$TGT.$SRC.bin)"
    if [[ -n $PT_REF_ARCHIVE ]]; then
        require_file "$downloads/$PT_REF_ARCHIVE" "run stage 1 (download) first"
    fi
}

stage_pretrained_convert() {
    require_file "$release/model.pt" "run stage 2 (extract) first"
    local codes=$release/bpecodes unsafe=()
    # fairseq's hub loader takes either name; the model folder always says bpecodes.
    (( DRY_RUN )) || [[ -s $codes ]] || codes=$release/code
    (( unsafe_load )) && unsafe=(--unsafe-load)
    (( DRY_RUN )) || { rm -rf "$modeldir"; mkdir -p "$modeldir"; }
    run_logged "$logs/stage5.convert.$pretrained.log" 'verified|error' \
        "$PYTHON" "$REPO_DIR/scripts/convert_fairseq_checkpoint.py" "${unsafe[@]}" \
        "$release/model.pt" "$modeldir/model.pt"
    run_logged "$logs/stage5.model.$pretrained.log" '' \
        cp "$release/dict.$SRC.txt" "$release/dict.$TGT.txt" "$modeldir/"
    run_logged "$logs/stage5.codes.$pretrained.log" '' cp "$codes" "$modeldir/bpecodes"
}

stage_pretrained_evaluate() {
    require_file "$modeldir/model.pt" "run stage 5 (convert) first"
    require_file "$testset/dict.$SRC.txt" "run stage 2 (extract) first"
    require_cmd fairseq-generate "install fairseq (make setup)"
    local reference=()
    [[ " ${PT_METRICS[*]} " == *" sacrebleu "* ]] \
        && reference=(--raw-ref-archive "$downloads/$PT_REF_ARCHIVE" --raw-ref-member "$PT_REF_MEMBER")
    (( DRY_RUN )) || { rm -rf "$decode"; mkdir -p "$decode" "$results"; }
    decode_test "$testset" "$pretrained"
    run_logged "$logs/stage6.score.$pretrained.log" '' \
        "$PYTHON" "$COMMON_DIR/evaluate.py" --generate-output "$decode/generate-test.txt" \
        --src "$SRC" --tgt "$TGT" --metrics "${PT_METRICS[@]}" "${reference[@]}" \
        --paper "$PT_PAPER_SCORE" --paper-source "$PT_PAPER_SOURCE" --checkpoint "$modeldir/model.pt" \
        --commands "$logs" --scope "$pretrained" \
        --json-out "$results/$pretrained.json" --text-out "$results/$pretrained.txt"
}
