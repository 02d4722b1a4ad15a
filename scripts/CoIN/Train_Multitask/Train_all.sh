#!/usr/bin/env bash
# Multitask joint training (the upper bound): one LoRA run on INSTRUCTION_TYPE/Multitask/train.json (the union of
# the eight tasks) from the pretrain projector, batch MULTITASK_BATCH_SIZE per device, into
# OUTPUT_ROOT/Multitask/Multitask/ (METHOD overrides the middle folder). Settings: scripts/CoIN/common.sh.
set -euo pipefail
CHAIN=Multitask
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
coin_train_multitask
