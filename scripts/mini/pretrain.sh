#!/usr/bin/env bash
# Build the mini-CoIN base model: the stand-in for Vicuna + CLIP + LLaVA's pretrain projector.
#
#   bash scripts/mini/pretrain.sh                      (settings from the environment, defaults below)
#   SEED=1 BASE_DIR=/tmp/base bash scripts/mini/pretrain.sh
#
# 1. data:      DATA_DIR/Pretrain/pretrain.json (captions + generic image Q&A); generated with
#               playground/make_mini_coin.py --seed SEED --image_size IMAGE_SIZE when DATA_DIR has none.
# 2. model:     python -m llava.model.tiny --size mini (a ~2.2 M-parameter Llama LM + CLIP tower 96 px / patch 32
#               + projector, all untrained), its SentencePiece tokenizer trained on the generated training
#               text and the conversation template's system prompt (so prompts tokenize compactly).
# 2b. vision:   playground/mini_vision_pretrain.py, VISION_STEPS steps (0: skipped): the untrained tower learns to
#               classify every grid cell's shape, colour, letter and place, the stand-in for CLIP's own pre-training
#               (captioning alone leaves the tiny tower nearly blind to shape; results/mini_coin/tuning.md).
# 3. alignment: llava/train/train.py, the LM's parameters (the projector too when ALIGN_PROJECTOR=True, the
#               tower when ALIGN_TOWER=True), conversation template `plain` (image -> answer text, no system
#               prompt or question: short sequences, and the text can only be predicted from the image),
#               ALIGN_STEPS steps. This is the step that teaches the LM to read the image tokens; LLaVA's
#               stage 1 trains the projector instead, against a frozen, already-trained LM.
# 4. instruct:  llava/train/train.py again, LM and projector (the tower too when INSTRUCT_TOWER=True), template
#               `v1` (vicuna_v1, the CoIN chain's), the same captions + Q&A, STEPS steps: the base answers
#               questions about images.
# 4b. check:    playground/mini_base_check.py: does the base name the shape of a lone object in a fresh scene?
#               Whether the tiny LM learns that in alignment is a coin flip between seeds (even between thread
#               counts); below SHAPE_CHECK, phases 3-4 run again with the next seed, at most BASE_TRIES times.
# 5. export:    python -m llava.model.export_base -> BASE_DIR/lm, BASE_DIR/vision, BASE_DIR/mm_projector.bin,
#               the layout of --model_name_or_path / --vision_tower / --pretrain_mm_mlp_adapter.
# (Phase 3 and 4 each write a full model directory; the export of phase 3 is phase 4's starting point.)
#
# The result is cached: BASE_DIR/PRETRAIN_DONE holds a hash of every setting below, the sources it runs (this
# script, mini_vision_pretrain.py, mini_base_check.py, llava/model/tiny.py) and the pre-training data (which
# stands for the generator); a run whose hash matches reuses the base and says so. FORCE=1 rebuilds. The last line printed
# is `BASE_DIR=<path>`; BASE_DIR/pretrain_settings.json records the settings, the tries' checks and the seed kept.
#
# Settings (environment variables, defaults in brackets):
#   SEED [0]               data seed (when generating), model-init seed and first training seed
#   DATA_DIR [playground/data/mini_coin/seed$SEED-format<N>]  (N: the generator's FORMAT_VERSION)
#   IMAGE_SIZE [96]        generator image side (the tower sees 96 px, 3x3 patches of 32 px)
#   PRETRAIN_SIZE [20000]  pre-training records the generator writes (when generating)
#   VISION_STEPS [300]     vision pre-training steps (batch VISION_BATCH_SIZE [64], lr VISION_LR [1e-3])
#   VISION_PLACE_WEIGHT [0.3]  weight of the vision phase's where-is-this-patch loss (0: none)
#   ALIGN_STEPS [800]      alignment steps (plain template)      ALIGN_LR [3e-3]   ALIGN_BATCH_SIZE [32]
#   ALIGN_DATA [captions]  alignment records: `captions` (the captioning records of pretrain.json: each names
#                          every object, colour, position, word and title in the image) or `all`
#   ALIGN_TOWER [False]    train the vision tower during alignment (False: keep the tower of the vision phase)
#   ALIGN_PROJECTOR [False] train the projector during alignment (False: it stays as initialised and the LM learns
#                          to read it; trained, it squashed shape out of the image tokens on some seeds)
#   INSTRUCT_TOWER [False] train the vision tower during the instruction phase
#   STEPS [800]            instruction steps (v1 template)       LR [2e-3]         BATCH_SIZE [16]
#   BASE_TRIES [3]  SHAPE_CHECK [0.9]   tries of phases 3-4 (seeds SEED, SEED+1, ...) and the shape score to pass
#   WARMUP_STEPS [30]  WEIGHT_DECAY [0.01]  (both phases; cosine schedule, gradient clipping 1.0)
#   SELECT_LAYER [-2]      --mm_vision_select_layer (the CoIN scripts pass -2; the chain must use the same)
#   THREADS [$OMP_NUM_THREADS or 2]   torch threads
#   MINI_CACHE [checkpoints/mini]     where work directories go
#   BASE_DIR [$MINI_CACHE/base-<hash>]  FORCE [0]   PYTHON [.venv/bin/python if present, else python]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

: "${SEED:=0}"
: "${IMAGE_SIZE:=96}"
: "${PRETRAIN_SIZE:=20000}"
: "${VISION_STEPS:=300}"
: "${VISION_BATCH_SIZE:=64}"
: "${VISION_LR:=1e-3}"
: "${VISION_PLACE_WEIGHT:=0.3}"
: "${ALIGN_STEPS:=800}"
: "${ALIGN_LR:=3e-3}"
: "${ALIGN_BATCH_SIZE:=32}"
: "${ALIGN_DATA:=captions}"
: "${STEPS:=800}"
: "${LR:=2e-3}"
: "${BATCH_SIZE:=16}"
: "${ALIGN_TOWER:=False}"
: "${ALIGN_PROJECTOR:=False}"
: "${INSTRUCT_TOWER:=False}"
: "${BASE_TRIES:=3}"
: "${SHAPE_CHECK:=0.9}"
: "${WARMUP_STEPS:=30}"
: "${WEIGHT_DECAY:=0.01}"
: "${SELECT_LAYER:=-2}"
: "${THREADS:=${OMP_NUM_THREADS:-2}}"
: "${MINI_CACHE:=$ROOT/checkpoints/mini}"
: "${FORCE:=0}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
GENERATOR_FORMAT="$("$PYTHON" -c 'from playground.make_mini_coin import FORMAT_VERSION; print(FORMAT_VERSION)')"
: "${DATA_DIR:=$ROOT/playground/data/mini_coin/seed$SEED-format$GENERATOR_FORMAT}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
SCRIPT_VERSION=1

log() { echo "[mini-pretrain $(date +%H:%M:%S)] $*"; }
die() { echo "[mini-pretrain] error: $*" >&2; exit 1; }
for name in VISION_STEPS VISION_BATCH_SIZE ALIGN_STEPS STEPS ALIGN_BATCH_SIZE BATCH_SIZE WARMUP_STEPS PRETRAIN_SIZE \
    IMAGE_SIZE THREADS BASE_TRIES; do
    [[ "${!name}" =~ ^[0-9]+$ ]] || die "$name must be a non-negative integer, got '${!name}'"
done
[[ "$STEPS" -gt 0 ]] || die "STEPS must be > 0"
[[ "$BASE_TRIES" -gt 0 ]] || die "BASE_TRIES must be > 0"
[[ "$SHAPE_CHECK" =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "SHAPE_CHECK must be a fraction in [0, 1], got '$SHAPE_CHECK'"
[[ "$ALIGN_DATA" == captions || "$ALIGN_DATA" == all ]] || die "ALIGN_DATA must be captions or all, got '$ALIGN_DATA'"
for name in ALIGN_TOWER ALIGN_PROJECTOR INSTRUCT_TOWER; do
    [[ "${!name}" == True || "${!name}" == False ]] || die "$name must be True or False, got '${!name}'"
done
STARTED=$SECONDS

# ---------------------------------------------------------------------------------------------- data
PRETRAIN_JSON="$DATA_DIR/Pretrain/pretrain.json"
MULTITASK_JSON="$DATA_DIR/Instructions/Multitask/train.json"
if [[ ! -f "$PRETRAIN_JSON" || ! -f "$DATA_DIR/mini_coin_meta.json" ]]; then
    log "generating mini-CoIN (seed $SEED, ${IMAGE_SIZE} px, $PRETRAIN_SIZE pre-training records) in $DATA_DIR"
    "$PYTHON" playground/make_mini_coin.py --output_dir "$DATA_DIR" --seed "$SEED" --image_size "$IMAGE_SIZE" \
        --pretrain_size "$PRETRAIN_SIZE"
fi
[[ -f "$PRETRAIN_JSON" ]] || die "$PRETRAIN_JSON missing"
data_image_size="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["args"]["image_size"])' \
    "$DATA_DIR/mini_coin_meta.json")"
[[ "$data_image_size" == "$IMAGE_SIZE" ]] \
    || die "$DATA_DIR holds ${data_image_size} px images but IMAGE_SIZE=$IMAGE_SIZE; use another DATA_DIR or IMAGE_SIZE=$data_image_size"
corpus_files=("$PRETRAIN_JSON")
[[ -f "$MULTITASK_JSON" ]] && corpus_files+=("$MULTITASK_JSON")

# ---------------------------------------------------------------------------------------------- cache key
settings="version=$SCRIPT_VERSION seed=$SEED image_size=$IMAGE_SIZE align_steps=$ALIGN_STEPS align_lr=$ALIGN_LR"
settings+=" align_batch_size=$ALIGN_BATCH_SIZE steps=$STEPS lr=$LR batch_size=$BATCH_SIZE warmup=$WARMUP_STEPS"
settings+=" weight_decay=$WEIGHT_DECAY select_layer=$SELECT_LAYER align_data=$ALIGN_DATA instruct_tower=$INSTRUCT_TOWER"
settings+=" vision_steps=$VISION_STEPS vision_batch_size=$VISION_BATCH_SIZE vision_lr=$VISION_LR align_tower=$ALIGN_TOWER"
settings+=" vision_place_weight=$VISION_PLACE_WEIGHT"
settings+=" align_projector=$ALIGN_PROJECTOR base_tries=$BASE_TRIES shape_check=$SHAPE_CHECK"
vision_source=()
[[ "$VISION_STEPS" == 0 ]] || vision_source=(playground/mini_vision_pretrain.py)
HASH="$( { echo "$settings";
           sha256sum playground/mini_base_check.py llava/model/tiny.py "$0" \
               "${vision_source[@]}" | cut -d' ' -f1;
           sha256sum "${corpus_files[@]}" "$DATA_DIR/mini_coin_meta.json" | cut -d' ' -f1; } | sha256sum | cut -c1-16)"
: "${BASE_DIR:=$MINI_CACHE/base-$HASH}"
if [[ "$FORCE" != 1 && -f "$BASE_DIR/PRETRAIN_DONE" && "$(cat "$BASE_DIR/PRETRAIN_DONE")" == "$HASH" ]]; then
    log "reusing the cached base in $BASE_DIR (settings hash $HASH matches; FORCE=1 rebuilds)"
    echo "BASE_DIR=$BASE_DIR"
    exit 0
fi

WORK="$MINI_CACHE/work-$HASH"
rm -rf "$WORK"
mkdir -p "$WORK"
log "building the base (hash $HASH): $settings, $THREADS thread(s); work dir $WORK"

# ---------------------------------------------------------------------------------------------- model
# Every rendered training sample starts with the template's system prompt: weight it like that in the tokenizer
# corpus, so it becomes whole-word pieces (33 tokens instead of ~90).
"$PYTHON" - "$WORK/template_corpus.txt" "${corpus_files[@]}" << 'EOF'
import json, sys
from llava.conversation import conv_templates
conv = conv_templates["vicuna_v1"]
count = sum(len(json.load(open(path))) for path in sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write((f"{conv.system} {conv.roles[0]}: {conv.roles[1]}:\n") * count)
EOF
log "model: python -m llava.model.tiny --size mini (tokenizer corpus: ${corpus_files[*]##*/} + the v1 system prompt)"
"$PYTHON" -m llava.model.tiny --output_dir "$WORK/tiny" --size mini --seed "$SEED" \
    --corpus "$WORK/template_corpus.txt" "${corpus_files[@]}"

# One pre-training phase through train.py, every LM parameter trained:
#   phase NAME TEMPLATE INIT_DIR STEPS LR BATCH DATA TOWER PROJECTOR OUT  (TOWER, PROJECTOR: True = trained)
phase() {
    local name="$1" template="$2" init="$3" steps="$4" lr="$5" batch="$6" data="$7" tower="$8" projector="$9" out="${10}"
    local freeze_projector=False
    [[ "$projector" == True ]] || freeze_projector=True
    log "$name: llava/train/train.py --version $template, $steps steps x batch $batch, lr $lr, LM trained (vision tower: $tower, projector: $projector)"
    "$PYTHON" -m llava.train.train \
        --model_name_or_path "$init/lm" --vision_tower "$init/vision" --pretrain_mm_mlp_adapter "$init/mm_projector.bin" \
        --version "$template" --mm_projector_type mlp2x_gelu --mm_vision_select_layer "$SELECT_LAYER" \
        --mm_use_im_start_end False --mm_use_im_patch_token False --image_aspect_ratio pad \
        --unfreeze_mm_vision_tower "$tower" --freeze_mm_mlp_adapter "$freeze_projector" --lora_enable False \
        --data_path "$data" --image_folder "$DATA_DIR/cl_dataset" \
        --per_device_train_batch_size "$batch" --gradient_accumulation_steps 1 --max_steps "$steps" \
        --learning_rate "$lr" --weight_decay "$WEIGHT_DECAY" --warmup_steps "$WARMUP_STEPS" \
        --lr_scheduler_type cosine --max_grad_norm 1.0 --bf16 False --model_max_length 256 \
        --logging_steps 25 --disable_tqdm True --save_strategy no --report_to none \
        --dataloader_num_workers 0 --seed "$TRAIN_SEED" --output_dir "$out" 2>&1 \
        | grep --line-buffered -v -e '^Loading weights' -e 'Writing model shards' -e 'real_accelerator' \
        || die "$name failed (see the output above)"
    [[ -f "$out/config.json" ]] || die "$name wrote no model to $out"
}

start="$WORK/tiny"
if [[ "$VISION_STEPS" -gt 0 ]]; then
    log "vision: playground/mini_vision_pretrain.py, $VISION_STEPS steps x batch $VISION_BATCH_SIZE, lr $VISION_LR (per-cell shape, colour, letter; place at weight $VISION_PLACE_WEIGHT)"
    "$PYTHON" playground/mini_vision_pretrain.py --vision_tower "$start/vision" --steps "$VISION_STEPS" \
        --batch_size "$VISION_BATCH_SIZE" --lr "$VISION_LR" --seed "$SEED" --select_layer "$SELECT_LAYER" \
        --place_weight "$VISION_PLACE_WEIGHT" 2>&1 \
        | grep --line-buffered -v -e 'Writing model shards' -e 'real_accelerator' || die "vision pre-training failed"
fi
align_json="$PRETRAIN_JSON"
if [[ "$ALIGN_STEPS" -gt 0 && "$ALIGN_DATA" == captions ]]; then
    align_json="$WORK/align.json"
    "$PYTHON" - "$PRETRAIN_JSON" "$align_json" << 'EOF'
import json, sys
from playground.make_mini_coin import CAPTION_PROMPTS
records = json.load(open(sys.argv[1]))
captions = [r for r in records if r["conversations"][0]["value"].split("\n", 1)[-1] in CAPTION_PROMPTS]
if not captions:
    sys.exit(f"{sys.argv[1]}: no captioning records (prompts {CAPTION_PROMPTS})")
json.dump(captions, open(sys.argv[2], "w"))
print(f"[mini-pretrain] alignment data: {len(captions)} captioning records of {len(records)}")
EOF
fi

# Alignment + instruction, then the base check (playground/mini_base_check.py). While the base names the shape of a
# lone object less often than SHAPE_CHECK and tries are left, both phases run again from the vision phase's tower
# with the next training seed. The base kept is the first try that passes, else the best one (with a warning).
vision_start="$start"
best_try=0 best_shape=-1 checks=()
for ((try = 0; try < BASE_TRIES; try++)); do
    TRAIN_SEED=$((SEED + try))
    out="$WORK/try$try"
    start="$vision_start"
    if [[ "$ALIGN_STEPS" -gt 0 ]]; then
        phase "alignment (try $((try + 1)) of $BASE_TRIES, seed $TRAIN_SEED)" plain "$start" "$ALIGN_STEPS" \
            "$ALIGN_LR" "$ALIGN_BATCH_SIZE" "$align_json" "$ALIGN_TOWER" "$ALIGN_PROJECTOR" "$out/align"
        "$PYTHON" -m llava.model.export_base --model-path "$out/align" --output_dir "$out/align_base" > /dev/null
        start="$out/align_base"
    fi
    phase "instruction (try $((try + 1)) of $BASE_TRIES, seed $TRAIN_SEED)" v1 "$start" "$STEPS" "$LR" \
        "$BATCH_SIZE" "$PRETRAIN_JSON" "$INSTRUCT_TOWER" True "$out/instruct"
    "$PYTHON" -m llava.model.export_base --model-path "$out/instruct" --output_dir "$out/base" > /dev/null
    check="$("$PYTHON" playground/mini_base_check.py --base "$out/base" --threads "$THREADS" \
        --select_layer "$SELECT_LAYER" | tail -n 1)" \
        || die "the base check failed on $out/base"
    checks+=("$check")
    read -r shape better passed < <("$PYTHON" -c 'import json, sys
shape = json.loads(sys.argv[1])["shape"]
print(shape, int(shape > float(sys.argv[2])), int(shape >= float(sys.argv[3])))' "$check" "$best_shape" "$SHAPE_CHECK")
    log "base check (try $((try + 1)), seed $TRAIN_SEED): $check; names a lone object's shape: $shape (needed: $SHAPE_CHECK)"
    [[ "$better" == 1 ]] && best_try=$try best_shape=$shape
    [[ "$passed" == 1 ]] && break
done
if [[ "$passed" != 1 ]]; then
    log "WARNING: none of $BASE_TRIES tries passed the base check ($SHAPE_CHECK); keeping try $((best_try + 1))" \
        "(shape $best_shape): task questions about shapes are answered worse than with a base that passes" \
        "(results/mini_coin/tuning.md)"
fi

# ---------------------------------------------------------------------------------------------- export
log "export: try $((best_try + 1)) -> $BASE_DIR"
"$PYTHON" -m llava.model.export_base --model-path "$WORK/try$best_try/instruct" --output_dir "$BASE_DIR"
"$PYTHON" - "$BASE_DIR/pretrain_settings.json" "$HASH" "$settings" "$DATA_DIR" "$((SECONDS - STARTED))" \
    "$((SEED + best_try))" "${checks[@]}" << 'EOF'
import json, sys
path, digest, settings, data, seconds, train_seed, *checks = sys.argv[1:]
json.dump({"hash": digest, "settings": dict(kv.split("=", 1) for kv in settings.split()), "data_dir": data,
           "build_seconds": int(seconds), "training_seed": int(train_seed),
           "base_checks": [json.loads(check) for check in checks],
           "chain_flags": "--mm_vision_select_layer must equal select_layer; --version v1"},
          open(path, "w"), indent=1)
EOF
echo "$HASH" > "$BASE_DIR/PRETRAIN_DONE.tmp" && mv -f "$BASE_DIR/PRETRAIN_DONE.tmp" "$BASE_DIR/PRETRAIN_DONE"
[[ "${KEEP_WORK:-0}" == 1 ]] || rm -rf "$WORK"
log "base ready in $((SECONDS - STARTED)) s: $BASE_DIR (lm/, vision/, mm_projector.bin)"
echo "BASE_DIR=$BASE_DIR"
