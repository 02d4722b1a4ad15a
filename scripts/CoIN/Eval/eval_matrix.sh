#!/usr/bin/env bash
# The accuracy matrix of chain METHOD: for every stage j with a DONE marker and every task i <= j (and task j+1
# with NEXT_TASK=1), generate with the stage-j weights and score; then python -m llava.eval.matrix writes
# RESULT_ROOT/METHOD/{summary.json,summary.md,matrix.png,curves.png} (with the zero-shot row when
# RESULT_ROOT/Zero_shot has scores). Cells with an up-to-date score.json are not redone. A grouped chain
# (Train_LLaCA_grouped: group.json in its task folders) answers cell (j, i) with the latest stage-<=j checkpoint
# of task i's group instead (ROUTE=owner|test_file; the table goes to RESULT_ROOT/METHOD/routing.json).
# llava/coin/evaluation.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation matrix
