#!/usr/bin/env bash
# CoIN evaluation of GQA: bash scripts/CoIN/Eval/4_eval_gqa.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE; a grouped chain's: its group's)
# model_gqa on test.json, one chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored
# by eval_gqa into RESULT_ROOT/METHOD/STAGE/GQA/score.json (skipped when that is up to date);
# llava/coin/evaluation.py. Settings: docs/coin_chain.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation task GQA "$@"
