#!/usr/bin/env bash
# LoRA chain: sequential LoRA fine-tuning, the lower bound (--llaca False).
# Runs each task's script in TASKS order (default all eight CoIN tasks) into OUTPUT_ROOT/METHOD/<Task>/
# (default ./checkpoints/CoIN/LoRA/). Rerun after an interruption: finished tasks (DONE) are skipped and
# an unfinished one resumes from its newest complete Trainer checkpoint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.training chain LoRA "$(dirname "${BASH_SOURCE[0]}")"
