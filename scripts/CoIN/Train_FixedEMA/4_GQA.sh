#!/usr/bin/env bash
# FixedEMA chain, CoIN task 4/8: GQA, starting from the previous task of TASKS (default ImageNet).
# Fixed-weight EMA baseline (--llaca True --llaca_mode fixed). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=FixedEMA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task GQA
