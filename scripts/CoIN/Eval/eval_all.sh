#!/usr/bin/env bash
# Every task of TASKS with one model: bash scripts/CoIN/Eval/eval_all.sh [STAGE] [MODELPATH]
# (default: the final stage, the last of TASKS, with OUTPUT_ROOT/METHOD/<that task>; a grouped chain's stage:
# each task with its group's checkpoint). llava/coin/evaluation.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation all "$@"
