#!/usr/bin/env bash
# The ablation of the paper's table on mini-CoIN, in one command, with the benchmark's seeds:
#   sequential LoRA; + fixed EMA 0.99; + gradient-informed EMA (official and paper variants);
#   + gradient-informed EMA + instruction grouping (Train_LLaCA_grouped, the released scripts' routing);
#   grouping with plain LoRA (the row the paper lacks).
#
#   bash scripts/mini/ablation.sh [--profile harsh|calibrated] [--seeds N] [other scripts/mini/run.sh options]
#
# Runs what is missing (finished chains are reused from scripts/mini/run.sh) and rewrites
# the profile's report (results/mini_coin/report.md, or results/mini_coin/calibrated/report.md) with the whole
# benchmark plus the ablation section. The rows: the profile's MINI_METHOD_SET of llava/coin/methods.py and SWEEP.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$ROOT/scripts/mini/settings.sh"
methods="$("$PYTHON" -m llava.coin.methods list --set "$MINI_METHOD_SET") $(for c in $SWEEP; do printf 'LLaCA_c%s ' "$c"; done)"
exec bash "$ROOT/scripts/mini/run.sh" --methods "$methods" "$@"
