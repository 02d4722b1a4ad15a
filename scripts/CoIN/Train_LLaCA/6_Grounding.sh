#!/usr/bin/env bash
# LLaCA chain, CoIN task 6/8: Grounding, starting from the previous task of TASKS (default VizWiz).
# LLaCA: the gradient-informed EMA on for every task (--llaca True). Settings (env vars): scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LLaCA
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_task Grounding
