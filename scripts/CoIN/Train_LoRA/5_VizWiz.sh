#!/usr/bin/env bash
# LoRA chain, CoIN task 5/8: VizWiz, starting from the previous task of TASKS (default GQA).
# Sequential LoRA fine-tuning, the lower bound (--llaca False). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LoRA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task VizWiz
