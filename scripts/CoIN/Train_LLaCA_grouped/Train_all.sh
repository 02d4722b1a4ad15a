#!/usr/bin/env bash
# Grouped LLaCA chain: instruction grouping decides, per task, which group's weights it continues (or opens a new
# group: NEW_GROUP_INIT=previous|fresh) and whether the EMA is on (GROUP_EMA=reused|all|none). Runs each task's
# script in TASKS order into OUTPUT_ROOT/METHOD/<Task>/ (default ./checkpoints/CoIN/LLaCA_grouped/); evaluate
# with METHOD=LLaCA_grouped bash scripts/CoIN/Eval/eval_matrix.sh. Rerun after an interruption: DONE tasks are
# skipped, an unfinished one repeats its group.json decision and resumes from its newest complete checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.training chain LLaCA_grouped "$(dirname "${BASH_SOURCE[0]}")"
