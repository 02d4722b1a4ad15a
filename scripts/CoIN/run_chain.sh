#!/usr/bin/env bash
# One command for a whole CoIN experiment: bash scripts/CoIN/run_chain.sh [LLaCA|LoRA|FixedEMA|LLaCA_grouped]  (default LLaCA)
# = Train_<chain>/Train_all.sh, then Eval/eval_zero_shot.sh (unless ZERO_SHOT=0), then Eval/eval_matrix.sh.
# Rerunnable: finished tasks and scored cells are skipped. Settings (env vars): docs/coin_chain.md.
set -euo pipefail
chain="${1:-LLaCA}"; here="$(dirname "${BASH_SOURCE[0]}")"
[[ -f "$here/Train_$chain/Train_all.sh" ]] || { echo "[CoIN] error: no chain '$chain' (LLaCA, LoRA, FixedEMA, LLaCA_grouped)" >&2; exit 1; }
export METHOD="${METHOD:-$chain}"
bash "$here/Train_$chain/Train_all.sh"
if [[ "${ZERO_SHOT:-1}" == 1 ]]; then bash "$here/Eval/eval_zero_shot.sh"; fi
bash "$here/Eval/eval_matrix.sh"
