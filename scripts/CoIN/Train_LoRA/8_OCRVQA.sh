#!/usr/bin/env bash
# LoRA chain, CoIN task 8/8: OCRVQA, starting from the previous task of TASKS (default VQAv2).
# Sequential LoRA fine-tuning, the lower bound (--llaca False). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LoRA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task OCRVQA
