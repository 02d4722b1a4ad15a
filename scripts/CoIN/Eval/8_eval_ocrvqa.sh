#!/usr/bin/env bash
# CoIN evaluation of OCRVQA: bash scripts/CoIN/Eval/8_eval_ocrvqa.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE; a grouped chain's: its group's)
# model_ocr_vqa on test.json, one chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored
# by eval_ocrvqa into RESULT_ROOT/METHOD/STAGE/OCRVQA/score.json (skipped when that is up to date);
# llava/coin/evaluation.py. Settings: docs/coin_chain.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation task OCRVQA "$@"
