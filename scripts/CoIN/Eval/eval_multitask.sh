#!/usr/bin/env bash
# The multitask row: every task of TASKS with the jointly trained model,
# bash scripts/CoIN/Eval/eval_multitask.sh [MODELPATH] (default OUTPUT_ROOT/Multitask/Multitask);
# results in RESULT_ROOT/Multitask/<Task>/score.json. llava/coin/evaluation.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation multitask "$@"
