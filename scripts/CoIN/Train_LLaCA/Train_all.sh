#!/usr/bin/env bash
# LLaCA chain: LLaCA: the gradient-informed EMA on for every task (--llaca True).
# Runs each task's script in TASKS order (default all eight CoIN tasks) into OUTPUT_ROOT/METHOD/<Task>/
# (default ./checkpoints/CoIN/LLaCA/). Rerun after an interruption: finished tasks (DONE) are skipped and
# an unfinished one resumes from its newest complete Trainer checkpoint.
set -euo pipefail
CHAIN=LLaCA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_all "$(dirname "${BASH_SOURCE[0]}")"
