#!/usr/bin/env bash
# GPU check (issue 23): a randomly initialised LLaVA-1.5-7B-shaped model (Vicuna-7B + CLIP-L/336 + the mlp2x_gelu
# projector, real sizes) trained for 2 + 6 steps with LoRA r128/α256 in bf16 under DeepSpeed ZeRO-2 on one GPU,
# without and with LLaCA. Prints step time with / without, the merge against the optimizer step, and peak memory;
# writes results/gpu_check/llava-v1.5-7b.{md,json} (and one log per run). A few minutes on one 80 GB GPU.
#
#   bash scripts/gpu_check.sh [--per_device_batch N] [--steps N] [--warmup N]      (python -m llava.train.gpu_check -h)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh" ""     # no extra (without an argument it would see this script's)
cd "$ROOT"
python -m llava.train.gpu_check --preset llava-v1.5-7b --lora_r 128 --lora_alpha 256 "$@"
