#!/usr/bin/env bash
# LLaCA chain, CoIN task 4/8: GQA, starting from the previous task of TASKS (default ImageNet).
# LLaCA: the gradient-informed EMA on for every task (--llaca True). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LLaCA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task GQA
