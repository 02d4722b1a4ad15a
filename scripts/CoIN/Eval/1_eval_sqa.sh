#!/usr/bin/env bash
# CoIN evaluation of ScienceQA: bash scripts/CoIN/Eval/1_eval_sqa.sh [STAGE] [MODELPATH]
#   STAGE      the task trained last, names the results folder (default: the last of TASKS)
#   MODELPATH  the weights to evaluate (default: OUTPUT_ROOT/METHOD/STAGE; a grouped chain's: its group's)
# model_vqa_science on test.json, one chunk per CUDA_VISIBLE_DEVICES entry, merged into merge.jsonl and scored
# by eval_science_qa into RESULT_ROOT/METHOD/STAGE/ScienceQA/score.json (skipped when that is up to date);
# llava/coin/evaluation.py. Settings: docs/coin_chain.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation task ScienceQA "$@"
