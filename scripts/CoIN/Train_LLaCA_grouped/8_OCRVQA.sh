#!/usr/bin/env bash
# Grouped LLaCA chain, CoIN task 8/8: OCRVQA. Instruction grouping (python -m llaca_plugin.grouping on its
# train.json, decision kept in <Task>/group.json) picks its start: its group's latest checkpoint, or for a new group
# NEW_GROUP_INIT=previous|fresh; and the EMA: GROUP_EMA=reused|all|none. Settings: scripts/CoIN/common.sh, docs/coin_chain.md.
set -euo pipefail
CHAIN=LLaCA_grouped
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_grouped_task OCRVQA
