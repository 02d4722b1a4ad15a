#!/usr/bin/env bash
# The ablation of the paper's table on mini-CoIN, in one command, with the benchmark's seeds:
#   sequential LoRA; + fixed EMA 0.99; + gradient-informed EMA (official and paper variants);
#   + gradient-informed EMA + instruction grouping (Train_LLaCA_grouped, the released scripts' routing);
#   grouping with plain LoRA (the row the paper lacks).
#
#   bash scripts/mini/ablation.sh [--seeds N] [other scripts/mini/run.sh options]
#
# Runs what is missing (finished chains are reused from scripts/mini/run.sh) and rewrites
# results/mini_coin/report.md with the whole benchmark plus the ablation section.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/mini/settings.sh"
methods="$("$PYTHON" -m llava.coin.methods list --set ablation) $(for c in $SWEEP; do printf 'LLaCA_c%s ' "$c"; done)"
exec bash "$ROOT/scripts/mini/run.sh" --methods "$methods" "$@"
