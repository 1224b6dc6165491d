#!/usr/bin/env bash
# Runs one torchrun process: "$@" (fairseq-train ...) with the rank torchrun
# gave this process. fairseq's own torchrun detection computes the device as
# rank % CUDA device count, which fails on CPU, so the recipes pass
# --distributed-init-method env:// and the rank explicitly instead.
set -euo pipefail
: "${RANK:?torchrun_rank.sh runs under torchrun (RANK is not set)}"
exec "$@" --distributed-rank "$RANK" --device-id "${LOCAL_RANK:-0}"
