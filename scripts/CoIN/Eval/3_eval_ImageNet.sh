#!/usr/bin/env bash
# CoIN evaluation of ImageNet: bash scripts/CoIN/Eval/3_eval_ImageNet.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE; a grouped chain's: its group's)
# model_vqa_cc_instruction on test.json, one chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored
# by eval_imagenet into RESULT_ROOT/METHOD/STAGE/ImageNet/score.json (skipped when that is up to date);
# llava/coin/evaluation.py. Settings: docs/coin_chain.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation task ImageNet "$@"
