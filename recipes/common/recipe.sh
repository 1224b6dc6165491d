# shellcheck shell=bash
# The interface every paper recipe shares (recipes/<setting>/run.sh), on top
# of stages.sh: common options, stage 1 (download), the training launchers
# (local, torchrun, slurm), the effective batch, precision, dry runs.
#
#   source "$repo_dir/recipes/common/recipe.sh"
#   RECIPE_MODELS="a b"               # the --model choices (default: dynamicconv
#                                     # lightweightconv talk), the first the default
#   declare_recipe_options            # --stage ... --launcher ... (see --help)
#   option ...                        # the recipe's own options
#   parse_options "$@"
#   check_recipe_options              # validates, sets DRY_RUN, PATH, threads
#
# Stage numbers are the same in every recipe: 1 download, 2 prepare,
# 3 binarize, 4 train, 5 average, 6 evaluate.

# shellcheck source=stages.sh
source "$(dirname "${BASH_SOURCE[0]}")/stages.sh"
COMMON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$COMMON_DIR/../.." && pwd)

declare_recipe_options() {
    option stage 1 "first stage to run (1 download, 2 prepare, 3 binarize, 4 train, 5 average, 6 evaluate)"
    option stop_stage 6 "last stage to run"
    option workdir "exp/$RECIPE_NAME" "work directory: data, checkpoints, model, logs, results"
    read -r -a MODEL_CHOICES <<< "${RECIPE_MODELS:-dynamicconv lightweightconv talk}"
    local models="${MODEL_CHOICES[*]}"
    option model "${MODEL_CHOICES[0]}" "${models// / | }"
    option arch "" "fairseq --arch (default: the paper's for --model)"
    option train_args "" "extra fairseq-train arguments, appended last (word-split)"
    option gen_args "" "extra fairseq-generate arguments, appended last (word-split), e.g. '--max-len-b 50'"
    option downloads "" "folder of the upstream archives (default: <workdir>/downloads)"
    flag skip_checksums "do not verify the archives' checksums (local fixtures)"
    option checksums "" "a sha256sum-style file whose checksums replace the manifest's (archives you verified)"
    flag dry_run "print every command of the selected stages, fully expanded; run none"
    option launcher local "local | torchrun | slurm"
    option gpus 1 "GPUs per node (with --cpu: processes per node)"
    option nodes 1 "nodes (slurm only)"
    flag cpu "train and evaluate on CPU (tests and tiny runs)"
    option precision paper "fp16 | bf16 | fp32 | paper (the paper's)"
    option max_tokens paper "tokens per GPU per batch (paper: the paper's)"
    option update_freq auto "gradient accumulation (auto: the paper's effective batch for this GPU count)"
    option partition "${SBATCH_PARTITION:-}" "slurm partition (default \$SBATCH_PARTITION)"
    option account "${SBATCH_ACCOUNT:-}" "slurm account (default \$SBATCH_ACCOUNT)"
    option time "${SBATCH_TIMELIMIT:-}" "slurm time limit, e.g. 3-00:00:00 (default \$SBATCH_TIMELIMIT)"
    option constraint "${SBATCH_CONSTRAINT:-}" "slurm constraint, e.g. a100 (default \$SBATCH_CONSTRAINT)"
    option cpus_per_task 10 "slurm CPUs per task (data loading)"
    option port 0 "rendezvous port for slurm (0: derived from the job id)"
    option seed 1 "training seed"
    option workers 4 "worker processes for preparation and binarization"
}

check_recipe_options() {
    require_int stage 1
    require_int stop_stage 1
    require_int gpus 1
    require_int nodes 1
    require_int seed 0
    require_int workers 1
    require_int cpus_per_task 1
    require_int port 0
    require_choice model "${MODEL_CHOICES[@]}"
    require_choice launcher local torchrun slurm
    require_choice precision paper fp16 bf16 fp32
    [[ $max_tokens == paper ]] || require_int max_tokens 1
    [[ $update_freq == auto ]] || require_int update_freq 1
    if (( nodes > 1 )) && [[ $launcher != slurm ]]; then
        die "--nodes $nodes: several nodes need --launcher slurm (got --launcher $launcher)"
    fi
    if (( cpu )) && [[ $precision == fp16 ]]; then
        die "--precision fp16: fairseq trains in fp16 only on GPUs (drop --cpu, or use bf16 or fp32)"
    fi
    DRY_RUN=$dry_run
    workdir=$(realpath -m "$workdir")
    downloads=$(realpath -m "${downloads:-$workdir/downloads}")
    if ! command -v fairseq-train >/dev/null 2>&1 && [[ -x $REPO_DIR/.venv/bin/fairseq-train ]]; then
        export PATH="$REPO_DIR/.venv/bin:$PATH"
    fi
    PYTHON=${PYTHON:-python}
    read -r -a TRAIN_ARGS <<< "$train_args"
    read -r -a EXTRA_GEN_ARGS <<< "$gen_args"
    USER_DIR=$(find_plugin_user_dir)
    if (( cpu )); then
        setup_threads 1
    fi
}

# world_size: processes that train together.
world_size() {
    if [[ $launcher == local ]] && (( cpu )); then
        echo 1
    else
        echo $((nodes * gpus))
    fi
}

# resolve_batch PAPER_MAX_TOKENS PAPER_WORLD PAPER_UPDATE_FREQ: sets MAX_TOKENS
# and UPDATE_FREQ so that world x max_tokens x update_freq is the paper's
# effective batch (rounded up), whatever the GPU count; logs it.
resolve_batch() {
    local paper_tokens=$1 paper_world=$2 paper_uf=$3 world
    world=$(world_size)
    MAX_TOKENS=$max_tokens
    [[ $MAX_TOKENS == paper ]] && MAX_TOKENS=$paper_tokens
    local target=$((paper_tokens * paper_world * paper_uf))
    if [[ $update_freq == auto ]]; then
        UPDATE_FREQ=$(((target + world * MAX_TOKENS - 1) / (world * MAX_TOKENS)))
    else
        UPDATE_FREQ=$update_freq
    fi
    EFFECTIVE_BATCH=$((world * MAX_TOKENS * UPDATE_FREQ))
    log "effective batch: $world process(es) x $MAX_TOKENS tokens x update-freq $UPDATE_FREQ = $EFFECTIVE_BATCH tokens per update (paper: $paper_world x $paper_tokens x $paper_uf = $target)"
}

# precision_args PAPER: fairseq's flags for --precision (or the paper's).
precision_args() {
    local p=$precision
    if [[ $p == paper ]]; then
        p=$1
        # The papers' fp16 needs a GPU in fairseq; on CPU the paper's setting is fp32.
        if (( cpu )) && [[ $p == fp16 ]]; then p=fp32; fi
    fi
    case $p in
        fp16) echo "--fp16" ;;
        bf16) echo "--bf16" ;;
        fp32) echo "" ;;
    esac
}

# fetch_archives SETTING LOGFILE [FETCH_ARGS...]: stage 1.
fetch_archives() {
    local args=("$PYTHON" "$COMMON_DIR/fetch.py" "$1" --downloads "$downloads") logf=$2
    shift 2
    args+=("$@")
    (( skip_checksums )) && args+=(--skip-checksums)
    if [[ -n $checksums ]]; then
        require_file "$checksums" "--checksums names no file"
        args+=(--checksum-file "$(realpath "$checksums")")
    fi
    if (( DRY_RUN )); then
        show_command "${args[@]}"
        "${args[@]}" --dry-run >&2
        return 0
    fi
    run_logged "$logf" '.' "${args[@]}"
}

# launch_train LOGFILE CKPT_DIR FAIRSEQ_TRAIN_ARGS...: stage 4 with the launcher.
# fairseq-train resumes from CKPT_DIR/checkpoint_last.pt, so any launcher
# picks an interrupted training up where it stopped.
launch_train() {
    local logf=$1 ckpt_dir=$2 world
    shift 2
    world=$(world_size)
    local args=("$@" --save-dir "$ckpt_dir" --seed "$seed")
    if (( cpu )); then
        # fairseq cannot wrap CPU modules in torch DDP; its legacy one all-reduces with gloo.
        args+=(--cpu --num-workers 0)
        (( world > 1 )) && args+=(--distributed-backend gloo --ddp-backend legacy_ddp)
    fi
    case $launcher in
        local)
            (( world > 1 )) && args+=(--distributed-world-size "$world")
            run_logged "$logf" '\| (train|valid) \| epoch|world size|Error' fairseq-train "${args[@]}" ;;
        torchrun)
            # Each process is given its rank on the command line: fairseq's own
            # torchrun detection divides by the CUDA device count, 0 on CPU.
            args+=(--distributed-init-method env:// --distributed-no-spawn --distributed-world-size "$world")
            require_cmd torchrun "install torch"
            run_logged "$logf" '\| (train|valid) \| epoch|distributed init|Error' \
                torchrun --standalone --nnodes 1 --nproc-per-node "$gpus" --no-python \
                bash "$COMMON_DIR/torchrun_rank.sh" fairseq-train "${args[@]}" ;;
        slurm)
            slurm_train "$logf" "$ckpt_dir" "${args[@]}" ;;
    esac
}

# slurm_train LOGFILE CKPT_DIR ARGS...: writes <workdir>/slurm/train.sbatch,
# submits it (or, if a job of it is queued or running, waits for that one),
# and waits until it ends. Killing the recipe while it waits leaves the job
# running; re-running the recipe waits for the same job again.
slurm_train() {
    local logf=$1 ckpt_dir=$2 script=$workdir/slurm/train.sbatch
    shift 2
    local world ntasks gpu_line=""
    world=$(world_size)
    if (( cpu )); then
        # fairseq spawns one process per CUDA device; on CPU slurm starts them.
        ntasks=$gpus
    else
        ntasks=1
        gpu_line="#SBATCH --gpus-per-node=$gpus"
    fi
    local args=("$@" --distributed-world-size "$world")
    local text
    text=$(slurm_script "$ntasks" "$gpu_line" "$logf" "${args[@]}")
    if (( DRY_RUN )); then
        echo "# $script"
        echo "$text"
        show_command sbatch --parsable "$script"
        return 0
    fi
    require_cmd sbatch "the slurm launcher needs the SLURM client commands"
    mkdir -p "$workdir/slurm" "$(dirname "$logf")"
    local jobfile=$workdir/slurm/train.jobid job="" state=""
    [[ -s $jobfile ]] && job=$(<"$jobfile") && state=$(slurm_job_state "$job")
    if [[ -n $job && $state =~ ^(PENDING|RUNNING|REQUEUED|CONFIGURING|COMPLETING|SUSPENDED)$ ]]; then
        log "slurm job $job is $state: waiting for it"
    else
        printf '%s\n' "$text" > "$script"
        job=$(sbatch --parsable "$script")
        job=${job%%;*}
        echo "$job" > "$jobfile"
        log "submitted slurm job $job ($script); log: $logf"
    fi
    state=$(slurm_wait "$job")
    [[ $state == COMPLETED ]] || die "slurm job $job ended $state; see $logf"
    log "slurm job $job completed"
}

slurm_script() {
    local ntasks=$1 gpu_line=$2 logf=$3
    shift 3
    local opt
    echo "#!/usr/bin/env bash"
    echo "#SBATCH --job-name=$RECIPE_NAME-$model"
    echo "#SBATCH --nodes=$nodes"
    echo "#SBATCH --ntasks-per-node=$ntasks"
    echo "#SBATCH --cpus-per-task=$((cpu ? 1 : cpus_per_task))"
    [[ -n $gpu_line ]] && echo "$gpu_line"
    for opt in partition account time constraint; do
        [[ -n ${!opt} ]] && echo "#SBATCH --$opt=${!opt}"
    done
    echo "#SBATCH --output=$logf"
    echo "#SBATCH --open-mode=append"
    echo "#SBATCH --requeue"
    echo "#SBATCH --signal=B:USR1@300"
    cat <<'EOF'
# Preemption requeues the job (--requeue); 5 minutes before the time limit
# SLURM sends USR1 and the job requeues itself. Either way the new run resumes
# from checkpoint_last.pt (fairseq's default --restore-file).
set -euo pipefail
trap 'echo "requeueing job $SLURM_JOB_ID"; scontrol requeue "$SLURM_JOB_ID"' USR1
echo "job $SLURM_JOB_ID, restart ${SLURM_RESTART_COUNT:-0}, nodes: $SLURM_JOB_NODELIST"
EOF
    echo "export PATH=$(printf '%q' "$PATH")"
    [[ -n ${SLURM_CONF:-} ]] && echo "export SLURM_CONF=$(printf '%q' "$SLURM_CONF")"
    (( cpu )) && echo "export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE"
    # srun does not inherit sbatch's --cpus-per-task (srun(1) of SLURM 22.05 on): without this,
    # on clusters that bind tasks to their CPUs, the step gets one CPU for all of a node's
    # training processes and their data loading.
    echo 'export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK'
    # The rendezvous port is derived from the job id unless given.
    local port_expr=$port
    (( port == 0 )) && port_expr='$((20000 + SLURM_JOB_ID % 20000))'
    if (( cpu )); then
        echo "$(show_command srun --kill-on-bad-exit=1 bash "$COMMON_DIR/slurm_rank.sh") $port_expr $(show_command fairseq-train "$@") &"
    else
        echo "$(show_command srun --kill-on-bad-exit=1 fairseq-train "$@") --distributed-port $port_expr &"
    fi
    echo 'wait $!'
}

slurm_job_state() {
    local state
    state=$(scontrol show job "$1" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    echo "${state:-UNKNOWN}"
}

# slurm_wait JOB: polls until the job reaches a final state; prints it.
slurm_wait() {
    local state poll=${SLURM_POLL_SECONDS:-30}
    while true; do
        state=$(slurm_job_state "$1")
        case $state in
            PENDING|RUNNING|REQUEUED|CONFIGURING|COMPLETING|SUSPENDED|RESIZING|REQUEUE_HOLD|REQUEUE_FED) sleep "$poll" ;;
            *) echo "$state"; return 0 ;;
        esac
    done
}
