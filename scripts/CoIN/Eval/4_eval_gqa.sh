#!/usr/bin/env bash
# CoIN evaluation of GQA: bash scripts/CoIN/Eval/4_eval_gqa.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE)
# One chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored into
# RESULT_ROOT/METHOD/STAGE/GQA/score.json (skipped when that is up to date). Settings: scripts/CoIN/common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_eval_task GQA "${1:-}" "${2:-}"
