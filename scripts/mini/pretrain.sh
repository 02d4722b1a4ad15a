#!/usr/bin/env bash
# Build the mini-CoIN base model: the stand-in for Vicuna + CLIP + LLaVA's pretrain projector.
#
#   bash scripts/mini/pretrain.sh                      (settings from the environment, defaults below)
#   SEED=1 BASE_DIR=/tmp/base bash scripts/mini/pretrain.sh
#
# Phases (playground/mini_base.py runs each as one command line): data (playground/make_mini_coin.py), model
# (python -m llava.model.tiny --size mini), vision (playground/mini_vision_pretrain.py), alignment and instruction
# (llava/train/train.py, templates plain and v1), the base check (playground/mini_base_check.py: below SHAPE_CHECK,
# alignment and instruction run again with the next seed, at most BASE_TRIES times), export
# (python -m llava.model.export_base). The base is cached under a key of every setting, the pre-training data and
# the sources that define the model; FORCE=1 rebuilds. The last line printed is `BASE_DIR=<path>`.
#
# Settings (environment variables, defaults in brackets; what each means: BaseSettings in playground/mini_base.py):
#   SEED [0]  DATA_DIR [playground/data/mini_coin/seed$SEED-format<N>]  IMAGE_SIZE [96]  PRETRAIN_SIZE [20000]
#   VISION_STEPS [300]  VISION_BATCH_SIZE [64]  VISION_LR [1e-3]  VISION_PLACE_WEIGHT [0.3]
#   ALIGN_STEPS [800]  ALIGN_LR [3e-3]  ALIGN_BATCH_SIZE [32]  ALIGN_DATA [captions]  ALIGN_TOWER [False]
#   ALIGN_PROJECTOR [False]  INSTRUCT_TOWER [False]  STEPS [800]  LR [2e-3]  BATCH_SIZE [16]
#   BASE_TRIES [3]  SHAPE_CHECK [0.9]  WARMUP_STEPS [30]  WEIGHT_DECAY [0.01]  SELECT_LAYER [-2]
#   THREADS [$OMP_NUM_THREADS or 2]  MINI_CACHE [checkpoints/mini]  BASE_DIR [$MINI_CACHE/base-<key>]  FORCE [0]
#   KEEP_WORK [0]  PYTHON [.venv/bin/python if present, else python]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m playground.mini_base
