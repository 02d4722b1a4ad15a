#!/usr/bin/env bash
# LoRA chain, CoIN task 6/8: Grounding, starting from the previous task of TASKS (default VizWiz).
# Sequential LoRA fine-tuning, the lower bound (--llaca False). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LoRA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task Grounding
