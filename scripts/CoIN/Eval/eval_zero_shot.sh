#!/usr/bin/env bash
# The zero-shot row: every task of TASKS with BASE_LM + VISION_TOWER + PRETRAIN_PROJECTOR (no LoRA), results in
# RESULT_ROOT/Zero_shot/<Task>/score.json. The projector-only model directory is written to ZERO_SHOT_MODEL.
# llava/coin/evaluation.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../env.sh"
exec "$PYTHON" -m llava.coin.evaluation zero-shot
