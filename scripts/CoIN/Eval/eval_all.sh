#!/usr/bin/env bash
# Every task of TASKS with one model: bash scripts/CoIN/Eval/eval_all.sh [STAGE] [MODELPATH]
# (default: the final stage, the last of TASKS, with OUTPUT_ROOT/METHOD/<that task>).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_eval_all "${1:-}" "${2:-}"
