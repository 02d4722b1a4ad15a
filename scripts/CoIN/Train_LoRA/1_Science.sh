#!/usr/bin/env bash
# LoRA chain, CoIN task 1/8: ScienceQA, starting from the pretrain projector when it is the first of TASKS.
# Sequential LoRA fine-tuning, the lower bound (--llaca False). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LoRA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task ScienceQA
