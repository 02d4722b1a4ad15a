# shellcheck shell=bash
# The harsh profile: scripts/mini/settings.sh's own defaults (1000 training records per task, GQA 3000, LoRA lr 2e-3,
# 3 epochs per task). Sequential LoRA forgets nearly everything here (results/mini_coin/report.md); the defaults
# and how they were chosen: results/mini_coin/tuning.md.
