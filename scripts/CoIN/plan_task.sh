# shellcheck shell=bash
# Sourced by every per-task training script as `source plan_task.sh CHAIN TASK`: `python -m llava.coin.training
# plan` checks the task's inputs and prints the variables its command line uses (TASK_BATCH, INIT_FLAG INIT_PATH,
# GPU_FLAGS, RESUME_FLAG, ..., and the settings), or ends the script when the task is DONE.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
COIN_PLAN="$("$PYTHON" -m llava.coin.training plan "$1" "$2")"
eval "$COIN_PLAN"
