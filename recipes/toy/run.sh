#!/usr/bin/env bash
# Toy translation recipe: synthetic corpus -> fairseq-preprocess -> train a
# small DynamicConv (or LightConv / TaLK) model on CPU -> beam search ->
# sacreBLEU.  `make demo` runs it with the defaults; see README.md.
#
#   bash recipes/toy/run.sh                         # everything
#   bash recipes/toy/run.sh --stage 4               # from stage 4 on
#   bash recipes/toy/run.sh --model lightweightconv --workdir /tmp/lw
#
# Stages: 1 corpus, 2 preprocess, 3 train, 4 generate, 5 score.
set -euo pipefail

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$recipe_dir/../.." && pwd)
RECIPE_NAME=toy
RECIPE_DESCRIPTION="Synthetic toy translation task (src -> tgt, word mapping + verb-final
reordering + agreement), small convolutional seq2seq model trained on CPU.
Stages: 1 corpus, 2 preprocess, 3 train, 4 generate, 5 score (prints BLEU last)."
# shellcheck source=../common/stages.sh
source "$repo_dir/recipes/common/stages.sh"

option stage 1 "first stage to run"
option stop_stage 5 "last stage to run"
option workdir "$recipe_dir/exp" "work directory: data, checkpoints, logs, results"
option model dynamicconv "dynamicconv | lightweightconv | talk (arch \${model}_toy)"
option arch "" "fairseq --arch (default: \${model}_toy)"
option user_dir auto "fairseq --user-dir (auto: the installed lightconv_plugin; none: no user dir)"
option seed 1 "seed of the corpus and of training"
option nproc "$(nproc)" "CPU threads (OMP/MKL)"
option train_size 40000 "training sentence pairs"
option valid_size 500 "validation sentence pairs"
option test_size 500 "test sentence pairs"
option max_epoch 3 "fairseq-train --max-epoch (0: no limit)"
option max_update 0 "fairseq-train --max-update (0: no limit)"
option max_tokens 4096 "fairseq-train --max-tokens"
option lr 0.003 "peak learning rate (Adam, inverse_sqrt schedule)"
option warmup_updates 100 "learning-rate warm-up updates"
option dropout 0.0 "dropout (the corpus is large and clean: none needed)"
option train_args "" "extra fairseq-train arguments (word-split)"
option beam 5 "beam size"
option min_bleu 70 "fail (exit 1) if the test BLEU is below this"
parse_options "$@"

require_int stage 1
require_int stop_stage 1
require_int seed 0
require_int nproc 1
require_int train_size 1
require_int valid_size 1
require_int test_size 1
require_int max_epoch 0
require_int max_update 0
require_int max_tokens 1
require_int warmup_updates 0
require_int beam 1
require_number lr
require_number dropout
require_number min_bleu
(( max_epoch > 0 || max_update > 0 )) || die "set --max-epoch or --max-update (both are 0)"
arch=${arch:-${model}_toy}

# fairseq CLIs come from PATH (the Makefile puts .venv/bin first); when run by
# hand without the venv activated, use the repository's .venv if there is one.
if ! command -v fairseq-train >/dev/null 2>&1 && [[ -x $repo_dir/.venv/bin/fairseq-train ]]; then
    export PATH="$repo_dir/.venv/bin:$PATH"
    log "using $repo_dir/.venv/bin (fairseq-train was not on PATH)"
fi
PYTHON=${PYTHON:-python}
setup_threads "$nproc"

mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
raw=$workdir/data/raw
bin=$workdir/data/bin
ckpt=$workdir/checkpoints
decode=$workdir/decode
logs=$workdir/logs
init_stages "$workdir"

# The plugin registers the ${model}_toy architectures (and makes checkpoints
# loadable by fairseq-generate under torch >= 2.6).
case $user_dir in
    none) user_dir_args=() ;;
    auto) user_dir_args=(--user-dir "$(find_plugin_user_dir)") ;;
    *) [[ -d $user_dir ]] || die "--user-dir $user_dir: no such directory"
       user_dir_args=(--user-dir "$user_dir") ;;
esac
read -r -a train_args_array <<< "$train_args"  # word-split, no globbing

stage_corpus() {
    require_file "$recipe_dir/make_corpus.py"
    require_cmd "$PYTHON"
    run_logged "$logs/stage1.corpus.log" '' \
        "$PYTHON" "$recipe_dir/make_corpus.py" --outdir "$raw" --seed "$seed" \
        --train-size "$train_size" --valid-size "$valid_size" --test-size "$test_size"
    cat "$logs/stage1.corpus.log" >&2
}

stage_preprocess() {
    local split side
    for split in train valid test; do
        for side in src tgt; do
            require_file "$raw/$split.$side" "run stage 1 (corpus) first"
        done
    done
    require_cmd fairseq-preprocess "install fairseq (make setup)"
    rm -rf "$bin"
    run_logged "$logs/stage2.preprocess.log" 'Wrote preprocessed' \
        fairseq-preprocess --source-lang src --target-lang tgt \
        --trainpref "$raw/train" --validpref "$raw/valid" --testpref "$raw/test" \
        --destdir "$bin" --workers "$nproc"
}

stage_train() {
    local f
    for f in dict.src.txt dict.tgt.txt train.src-tgt.src.bin train.src-tgt.tgt.bin \
             valid.src-tgt.src.bin valid.src-tgt.tgt.bin; do
        require_file "$bin/$f" "run stage 2 (preprocess) first"
    done
    require_cmd fairseq-train "install fairseq (make setup)"
    # fairseq-train resumes from $ckpt/checkpoint_last.pt when it exists, so an
    # interrupted training continues where it stopped.
    run_logged "$logs/stage3.train.log" '\| (train|valid) \| epoch|num. shared model params|Error' \
        fairseq-train "$bin" "${user_dir_args[@]}" \
        --task translation --source-lang src --target-lang tgt \
        --arch "$arch" --cpu --num-workers 0 --seed "$seed" \
        --optimizer adam --adam-betas '(0.9, 0.98)' --clip-norm 0.0 \
        --lr "$lr" --lr-scheduler inverse_sqrt --warmup-updates "$warmup_updates" \
        --warmup-init-lr 1e-07 --dropout "$dropout" \
        --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
        --max-tokens "$max_tokens" --max-epoch "$max_epoch" --max-update "$max_update" \
        --save-dir "$ckpt" --no-epoch-checkpoints \
        --log-format simple --log-interval 50 "${train_args_array[@]}"
    require_file "$ckpt/checkpoint_best.pt" "fairseq-train wrote no checkpoint"
}

stage_generate() {
    require_file "$ckpt/checkpoint_best.pt" "run stage 3 (train) first"
    require_file "$bin/test.src-tgt.src.bin" "run stage 2 (preprocess) first"
    require_cmd fairseq-generate "install fairseq (make setup)"
    rm -rf "$decode"
    mkdir -p "$decode"
    run_logged "$logs/stage4.generate.log" '' \
        fairseq-generate "$bin" "${user_dir_args[@]}" \
        --task translation --source-lang src --target-lang tgt \
        --path "$ckpt/checkpoint_best.pt" --gen-subset test \
        --beam "$beam" --nbest 1 --batch-size 128 \
        --cpu --num-workers 0 --seed "$seed" --results-path "$decode"
    require_file "$decode/generate-test.txt" "fairseq-generate wrote no output"
    tail -n 1 "$decode/generate-test.txt" >&2
}

stage_score() {
    require_file "$decode/generate-test.txt" "run stage 4 (generate) first"
    require_file "$raw/test.tgt" "run stage 1 (corpus) first"
    require_file "$repo_dir/recipes/common/score_generate.py"
    "$PYTHON" "$repo_dir/recipes/common/score_generate.py" \
        --generate-output "$decode/generate-test.txt" --ref "$raw/test.tgt" \
        --hyp-out "$decode/hyp.test.tgt" --json-out "$decode/bleu.json" \
        > "$decode/bleu.txt"
    require_file "$decode/bleu.txt"
}

log "workdir $workdir, stages $stage..$stop_stage, arch $arch, $nproc threads"
run_stage 1 corpus --sig "seed=$seed train=$train_size valid=$valid_size test=$test_size" \
    stage_corpus
run_stage 2 preprocess stage_preprocess
run_stage 3 train --sig "arch=$arch seed=$seed max_epoch=$max_epoch max_update=$max_update max_tokens=$max_tokens lr=$lr warmup=$warmup_updates dropout=$dropout train_args=$train_args" \
    stage_train
run_stage 4 generate --sig "beam=$beam" stage_generate
run_stage 5 score stage_score

# The test BLEU is the last line of output (also when stage 5 was skipped
# because it was already done), and a BLEU below --min-bleu fails the recipe.
if (( stage <= 5 && stop_stage >= 5 )); then
    require_file "$decode/bleu.txt" "stage 5 (score) produced no result"
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
