#!/usr/bin/env bash
# CoIN evaluation of Grounding: bash scripts/CoIN/Eval/6_eval_grounding.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE; a grouped chain's: its group's)
# model_vqa_cc_instruction on test.json, one chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored
# by eval_grounding into RESULT_ROOT/METHOD/STAGE/Grounding/score.json (skipped when that is up to date);
# llava/coin/evaluation.py. Settings: docs/coin_chain.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation task Grounding "$@"
