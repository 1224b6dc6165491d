#!/usr/bin/env bash
# Runs one SLURM task of a CPU training: slurm_rank.sh PORT fairseq-train ...
# On GPUs fairseq reads the SLURM variables itself and spawns one process per
# GPU of the node; on CPU there are no devices to spawn over, and its SLURM
# path selects a CUDA device, so each task is one rank and is told so here.
set -euo pipefail
: "${SLURM_PROCID:?slurm_rank.sh runs as a task of srun (SLURM_PROCID is not set)}"
port=$1
shift
host=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
exec "$@" --distributed-init-method "tcp://$host:$port" --distributed-rank "$SLURM_PROCID" \
    --distributed-no-spawn
