#!/usr/bin/env bash
# Toy translation recipe: synthetic corpus -> fairseq-preprocess -> train a
# small DynamicConv (or LightConv / TaLK) model on CPU -> beam search ->
# sacreBLEU.  `make demo` runs it with the defaults; see README.md.  It has the
# interface of every recipe (recipes/common/recipe.sh), launchers included:
#
#   bash recipes/toy/run.sh                         # everything
#   bash recipes/toy/run.sh --stage 4               # from stage 4 on
#   bash recipes/toy/run.sh --model lightweightconv --workdir /tmp/lw
#   bash recipes/toy/run.sh --launcher torchrun --gpus 2   # two CPU processes
#
# Stages: 1 download (makes the corpus), 2 prepare (checks it), 3 binarize,
# 4 train, 5 average (picks checkpoint_best), 6 evaluate.
set -euo pipefail

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RECIPE_NAME=toy
RECIPE_MODELS="dynamicconv lightweightconv talk attention"
RECIPE_DESCRIPTION="Synthetic toy translation task (src -> tgt, word mapping + verb-final
reordering + agreement), small convolutional seq2seq model trained on CPU.
Stages: 1 download (corpus), 2 prepare, 3 binarize, 4 train, 5 average, 6 evaluate (prints BLEU last)."
# shellcheck source=../common/recipe.sh
source "$recipe_dir/../common/recipe.sh"

declare_recipe_options
set_option_default workdir "$recipe_dir/exp"
set_option_default cpu 1
set_option_default workers "$(nproc)"
option nproc "$(nproc)" "CPU threads (OMP/MKL) of a single-process run"
option train_size 40000 "training sentence pairs"
option valid_size 500 "validation sentence pairs"
option test_size 500 "test sentence pairs"
option max_epoch 3 "fairseq-train --max-epoch (0: no limit)"
option max_update 0 "fairseq-train --max-update (0: no limit)"
option lr 0.003 "peak learning rate (Adam, inverse_sqrt schedule)"
option warmup_updates 100 "learning-rate warm-up updates"
option dropout 0.0 "dropout (the corpus is large and clean: none needed)"
option beam 5 "beam size"
option min_bleu 70 "fail (exit 1) if the test BLEU is below this"
parse_options "$@"
check_recipe_options
require_int nproc 1
require_int train_size 1
require_int valid_size 1
require_int test_size 1
require_int max_epoch 0
require_int max_update 0
require_int warmup_updates 0
require_int beam 1
require_number lr
require_number dropout
require_number min_bleu
(( max_epoch > 0 || max_update > 0 )) || die "set --max-epoch or --max-update (both are 0)"
arch=${arch:-${model}_toy}
# One process uses every thread; several share the cores.
(( $(world_size) == 1 )) && setup_threads "$nproc"
# The toy's own batch: 4096 tokens in one process, whatever the launcher.
resolve_batch 4096 1 1
# Its own precision is fp32; --precision bf16 (CPU or GPU) or fp16 (GPU) overrides it.
read -r -a PRECISION_ARGS <<< "$(precision_args fp32)"

raw=$workdir/data/raw
bin=$workdir/data/bin
ckpt=$workdir/checkpoints/$model
modeldir=$workdir/model/$model
decode=$workdir/decode/$model
logs=$workdir/logs
COMMANDS_LOG=$logs/commands.txt
init_stages "$workdir"

stage_corpus() {
    require_file "$recipe_dir/make_corpus.py"
    run_logged "$logs/stage1.corpus.log" '' \
        "$PYTHON" "$recipe_dir/make_corpus.py" --outdir "$raw" --seed "$seed" \
        --train-size "$train_size" --valid-size "$valid_size" --test-size "$test_size"
    (( DRY_RUN )) || cat "$logs/stage1.corpus.log" >&2
}

# The corpus is made tokenised: preparing it is checking that both sides align.
stage_prepare() {
    local split n_src n_tgt
    for split in train valid test; do
        require_file "$raw/$split.src" "run stage 1 (download) first"
        require_file "$raw/$split.tgt" "run stage 1 (download) first"
        (( DRY_RUN )) && continue
        n_src=$(wc -l < "$raw/$split.src")
        n_tgt=$(wc -l < "$raw/$split.tgt")
        (( n_src == n_tgt )) || die "$raw/$split: $n_src source lines but $n_tgt target lines"
        log "$split: $n_src sentence pairs"
    done
}

stage_binarize() {
    local split side
    for split in train valid test; do
        for side in src tgt; do
            require_file "$raw/$split.$side" "run stage 1 (download) first"
        done
    done
    require_cmd fairseq-preprocess "install fairseq (make setup)"
    (( DRY_RUN )) || rm -rf "$bin"
    run_logged "$logs/stage3.binarize.log" 'Wrote preprocessed' \
        fairseq-preprocess --source-lang src --target-lang tgt \
        --trainpref "$raw/train" --validpref "$raw/valid" --testpref "$raw/test" \
        --destdir "$bin" --workers "$workers"
}

stage_train() {
    local f
    for f in dict.src.txt dict.tgt.txt train.src-tgt.src.bin train.src-tgt.tgt.bin \
             valid.src-tgt.src.bin valid.src-tgt.tgt.bin; do
        require_file "$bin/$f" "run stage 3 (binarize) first"
    done
    require_cmd fairseq-train "install fairseq (make setup)"
    launch_train "$logs/stage4.train.$model.log" "$ckpt" \
        "$bin" --user-dir "$USER_DIR" --task translation --source-lang src --target-lang tgt \
        --arch "$arch" --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0 \
        --lr "$lr" --lr-scheduler inverse_sqrt --warmup-updates "$warmup_updates" \
        --warmup-init-lr 1e-07 --dropout "$dropout" \
        --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
        --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" "${PRECISION_ARGS[@]}" \
        --max-epoch "$max_epoch" --max-update "$max_update" --no-epoch-checkpoints \
        --log-format simple --log-interval 50 "${TRAIN_ARGS[@]}"
    require_file "$ckpt/checkpoint_best.pt" "fairseq-train wrote no checkpoint"
}

stage_average() {
    require_file "$ckpt/checkpoint_best.pt" "run stage 4 (train) first"
    (( DRY_RUN )) || mkdir -p "$modeldir"
    run_logged "$logs/stage5.average.$model.log" '' \
        cp "$ckpt/checkpoint_best.pt" "$bin/dict.src.txt" "$bin/dict.tgt.txt" "$modeldir/"
}

stage_evaluate() {
    require_file "$modeldir/checkpoint_best.pt" "run stage 5 (average) first"
    require_file "$bin/test.src-tgt.src.bin" "run stage 3 (binarize) first"
    require_cmd fairseq-generate "install fairseq (make setup)"
    (( DRY_RUN )) || { rm -rf "$decode"; mkdir -p "$decode"; }
    run_logged "$logs/stage6.generate.$model.log" '' \
        fairseq-generate "$bin" --user-dir "$USER_DIR" \
        --task translation --source-lang src --target-lang tgt \
        --path "$modeldir/checkpoint_best.pt" --gen-subset test \
        --beam "$beam" --nbest 1 --batch-size 128 \
        --cpu --num-workers 0 --seed "$seed" --results-path "$decode" "${EXTRA_GEN_ARGS[@]}"
    run_logged "$logs/stage6.score.$model.log" '' \
        "$PYTHON" "$COMMON_DIR/score_generate.py" \
        --generate-output "$decode/generate-test.txt" --ref "$raw/test.tgt" \
        --hyp-out "$decode/hyp.test.tgt" --json-out "$decode/bleu.json"
    (( DRY_RUN )) || grep '^BLEU = ' "$logs/stage6.score.$model.log" | tail -n 1 > "$decode/bleu.txt"
}

log "workdir $workdir, stages $stage..$stop_stage, arch $arch, launcher $launcher"
run_stage 1 download --sig "seed=$seed train=$train_size valid=$valid_size test=$test_size" stage_corpus
run_stage 2 prepare stage_prepare
run_stage 3 binarize stage_binarize
run_stage 4 "train@$model" --sig "arch=$arch world=$(world_size) seed=$seed max_epoch=$max_epoch max_update=$max_update max_tokens=$MAX_TOKENS update_freq=$UPDATE_FREQ precision=${PRECISION_ARGS[*]} lr=$lr warmup=$warmup_updates dropout=$dropout train_args=$train_args" \
    stage_train
run_stage 5 "average@$model" stage_average
run_stage 6 "evaluate@$model" --sig "beam=$beam $gen_args" stage_evaluate

# The test BLEU is the last line of output (also when stage 6 was skipped
# because it was already done), and a BLEU below --min-bleu fails the recipe.
if (( stage <= 6 && stop_stage >= 6 && !DRY_RUN )); then
    require_file "$decode/bleu.txt" "stage 6 (evaluate) produced no result"
    bleu_line=$(tail -n 1 "$decode/bleu.txt")
    bleu=${bleu_line#BLEU = }
    [[ $bleu =~ ^[0-9]+([.][0-9]+)?$ ]] || die "cannot parse BLEU from $decode/bleu.txt: '$bleu_line'"
    log "test set: $(sed -n 's/^ *"result": "\(.*\)",$/\1/p' "$decode/bleu.json")"
    log "hypotheses: $decode/hyp.test.tgt, references: $raw/test.tgt"
    status=0
    if ! awk -v b="$bleu" -v m="$min_bleu" 'BEGIN { exit !(b + 0 >= m + 0) }'; then
        log "ERROR: test BLEU $bleu is below --min-bleu $min_bleu"
        status=1
    fi
    echo "BLEU = $bleu"
    exit "$status"
fi
