#!/usr/bin/env bash
# FixedEMA chain, CoIN task 1/8: ScienceQA, starting from the pretrain projector when it is the first of TASKS.
# Fixed-weight EMA baseline (--llaca True --llaca_mode fixed). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=FixedEMA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task ScienceQA
