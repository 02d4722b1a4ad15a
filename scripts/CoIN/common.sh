# shellcheck shell=bash
# Shared logic of every CoIN training and evaluation script (sourced, never run). The per-task scripts set
# CHAIN (training: LLaCA | LoRA | FixedEMA | Multitask | LLaCA_grouped), source this file and call one function:
#   coin_train_task <Task>       one task of a chain      coin_train_all <chain dir>     the chain, in TASKS order
#   coin_train_grouped_task <Task>  one task of the instruction-grouped chain (Train_LLaCA_grouped)
#   coin_train_multitask         one run on the union     coin_eval_task <Task> [STAGE] [MODELPATH]
#   coin_eval_all / coin_eval_matrix / coin_eval_zero_shot / coin_eval_multitask
# Every path and size comes from an environment variable; the defaults are the published CoIN/LLaCA values
# (docs/coin_chain.md has the table). Relative paths are relative to the directory you run from (the
# repository root, as in upstream's scripts). Needs bash >= 4.4.

set -euo pipefail

COIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
COIN_SCRIPTS="$COIN_ROOT/scripts/CoIN"

# The eight CoIN tasks in order, and per task: training script, eval script, evaluated split, inference
# module (llava.eval.CoIN.*, as CoIN's eval scripts call them) and scorer (llava.eval.CoIN.*).
COIN_TASK_NAMES=(ScienceQA TextVQA ImageNet GQA VizWiz Grounding VQAv2 OCRVQA)
COIN_TRAIN_SCRIPTS=(1_Science.sh 2_TextVQA.sh 3_ImageNet.sh 4_GQA.sh 5_VizWiz.sh 6_Grounding.sh 7_vqav2.sh 8_OCRVQA.sh)
COIN_EVAL_SCRIPTS=(1_eval_sqa.sh 2_eval_textqa.sh 3_eval_ImageNet.sh 4_eval_gqa.sh 5_eval_vizwiz.sh
                   6_eval_grounding.sh 7_eval_vqav2.sh 8_eval_ocrvqa.sh)
COIN_EVAL_SPLITS=(test val test test val test val test)
COIN_INFERENCE=(model_vqa_science model_text_vqa model_vqa_cc_instruction model_gqa model_vizwiz
                model_vqa_cc_instruction model_vqa_cc_instruction model_ocr_vqa)
COIN_SCORERS=(eval_science_qa eval_textvqa eval_ImagetNet eval_gqa eval_vizwiz eval_grounding eval_vqav2 eval_ocrvqa)

# ------------------------------------------------------------------------------------------- settings
# Weights and data
: "${BASE_LM:=./checkpoints/Vicuna/vicuna-7b-v1.5}"
: "${VISION_TOWER:=./checkpoints/openai/clip-vit-large-patch14-336}"
: "${PRETRAIN_PROJECTOR:=./checkpoints/Instruction/Only_Pretrain_1.5_7b/llava-vicuna-2-7b-chat-pretrain/mm_projector.bin}"
: "${DATA_ROOT:=./playground}"
: "${INSTRUCTION_TYPE:=Instructions}"
: "${IMAGE_ROOT:=./cl_dataset}"
: "${TASKS:=${COIN_TASK_NAMES[*]}}"
# Launcher
: "${GPUS:=localhost:0-7}"
: "${NUM_GPUS:=}"
: "${MASTER_PORT:=29600}"
: "${DS_CONFIG:=$COIN_ROOT/scripts/zero2.json}"
: "${DEEPSPEED:=deepspeed}"
: "${PYTHON:=python}"
# Outputs
: "${OUTPUT_ROOT:=./checkpoints/CoIN}"
: "${METHOD:=${CHAIN:-LLaCA}}"
: "${KEEP_CHECKPOINTS:=1}"
# Protocol (LLaCA's released scripts: 8 GPUs, no gradient accumulation)
: "${LR:=2e-4}"
: "${MM_PROJECTOR_LR:=2e-5}"
: "${LORA_R:=128}"
: "${LORA_ALPHA:=256}"
: "${LORA_TARGETS:=}"
: "${EPOCHS:=1}"
: "${MAX_STEPS:=}"
: "${BATCH_SIZES:=16 16 20 8 16 8 10 12}"
: "${MULTITASK_BATCH_SIZE:=16}"
: "${GRAD_ACCUM:=1}"
: "${MODEL_MAX_LENGTH:=2048}"
: "${BF16:=True}"
: "${TF32:=True}"
: "${NUM_WORKERS:=4}"
: "${SAVE_STEPS:=}"
: "${EXTRA_TRAIN_ARGS:=}"
# Evaluation
: "${COMPAT:=0}"
if [[ "$COMPAT" == 1 ]]; then : "${RESULT_ROOT:=./results/CoIN_compat}"; else : "${RESULT_ROOT:=./results/CoIN}"; fi
: "${CONV_MODE:=vicuna_v1}"
: "${TEMPERATURE:=0}"
: "${EVAL_BATCH_SIZE:=1}"
: "${MAX_NEW_TOKENS:=}"
: "${IMAGE_PREPROCESS:=}"
: "${EXTRA_EVAL_ARGS:=}"
: "${NEXT_TASK:=0}"
: "${FORCE:=0}"
: "${REQUIRE_DONE:=1}"
: "${ZERO_SHOT_MODEL:=$OUTPUT_ROOT/Zero_shot}"
# Instruction grouping (CHAIN=LLaCA_grouped; evaluation of any chain whose task folders hold group.json)
: "${NEW_GROUP_INIT:=previous}"   # a task opening a new group starts from: previous (the previous task's
                                  # weights, the released scripts) | fresh (new LoRA + PRETRAIN_PROJECTOR, the paper)
: "${GROUP_EMA:=reused}"          # --llaca True for: reused (tasks that reuse a group, released) | all | none
: "${GROUP_THRESHOLD:=}"          # grouping threshold (empty: 0.90 for Instructions, 0.30 for the other types)
: "${ROUTE:=owner}"               # which group answers task i at stage j: owner (the group task i trained in)
                                  # | test_file (the grouping of its test/val file, the released rule)

export PYTHONPATH="$COIN_ROOT${PYTHONPATH:+:$PYTHONPATH}"

# ------------------------------------------------------------------------------------------- helpers
coin_log() { echo "[CoIN $(date +%H:%M:%S)] $*"; }
coin_die() { echo "[CoIN] error: $*" >&2; exit 1; }

coin_require_file() {  # PATH WHAT HINT
    [[ -f "$1" ]] || coin_die "$2 not found: $1${3:+ ($3)}"
}
coin_require_dir() {
    [[ -d "$1" ]] || coin_die "$2 not found: $1${3:+ ($3)}"
}

# Index of a task in CoIN's order (0-based), or an error naming the known tasks.
coin_task_index() {
    local i
    for i in "${!COIN_TASK_NAMES[@]}"; do
        if [[ "${COIN_TASK_NAMES[$i]}" == "$1" ]]; then echo "$i"; return 0; fi
    done
    coin_die "unknown task '$1' (CoIN tasks: ${COIN_TASK_NAMES[*]})"
}

# TASKS (the chain's tasks, in order) as the array COIN_TASKS: each a CoIN task, none repeated.
coin_parse_tasks() {
    read -r -a COIN_TASKS <<< "$TASKS"
    [[ ${#COIN_TASKS[@]} -gt 0 ]] || coin_die "TASKS is empty"
    local t seen=" "
    for t in "${COIN_TASKS[@]}"; do
        coin_task_index "$t" > /dev/null
        [[ "$seen" != *" $t "* ]] || coin_die "TASKS names $t twice: $TASKS"
        seen+="$t "
    done
}

# The task before $1 in TASKS ("" for the first); an error if $1 is not in TASKS.
coin_previous_task() {
    local i
    for i in "${!COIN_TASKS[@]}"; do
        if [[ "${COIN_TASKS[$i]}" == "$1" ]]; then
            if [[ $i -gt 0 ]]; then echo "${COIN_TASKS[$((i - 1))]}"; fi
            return 0
        fi
    done
    coin_die "task $1 is not in TASKS ($TASKS); the chain's order comes from TASKS"
}

coin_last_task() { echo "${COIN_TASKS[-1]}"; }

# Per-device batch sizes (BATCH_SIZES: 8 values in CoIN order) as the array COIN_BATCH_SIZES.
coin_parse_batch_sizes() {
    read -r -a COIN_BATCH_SIZES <<< "$BATCH_SIZES"
    [[ ${#COIN_BATCH_SIZES[@]} -eq 8 ]] \
        || coin_die "BATCH_SIZES must hold 8 values (one per CoIN task, in CoIN order), got '$BATCH_SIZES'"
    local b
    for b in "${COIN_BATCH_SIZES[@]}"; do
        [[ "$b" =~ ^[1-9][0-9]*$ ]] || coin_die "BATCH_SIZES: '$b' is not a positive integer ($BATCH_SIZES)"
    done
}

# The flags of the method the chain trains with.
coin_method_args() {
    case "${CHAIN:-}" in
        LLaCA) echo "--llaca True" ;;
        FixedEMA) echo "--llaca True --llaca_mode fixed" ;;
        LoRA | Multitask) echo "--llaca False" ;;
        LLaCA_grouped) echo "--llaca ${COIN_TASK_EMA:-False}" ;;  # per task, from its group.json
        *) coin_die "CHAIN must be LLaCA, LoRA, FixedEMA, Multitask or LLaCA_grouped (set by the script that sources common.sh), got '${CHAIN:-}'" ;;
    esac
}

coin_llaca_on() {
    [[ "${CHAIN:-}" == LLaCA || "${CHAIN:-}" == FixedEMA ]] \
        || [[ "${CHAIN:-}" == LLaCA_grouped && "${COIN_TASK_EMA:-}" == True ]]
}

# True if DIR holds a Trainer checkpoint-N with its completion marker.
coin_has_complete_checkpoint() {
    compgen -G "$1/checkpoint-*/COMPLETE" > /dev/null
}

coin_newest_complete_checkpoint() {
    local f best="" n bestn=-1
    for f in "$1"/checkpoint-*/COMPLETE; do
        [[ -f "$f" ]] || continue
        n="${f%/COMPLETE}"; n="${n##*/checkpoint-}"
        [[ "$n" =~ ^[0-9]+$ ]] || continue
        if ((n > bestn)); then bestn=$n; best="${f%/COMPLETE}"; fi
    done
    echo "$best"
}

# --------------------------------------------------------------------------------------------- training

# One training run: coin_train_run TASK DATA OUTPUT_DIR BATCH_SIZE INIT_FLAG INIT_PATH
coin_train_run() {
    local task="$1" data="$2" out="$3" batch="$4" init_flag="$5" init_path="$6"
    local method_dir
    method_dir="$(dirname "$out")"
    coin_require_file "$data" "training data of $task" "DATA_ROOT=$DATA_ROOT INSTRUCTION_TYPE=$INSTRUCTION_TYPE"
    coin_require_dir "$IMAGE_ROOT" "image folder (IMAGE_ROOT)" "the CoIN images, cl_dataset"
    coin_require_dir "$BASE_LM" "base language model (BASE_LM)"
    coin_require_dir "$VISION_TOWER" "vision tower (VISION_TOWER)"
    coin_require_file "$DS_CONFIG" "DeepSpeed config (DS_CONFIG)"

    local -a launcher args method extra
    launcher=("$DEEPSPEED")
    if [[ -n "$NUM_GPUS" ]]; then launcher+=(--num_gpus "$NUM_GPUS"); else launcher+=(--include "$GPUS"); fi
    launcher+=(--master_port "$MASTER_PORT" "$COIN_ROOT/llava/train/train_mem.py")
    args=(--deepspeed "$DS_CONFIG"
          --lora_enable True --lora_r "$LORA_R" --lora_alpha "$LORA_ALPHA" --mm_projector_lr "$MM_PROJECTOR_LR"
          --model_name_or_path "$BASE_LM" "$init_flag" "$init_path"
          --version v1 --data_path "$data" --image_folder "$IMAGE_ROOT" --vision_tower "$VISION_TOWER"
          --mm_projector_type mlp2x_gelu --mm_vision_select_layer -2
          --mm_use_im_start_end False --mm_use_im_patch_token False
          --image_aspect_ratio pad --group_by_modality_length True
          --bf16 "$BF16" --output_dir "$out" --num_train_epochs "$EPOCHS"
          --per_device_train_batch_size "$batch" --per_device_eval_batch_size "$batch"
          --gradient_accumulation_steps "$GRAD_ACCUM" --evaluation_strategy no
          --learning_rate "$LR" --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine
          --logging_steps 1 --tf32 "$TF32" --model_max_length "$MODEL_MAX_LENGTH"
          --gradient_checkpointing True --dataloader_num_workers "$NUM_WORKERS" --lazy_preprocess True
          --report_to none)
    if [[ -n "$SAVE_STEPS" ]]; then args+=(--save_strategy steps --save_steps "$SAVE_STEPS")
    else args+=(--save_strategy epoch); fi
    if [[ -n "$MAX_STEPS" ]]; then args+=(--max_steps "$MAX_STEPS"); fi
    if [[ -n "$LORA_TARGETS" ]]; then args+=(--lora_targets "$LORA_TARGETS"); fi
    read -r -a method <<< "$(coin_method_args)"
    args+=("${method[@]}")
    local resume=""
    if coin_has_complete_checkpoint "$out"; then
        resume="$(coin_newest_complete_checkpoint "$out")"
        args+=(--resume_from_checkpoint True)
    fi
    read -r -a extra <<< "$EXTRA_TRAIN_ARGS"
    args+=("${extra[@]}")

    mkdir -p "$out" "$method_dir/logs"
    local log
    log="$method_dir/logs/$task.$(date +%Y%m%d-%H%M%S).$$.log"
    if [[ -n "$resume" ]]; then
        coin_log "$METHOD/$task: resuming from $resume (no DONE marker; newest complete Trainer checkpoint)"
    else
        coin_log "$METHOD/$task: training from ${init_flag#--} $init_path"
    fi
    coin_log "$METHOD/$task: batch $batch per device, log $log"
    { printf '%q ' "${launcher[@]}" "${args[@]}"; echo; } > "$log"
    if ! "${launcher[@]}" "${args[@]}" 2>&1 | tee -a "$log"; then
        coin_die "$METHOD/$task: training failed (log: $log). Rerun the same script to continue: finished tasks are skipped, this one resumes from its newest complete checkpoint if it has one"
    fi

    local missing=() f
    for f in adapter_config.json non_lora_trainables.bin config.json; do
        [[ -f "$out/$f" ]] || missing+=("$f")
    done
    [[ -f "$out/adapter_model.safetensors" || -f "$out/adapter_model.bin" ]] || missing+=(adapter_model.safetensors)
    if coin_llaca_on && [[ ! -f "$out/llaca_state.pt" ]]; then missing+=(llaca_state.pt); fi
    [[ ${#missing[@]} -eq 0 ]] || coin_die "$METHOD/$task: training exited 0 but $out lacks ${missing[*]}; not marking it DONE (log: $log)"
    # A chain's last step before DONE (the grouped chain commits the task to its codebook here).
    if [[ -n "${COIN_BEFORE_DONE:-}" ]]; then "$COIN_BEFORE_DONE" "$task" "$out"; fi

    if [[ "$KEEP_CHECKPOINTS" == 0 ]]; then rm -rf "$out"/checkpoint-*; fi
    local tmp="$out/.DONE.$$.tmp"
    {
        echo "task=$task"
        echo "method=$METHOD"
        echo "init=${init_flag#--} $init_path"
        [[ -z "$resume" ]] || echo "resumed_from=$resume"
        [[ -z "${COIN_DONE_EXTRA:-}" ]] || echo "$COIN_DONE_EXTRA"
        echo "finished=$(date -Iseconds)"
        echo "log=$log"
    } > "$tmp"
    mv -f "$tmp" "$out/DONE"
    coin_log "$METHOD/$task: done -> $out"
}

# Train one task of the chain: from the pretrain projector if it is the first of TASKS, else from the
# previous task's saved weights. Skipped when its DONE marker exists.
coin_train_task() {
    local task="$1" idx prev out
    idx="$(coin_task_index "$task")"
    coin_method_args > /dev/null
    prev="$(coin_previous_task "$task")"
    out="$OUTPUT_ROOT/$METHOD/$task"
    if [[ -f "$out/DONE" ]]; then
        coin_log "$METHOD/$task: DONE marker present, skipping (delete $out to train it again)"
        return 0
    fi
    if [[ -z "$prev" ]]; then
        coin_require_file "$PRETRAIN_PROJECTOR" "pretrain projector (PRETRAIN_PROJECTOR)" "LLaVA-1.5's pretrain-only mm_projector.bin"
        coin_train_run "$task" "$DATA_ROOT/$INSTRUCTION_TYPE/$task/train.json" "$out" "${COIN_BATCH_SIZES[$idx]}" \
            --pretrain_mm_mlp_adapter "$PRETRAIN_PROJECTOR"
    else
        local prev_dir="$OUTPUT_ROOT/$METHOD/$prev"
        [[ -f "$prev_dir/DONE" ]] || coin_die "$task starts from $prev, which has not finished ($prev_dir/DONE missing). Train $prev first (Train_all.sh runs the chain in order)"
        coin_train_run "$task" "$DATA_ROOT/$INSTRUCTION_TYPE/$task/train.json" "$out" "${COIN_BATCH_SIZES[$idx]}" \
            --previous_task_model_path "$prev_dir"
    fi
}

# The whole chain: each task's own script from CHAIN_DIR, in TASKS order (as CoIN's Train_all.sh does).
coin_train_all() {
    local chain_dir="$1" task idx n=0
    local -a tasks=("${COIN_TASKS[@]}")
    coin_log "chain $METHOD: ${#tasks[*]} tasks (${tasks[*]}) -> $OUTPUT_ROOT/$METHOD"
    for task in "${tasks[@]}"; do
        n=$((n + 1))
        idx="$(coin_task_index "$task")"
        coin_log "chain $METHOD: task $n/${#tasks[@]} $task"
        bash "$chain_dir/${COIN_TRAIN_SCRIPTS[$idx]}"
    done
    coin_log "chain $METHOD: all ${#tasks[@]} tasks done"
}

# Joint training on the union of the tasks (Instructions/Multitask/train.json), from the pretrain projector.
coin_train_multitask() {
    local out="$OUTPUT_ROOT/$METHOD/Multitask"
    coin_method_args > /dev/null
    if [[ -f "$out/DONE" ]]; then
        coin_log "$METHOD/Multitask: DONE marker present, skipping (delete $out to train it again)"
        return 0
    fi
    coin_require_file "$PRETRAIN_PROJECTOR" "pretrain projector (PRETRAIN_PROJECTOR)" "LLaVA-1.5's pretrain-only mm_projector.bin"
    coin_train_run Multitask "$DATA_ROOT/$INSTRUCTION_TYPE/Multitask/train.json" "$out" "$MULTITASK_BATCH_SIZE" \
        --pretrain_mm_mlp_adapter "$PRETRAIN_PROJECTOR"
}

# ------------------------------------------------------------------------------- instruction grouping
# The grouped chain (Train_LLaCA_grouped/): before each task, `python -m llaca_plugin.grouping` compares its
# train.json with the chain's codebook (OUTPUT_ROOT/METHOD/codebook/, rebuilt from the previous stage's copy)
# and the answer, stored in <Task>/group.json before training, picks the initial weights and the EMA. After
# training, before DONE, the task is committed to its group and the codebook, as it then is, is copied to
# <Task>/codebook/. Evaluation routes each cell to the latest checkpoint of a group (coin_group_routes).

# The grouping's command line (it imports no torch: about 1 s per call).
coin_grouping() {
    "$PYTHON" -m llaca_plugin.grouping "$@"
}

coin_group_check_settings() {
    [[ "$NEW_GROUP_INIT" == previous || "$NEW_GROUP_INIT" == fresh ]] \
        || coin_die "NEW_GROUP_INIT must be previous or fresh, got '$NEW_GROUP_INIT'"
    [[ "$GROUP_EMA" == reused || "$GROUP_EMA" == all || "$GROUP_EMA" == none ]] \
        || coin_die "GROUP_EMA must be reused, all or none, got '$GROUP_EMA'"
    [[ "$ROUTE" == owner || "$ROUTE" == test_file ]] || coin_die "ROUTE must be owner or test_file, got '$ROUTE'"
}

# The chain's codebook := the copy kept by stage PREV_TASK (empty before the first task). The codebook is
# always rebuilt from that copy, so a deleted/retrained stage or an interrupted commit cannot leak into it.
coin_group_sync_codebook() {  # PREV_TASK
    local live="$OUTPUT_ROOT/$METHOD/codebook" tmp
    tmp="$live.$$.tmp"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$live")"
    if [[ -n "$1" ]]; then
        coin_require_dir "$OUTPUT_ROOT/$METHOD/$1/codebook" "codebook copy of stage $1" \
            "$1 was not trained by the grouped chain; each grouped stage keeps the codebook as it was after it"
        cp -R "$OUTPUT_ROOT/$METHOD/$1/codebook" "$tmp"
    else
        mkdir "$tmp"
    fi
    if [[ -d "$live" ]] && ! diff -r -q "$live" "$tmp" > /dev/null 2>&1; then
        coin_log "$METHOD: codebook $live reset to ${1:+the copy of stage }${1:-empty (first task)}"
    fi
    rm -rf "$live"
    mv "$tmp" "$live"
}

# Decide TASK's group against the chain's codebook and write OUT/group.json (atomically, before training):
# group, new, similarity, the initial weights and --llaca, with the settings they came from.
coin_group_decide() {  # TASK PREV_TASK OUT TRAIN_JSON
    local task="$1" prev="$2" out="$3" data="$4" live="$OUTPUT_ROOT/$METHOD/codebook" answer
    local -a threshold=() earlier=()
    [[ -z "$GROUP_THRESHOLD" ]] || threshold=(--threshold "$GROUP_THRESHOLD")
    coin_group_sync_codebook "$prev"
    answer="$(coin_grouping --codebook "$live" --instruct "$data" "${threshold[@]}")" \
        || coin_die "$METHOD/$task: grouping failed: python -m llaca_plugin.grouping --codebook $live --instruct $data"
    local t
    for t in "${COIN_TASKS[@]}"; do
        [[ "$t" != "$task" ]] || break
        earlier+=("$t")
    done
    mkdir -p "$out"
    "$PYTHON" - "$out/group.json" "$answer" "$task" "$prev" "$OUTPUT_ROOT/$METHOD" "$NEW_GROUP_INIT" "$GROUP_EMA" \
        "$PRETRAIN_PROJECTOR" "$live" "$data" "$GROUP_THRESHOLD" "${earlier[@]}" << 'EOF' || exit 1
import datetime, json, os, sys
target, answer, task, prev, method_dir, new_init, ema_policy, projector, codebook, data, threshold = sys.argv[1:12]
earlier = sys.argv[12:]
decision = json.loads(answer)
group, new = int(decision["group"]), bool(decision["new"])
if not new:  # the group's latest checkpoint: the last earlier task of this group
    owners = []
    for t in earlier:
        path = os.path.join(method_dir, t, "group.json")
        if not os.path.isfile(path):
            sys.exit(f"[CoIN] error: {path} missing: every earlier stage of a grouped chain records its group")
        with open(path) as f:
            if json.load(f)["group"] == group:
                owners.append(t)
    if not owners:
        sys.exit(f"[CoIN] error: {task} reuses group {group}, but no earlier task of the chain is in it")
    init = ("previous_task_model_path", f"{method_dir}/{owners[-1]}", owners[-1], f"latest checkpoint of group {group}")
elif prev and new_init == "previous":
    init = ("previous_task_model_path", f"{method_dir}/{prev}", prev, "new group, NEW_GROUP_INIT=previous")
else:
    why = "first task" if not prev else "new group, NEW_GROUP_INIT=fresh"
    init = ("pretrain_mm_mlp_adapter", projector, None, why)
llaca = {"reused": not new, "all": True, "none": False}[ema_policy]
record = {"task": task, "group": group, "new": new, "similarity": decision["similarity"],
          "init_flag": init[0], "init_path": init[1], "init_task": init[2], "init_reason": init[3],
          "llaca": llaca, "new_group_init": new_init, "group_ema": ema_policy,
          "threshold": float(threshold) if threshold else None, "instruct": data, "codebook": codebook,
          "codebook_from": f"{method_dir}/{prev}/codebook" if prev else None,
          "decided": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
tmp = f"{target}.{os.getpid()}.tmp"
with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
os.replace(tmp, target)
EOF
}

# The fields of OUT/group.json the chain acts on, as the array COIN_GROUP_FIELDS:
# group, new, llaca, init_task ("" = the pretrain projector), init_reason, new_group_init, group_ema.
coin_group_read() {  # GROUP_JSON
    local fields
    fields="$("$PYTHON" - "$1" << 'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("group", "new", "llaca", "init_task", "init_reason", "new_group_init", "group_ema"):
    print("" if d[k] is None else d[k])
EOF
)" || coin_die "cannot read $1 (delete it to decide the task's group again)"
    mapfile -t COIN_GROUP_FIELDS <<< "$fields"
}

# After training, before DONE (coin_train_run's COIN_BEFORE_DONE): commit the task to its group and keep
# the codebook as it now is in OUT/codebook/.
coin_group_commit() {  # TASK OUT
    local task="$1" out="$2" live="$OUTPUT_ROOT/$METHOD/codebook" answer
    coin_group_sync_codebook "$COIN_GROUP_PREV"
    answer="$(coin_grouping --codebook "$live" --instruct "$COIN_GROUP_DATA" --commit "$COIN_GROUP")" \
        || coin_die "$METHOD/$task: committing to the codebook failed (group $COIN_GROUP, $COIN_GROUP_DATA)"
    coin_log "$METHOD/$task: codebook: $answer"
    rm -rf "$out/codebook.$$.tmp"
    cp -R "$live" "$out/codebook.$$.tmp"
    rm -rf "$out/codebook"
    mv "$out/codebook.$$.tmp" "$out/codebook"
}

# One task of the grouped chain. Skipped when DONE; a rerun repeats the decision stored in group.json.
coin_train_grouped_task() {
    local task="$1" idx prev out data
    idx="$(coin_task_index "$task")"
    coin_method_args > /dev/null
    coin_group_check_settings
    prev="$(coin_previous_task "$task")"
    out="$OUTPUT_ROOT/$METHOD/$task"
    if [[ -f "$out/DONE" ]]; then
        coin_log "$METHOD/$task: DONE marker present, skipping (delete $out to train it again)"
        return 0
    fi
    if [[ -n "$prev" && ! -f "$OUTPUT_ROOT/$METHOD/$prev/DONE" ]]; then
        coin_die "$task comes after $prev, which has not finished ($OUTPUT_ROOT/$METHOD/$prev/DONE missing). Train $prev first (Train_all.sh runs the chain in order)"
    fi
    data="$DATA_ROOT/$INSTRUCTION_TYPE/$task/train.json"
    coin_require_file "$data" "training data of $task" "DATA_ROOT=$DATA_ROOT INSTRUCTION_TYPE=$INSTRUCTION_TYPE"
    if [[ -f "$out/group.json" ]]; then
        coin_log "$METHOD/$task: repeating the group decision stored in $out/group.json"
    else
        coin_group_decide "$task" "$prev" "$out" "$data"
    fi
    coin_group_read "$out/group.json"
    local group="${COIN_GROUP_FIELDS[0]}" new="${COIN_GROUP_FIELDS[1]}" ema="${COIN_GROUP_FIELDS[2]}"
    local init_flag=--pretrain_mm_mlp_adapter init_path="$PRETRAIN_PROJECTOR"
    if [[ -n "${COIN_GROUP_FIELDS[3]}" ]]; then
        init_flag=--previous_task_model_path init_path="$OUTPUT_ROOT/$METHOD/${COIN_GROUP_FIELDS[3]}"
    fi
    if [[ "${COIN_GROUP_FIELDS[5]}" != "$NEW_GROUP_INIT" || "${COIN_GROUP_FIELDS[6]}" != "$GROUP_EMA" ]]; then
        coin_log "$METHOD/$task: note: group.json was decided with NEW_GROUP_INIT=${COIN_GROUP_FIELDS[5]} GROUP_EMA=${COIN_GROUP_FIELDS[6]}; repeating it (delete $out to decide again)"
    fi
    coin_log "$METHOD/$task: group $group ($([[ "$new" == True ]] && echo new || echo reused)), from ${init_flag#--} $init_path (${COIN_GROUP_FIELDS[4]}), --llaca $ema"
    if [[ "$init_flag" == --previous_task_model_path ]]; then
        [[ -f "$init_path/DONE" ]] || coin_die "$task starts from $init_path, which has not finished (no DONE marker)"
    else
        coin_require_file "$init_path" "pretrain projector (PRETRAIN_PROJECTOR)" "LLaVA-1.5's pretrain-only mm_projector.bin"
    fi
    COIN_TASK_EMA="$ema" COIN_GROUP="$group" COIN_GROUP_PREV="$prev" COIN_GROUP_DATA="$data"
    COIN_BEFORE_DONE=coin_group_commit COIN_DONE_EXTRA="group=$group new=$new llaca=$ema"
    coin_train_run "$task" "$data" "$out" "${COIN_BATCH_SIZES[$idx]}" "$init_flag" "$init_path"
}

# ------------------------------------------------------------------------------------------- evaluation

# Result folder of one cell: RESULT_ROOT/METHOD/STAGE/TASK; the one-row stages Zero_shot and Multitask
# are method-independent: RESULT_ROOT/STAGE/TASK.
coin_cell_dir() {
    case "$1" in
        Zero_shot | Multitask) echo "$RESULT_ROOT/$1/$2" ;;
        *) echo "$RESULT_ROOT/$METHOD/$1/$2" ;;
    esac
}

# The file a result must be newer than: the model's DONE marker, else its config.json.
coin_model_stamp() {
    if [[ -f "$1/DONE" ]]; then echo "$1/DONE"; else echo "$1/config.json"; fi
}

# True if FILE exists and is newer than the model it was made from.
coin_fresh() {
    [[ -f "$1" ]] && [[ "$1" -nt "$(coin_model_stamp "$2")" ]]
}

# True if the cell's score.json is complete, newer than the model and made from MODELPATH.
coin_cell_done() {
    local score="$1/score.json" model="$2"
    coin_fresh "$score" "$model" || return 1
    "$PYTHON" - "$score" "$model" << 'EOF'
import json, os, sys
with open(sys.argv[1]) as f:
    recorded = json.load(f).get("checkpoint")
sys.exit(0 if recorded and os.path.realpath(recorded) == os.path.realpath(sys.argv[2]) else 1)
EOF
}

# Generate answers for TASK with MODELPATH (one chunk per CUDA_VISIBLE_DEVICES entry), merge them and
# score them into RESULT_ROOT/.../STAGE/TASK/score.json. Skipped when that score.json is up to date.
coin_eval_task() {
    local task="$1" stage="${2:-}" model="${3:-}" idx
    idx="$(coin_task_index "$task")"
    [[ -n "$stage" ]] || stage="$(coin_last_task)"
    if [[ -z "$model" ]] && coin_group_stage "$stage"; then  # grouped chain: the checkpoint of the task's group
        coin_group_routes "" "$stage/$task" > /dev/null
        model="${COIN_ROUTE_MODEL[0]}"
    fi
    [[ -n "$model" ]] || model="$OUTPUT_ROOT/$METHOD/$stage"
    local cell
    cell="$(coin_cell_dir "$stage" "$task")"
    coin_require_dir "$model" "model directory (MODELPATH)" "usage: bash $(basename "$0") [STAGE] [MODELPATH]"
    coin_require_file "$model/config.json" "config.json of the model" "a directory written by training or by llava.model.zero_shot"
    if [[ "$REQUIRE_DONE" == 1 && -f "$model/adapter_config.json" && ! -f "$model/DONE" ]]; then
        coin_die "$model has no DONE marker: its training has not finished (REQUIRE_DONE=0 evaluates it anyway)"
    fi
    if [[ "$FORCE" != 1 ]] && coin_cell_done "$cell" "$model"; then
        coin_log "eval $task @ $stage: score.json up to date, skipping ($cell)"
        return 0
    fi
    local question="$DATA_ROOT/$INSTRUCTION_TYPE/$task/${COIN_EVAL_SPLITS[$idx]}.json"
    coin_require_file "$question" "question file of $task" "DATA_ROOT=$DATA_ROOT INSTRUCTION_TYPE=$INSTRUCTION_TYPE"
    coin_require_dir "$IMAGE_ROOT" "image folder (IMAGE_ROOT)"
    coin_require_dir "$BASE_LM" "base language model (BASE_LM, passed as --model-base)"
    local -a scorer_args
    case "$task" in
        ScienceQA)
            coin_require_file "$IMAGE_ROOT/ScienceQA/problems.json" "ScienceQA annotations"
            scorer_args=(--base-dir "$IMAGE_ROOT/ScienceQA") ;;
        TextVQA)
            coin_require_file "$IMAGE_ROOT/TextVQA/TextVQA_0.5.1_val.json" "TextVQA annotations"
            scorer_args=(--annotation-file "$IMAGE_ROOT/TextVQA/TextVQA_0.5.1_val.json") ;;
        GQA)
            coin_require_file "$IMAGE_ROOT/GQA/testdev_balanced_questions.json" "GQA annotations"
            scorer_args=(--annotation-file "$IMAGE_ROOT/GQA/testdev_balanced_questions.json") ;;
        *) scorer_args=() ;;
    esac
    [[ "$COMPAT" != 1 ]] || scorer_args+=(--compat)
    if [[ "$FORCE" == 1 ]]; then rm -rf "$cell"; fi
    mkdir -p "$cell"
    rm -f "$cell/score.json"

    local gpu_list="${CUDA_VISIBLE_DEVICES:-0}"
    local -a GPULIST pids gen extra
    IFS=',' read -r -a GPULIST <<< "$gpu_list"
    local CHUNKS=${#GPULIST[@]} IDX
    gen=(--model-path "$model" --model-base "$BASE_LM" --question-file "$question" --image-folder "$IMAGE_ROOT"
         --temperature "$TEMPERATURE" --conv-mode "$CONV_MODE" --batch-size "$EVAL_BATCH_SIZE")
    if [[ -n "$MAX_NEW_TOKENS" ]]; then gen+=(--max_new_tokens "$MAX_NEW_TOKENS"); fi
    if [[ -n "$IMAGE_PREPROCESS" ]]; then gen+=(--image-preprocess "$IMAGE_PREPROCESS"); fi
    read -r -a extra <<< "$EXTRA_EVAL_ARGS"
    gen+=("${extra[@]}")
    coin_log "eval $task @ $stage: ${COIN_INFERENCE[$idx]} on $question with $model, $CHUNKS chunk(s) -> $cell"
    pids=()
    # An interrupted evaluation stops its own chunk processes (their answers files are written atomically).
    trap 'kill "${pids[@]}" 2> /dev/null || true; exit 130' INT TERM
    for IDX in $(seq 0 $((CHUNKS - 1))); do
        local answers="$cell/${CHUNKS}_${IDX}.jsonl"
        if coin_fresh "$answers" "$model"; then
            coin_log "eval $task @ $stage: chunk $IDX answers exist, reused ($answers)"
            pids+=("")
            continue
        fi
        CUDA_VISIBLE_DEVICES="${GPULIST[$IDX]}" "$PYTHON" -m "llava.eval.CoIN.${COIN_INFERENCE[$idx]}" "${gen[@]}" \
            --answers-file "$answers" --num-chunks "$CHUNKS" --chunk-idx "$IDX" > "$cell/${CHUNKS}_${IDX}.log" 2>&1 &
        pids+=("$!")
    done
    local failed=0
    for IDX in $(seq 0 $((CHUNKS - 1))); do
        [[ -n "${pids[$IDX]}" ]] || continue
        if ! wait "${pids[$IDX]}"; then
            failed=1
            echo "[CoIN] chunk $IDX of $task @ $stage failed; last lines of $cell/${CHUNKS}_${IDX}.log:" >&2
            tail -n 20 "$cell/${CHUNKS}_${IDX}.log" >&2 || true
        fi
    done
    trap - INT TERM
    [[ $failed == 0 ]] || coin_die "eval $task @ $stage: generation failed"

    local merged="$cell/merge.jsonl"
    : > "$merged.tmp"
    for IDX in $(seq 0 $((CHUNKS - 1))); do
        cat "$cell/${CHUNKS}_${IDX}.jsonl" >> "$merged.tmp"
    done
    mv -f "$merged.tmp" "$merged"
    "$PYTHON" -m "llava.eval.CoIN.${COIN_SCORERS[$idx]}" "${scorer_args[@]}" --question-file "$question" \
        --result-file "$merged" --output-dir "$cell" --score-file "$cell/score.json" \
        --task "$task" --stage "$stage" --checkpoint "$model" > "$cell/score.log" 2>&1 \
        || { cat "$cell/score.log" >&2; coin_die "eval $task @ $stage: scoring failed"; }
    coin_log "eval $task @ $stage: $(grep -m1 '^Accuracy' "$cell/score.log" || echo scored) -> $cell/score.json"
}

# Run TASK's own eval script (as CoIN's eval_*.sh do), so an edited per-task script takes effect.
coin_eval_script() {  # TASK STAGE MODELPATH
    local idx
    idx="$(coin_task_index "$1")"
    bash "$COIN_SCRIPTS/Eval/${COIN_EVAL_SCRIPTS[$idx]}" "$2" "$3"
}

# Every task of TASKS with one model: STAGE (default: the last task of TASKS) and MODELPATH.
# A grouped chain's stage without MODELPATH: each task answered by the checkpoint coin_group_routes picks.
coin_eval_all() {
    local stage="${1:-}" model="${2:-}" task n=0
    [[ -n "$stage" ]] || stage="$(coin_last_task)"
    local -a tasks=("${COIN_TASKS[@]}") models=() cells=()
    if [[ -z "$model" ]] && coin_group_stage "$stage"; then
        for task in "${tasks[@]}"; do cells+=("$stage/$task"); done
        coin_group_routes "" "${cells[@]}" > /dev/null
        models=("${COIN_ROUTE_MODEL[@]}")
    fi
    [[ -n "$model" ]] || model="$OUTPUT_ROOT/$METHOD/$stage"
    for task in "${tasks[@]}"; do
        n=$((n + 1))
        coin_log "eval_all: ($n/${#tasks[@]}) $task @ $stage"
        coin_eval_script "$task" "$stage" "${models[$((n - 1))]:-$model}"
    done
}

# Write the summary unless it is newer than every score.json it reads.
coin_summarize() {  # RESULTS_DIR TASK...
    local results="$1"; shift
    local -a matrix_args=(--results "$results" --tasks "$@")
    local zero="$RESULT_ROOT/Zero_shot"
    if compgen -G "$zero/*/score.json" > /dev/null; then matrix_args+=(--zero-shot "$zero"); fi
    if [[ "$FORCE" != 1 && -f "$results/summary.json" && -f "$results/matrix.png" && -f "$results/curves.png" ]] \
        && [[ -z "$(find "$results" "$zero" -name score.json -newer "$results/summary.json" 2> /dev/null | head -n 1)" ]]; then
        coin_log "matrix: $results/summary.json is up to date"
        return 0
    fi
    coin_log "matrix: python -m llava.eval.matrix ${matrix_args[*]}"
    "$PYTHON" -m llava.eval.matrix "${matrix_args[@]}"
    coin_log "matrix: wrote $results/summary.json, summary.md, matrix.png, curves.png"
}

# The matrix's cells as the arrays COIN_CELL_STAGE, COIN_CELL_TASK, COIN_CELL_MODEL (the weights that answer)
# and COIN_CELL_ROUTE: for every stage j with a DONE marker (in TASKS order, up to the first unfinished
# stage), every task i <= j (and task j+1 with NEXT_TASK=1). The model is stage j's own, or in a grouped chain
# (group.json in the task folders) the one coin_group_routes picks; ROUTING_FILE (optional) receives that table.
coin_matrix_cells() {  # [ROUTING_FILE]
    local -a tasks=("${COIN_TASKS[@]}") stages=() cells=()
    local j i
    COIN_CELL_STAGE=() COIN_CELL_TASK=() COIN_CELL_MODEL=() COIN_CELL_ROUTE=()
    for j in "${!tasks[@]}"; do
        if [[ -f "$OUTPUT_ROOT/$METHOD/${tasks[$j]}/DONE" ]]; then
            stages+=("${tasks[$j]}")
        else
            local k
            for ((k = j + 1; k < ${#tasks[@]}; k++)); do
                [[ ! -f "$OUTPUT_ROOT/$METHOD/${tasks[$k]}/DONE" ]] \
                    || coin_log "matrix: warning: ${tasks[$k]} is DONE but the earlier stage ${tasks[$j]} is not; stages after ${tasks[$j]} are left out"
            done
            break
        fi
    done
    [[ ${#stages[@]} -gt 0 ]] || coin_die "no finished stage in $OUTPUT_ROOT/$METHOD (no ${tasks[0]}/DONE); train the chain first"
    coin_log "matrix $METHOD: ${#stages[@]} of ${#tasks[@]} stages done (${stages[*]})"
    for j in "${!stages[@]}"; do
        local last=$j
        if [[ "$NEXT_TASK" == 1 && $((j + 1)) -lt ${#tasks[@]} ]]; then last=$((j + 1)); fi
        for ((i = 0; i <= last; i++)); do
            COIN_CELL_STAGE+=("${stages[$j]}")
            COIN_CELL_TASK+=("${tasks[$i]}")
            COIN_CELL_MODEL+=("$OUTPUT_ROOT/$METHOD/${stages[$j]}")
            COIN_CELL_ROUTE+=("")
            cells+=("${stages[$j]}/${tasks[$i]}")
        done
    done
    if coin_group_stage "${stages[0]}"; then
        coin_log "matrix $METHOD: grouped chain (group.json in its task folders), ROUTE=$ROUTE"
        coin_group_routes "${1:-}" "${cells[@]}" > /dev/null
        COIN_CELL_MODEL=("${COIN_ROUTE_MODEL[@]}")
        COIN_CELL_ROUTE=("${COIN_ROUTE_INFO[@]}")
    fi
}

# The accuracy matrix (cells: coin_matrix_cells), then the summary and its figures. A cell answered by the same
# checkpoint as an earlier cell of the same task (grouped chains) starts from that cell's answers: scored, not
# generated again.
coin_eval_matrix() {
    coin_matrix_cells "$RESULT_ROOT/$METHOD/routing.json"
    local n m
    for n in "${!COIN_CELL_TASK[@]}"; do
        coin_log "matrix: cell $((n + 1))/${#COIN_CELL_TASK[@]}: ${COIN_CELL_TASK[$n]} after stage ${COIN_CELL_STAGE[$n]}${COIN_CELL_ROUTE[$n]:+, answered by ${COIN_CELL_MODEL[$n]} (${COIN_CELL_ROUTE[$n]})}"
        for ((m = 0; m < n; m++)); do
            if [[ "${COIN_CELL_TASK[$m]}" == "${COIN_CELL_TASK[$n]}" && "${COIN_CELL_MODEL[$m]}" == "${COIN_CELL_MODEL[$n]}" ]]; then
                coin_copy_answers "$(coin_cell_dir "${COIN_CELL_STAGE[$m]}" "${COIN_CELL_TASK[$m]}")" \
                    "$(coin_cell_dir "${COIN_CELL_STAGE[$n]}" "${COIN_CELL_TASK[$n]}")" "${COIN_CELL_MODEL[$n]}"
                break
            fi
        done
        coin_eval_script "${COIN_CELL_TASK[$n]}" "${COIN_CELL_STAGE[$n]}" "${COIN_CELL_MODEL[$n]}"
    done
    coin_summarize "$RESULT_ROOT/$METHOD" "${COIN_TASKS[@]}"
}

# Copy the chunk answers of a scored cell to another cell of the same task and checkpoint (unless FORCE=1 or the
# target is already scored); coin_eval_task then reuses them as its own.
coin_copy_answers() {  # FROM_CELL TO_CELL MODELPATH
    local from="$1" to="$2" model="$3" f
    [[ "$FORCE" != 1 ]] || return 0
    ! coin_cell_done "$to" "$model" || return 0
    coin_cell_done "$from" "$model" || return 0
    mkdir -p "$to"
    for f in "$from"/[0-9]*_[0-9]*.jsonl; do
        [[ -f "$f" ]] && ! coin_fresh "$to/${f##*/}" "$model" || continue
        cp "$f" "$to/${f##*/}.$$.tmp"
        mv -f "$to/${f##*/}.$$.tmp" "$to/${f##*/}"
        coin_log "matrix: $to/${f##*/}: answers of the same checkpoint copied from $from"
    done
}

# Which checkpoint answers each cell of the matrix, one tab-separated line per cell: STAGE TASK CHECKPOINT and,
# in a grouped chain, how it was chosen. Writes nothing; call it after sourcing this file.
coin_print_routes() {
    coin_matrix_cells > /dev/null
    local n
    for n in "${!COIN_CELL_TASK[@]}"; do
        printf '%s\t%s\t%s\t%s\n' "${COIN_CELL_STAGE[$n]}" "${COIN_CELL_TASK[$n]}" "${COIN_CELL_MODEL[$n]}" "${COIN_CELL_ROUTE[$n]}"
    done
}

# True if STAGE is a finished stage of a grouped chain (its folder holds group.json and DONE).
coin_group_stage() {
    [[ -f "$OUTPUT_ROOT/$METHOD/$1/group.json" && -f "$OUTPUT_ROOT/$METHOD/$1/DONE" ]]
}

# Routing of a grouped chain. For the cell (stage j, task i) the answering group is, with ROUTE=owner, the group
# task i was trained in (its group.json) when i <= j; otherwise (ROUTE=test_file, the released rule; or the
# next-task cell i = j+1, whose group is not decided at stage j) the grouping of task i's evaluated file
# (test/val) against stage j's codebook copy. The checkpoint is that group's latest at a stage <= j. Both groups
# are computed for every cell. Fills COIN_ROUTE_MODEL and COIN_ROUTE_INFO (one entry per cell) and prints
# STAGE TASK CHECKPOINT OWNER_GROUP TEST_GROUP TEST_SIMILARITY RULE per cell (tab-separated); ROUTING_FILE
# (may be "") receives the table as JSON, rewritten only when it changes.
coin_group_routes() {  # ROUTING_FILE STAGE/TASK...
    coin_group_check_settings
    local file="$1" table k
    shift
    local -a splits=() fields
    for k in "${!COIN_TASK_NAMES[@]}"; do splits+=("${COIN_TASK_NAMES[$k]}=${COIN_EVAL_SPLITS[$k]}"); done
    table="$("$PYTHON" - "$OUTPUT_ROOT/$METHOD" "$ROUTE" "$GROUP_THRESHOLD" "$DATA_ROOT/$INSTRUCTION_TYPE" "$file" \
        "${COIN_TASKS[*]}" "${splits[*]}" "$@" << 'EOF'
import json, os, sys
from llaca_plugin.grouping import GroupingError, decide
method_dir, route, threshold, data_dir, routing_file, tasks, splits = sys.argv[1:8]
tasks, splits, cells = tasks.split(), dict(s.split("=") for s in splits.split()), sys.argv[8:]
groups = {}
def group_of(task):
    if task not in groups:
        path = os.path.join(method_dir, task, "group.json")
        if not os.path.isfile(path):
            sys.exit(f"[CoIN] error: {path} missing: every stage of a grouped chain records its group")
        with open(path) as f:
            groups[task] = json.load(f)["group"]
    return groups[task]
rows = []
for cell in cells:
    stage, task = cell.split("/")
    if stage not in tasks:
        sys.exit(f"[CoIN] error: stage {stage} is not in TASKS ({' '.join(tasks)})")
    seen = tasks[: tasks.index(stage) + 1]
    latest = {group_of(t): t for t in seen}  # group -> its latest task at a stage <= j
    owner = group_of(task) if task in seen else None
    codebook = os.path.join(method_dir, stage, "codebook")
    test_file = os.path.join(data_dir, task, f"{splits[task]}.json")
    if not os.path.isdir(codebook):
        sys.exit(f"[CoIN] error: {codebook} missing: stage {stage} keeps the codebook as it was after it")
    try:
        test = decide(codebook, test_file, float(threshold) if threshold else None)
    except GroupingError as err:
        sys.exit(f"[CoIN] error: routing {task} at stage {stage}: {err}")
    rule = route if owner is not None else "test_file"
    group = owner if rule == "owner" else test.group
    if group not in latest:
        sys.exit(f"[CoIN] error: {task} at stage {stage}: group {group} has no checkpoint at a stage <= {stage}")
    rows.append({"stage": stage, "task": task, "checkpoint": f"{method_dir}/{latest[group]}", "group": group,
                 "rule": rule, "owner_group": owner, "test_file": test_file, "test_group": test.group,
                 "test_similarity": round(test.similarity, 4)})
    print("\t".join(str(v) for v in (stage, task, rows[-1]["checkpoint"], "-" if owner is None else owner,
                                     test.group, f"{test.similarity:.4f}", rule)))
if routing_file:
    text = json.dumps({"route": route, "cells": rows}, indent=1) + "\n"
    if not os.path.isfile(routing_file) or open(routing_file).read() != text:
        os.makedirs(os.path.dirname(routing_file) or ".", exist_ok=True)
        with open(f"{routing_file}.{os.getpid()}.tmp", "w") as f:
            f.write(text)
        os.replace(f"{routing_file}.{os.getpid()}.tmp", routing_file)
EOF
)" || coin_die "routing the cells of the grouped chain $OUTPUT_ROOT/$METHOD failed"
    COIN_ROUTE_MODEL=() COIN_ROUTE_INFO=()
    while IFS=$'\t' read -r -a fields; do
        COIN_ROUTE_MODEL+=("${fields[2]}")
        if [[ "${fields[6]}" == owner ]]; then k="${fields[3]}"; else k="${fields[4]}"; fi
        COIN_ROUTE_INFO+=("group $k by ${fields[6]}; test file -> group ${fields[4]}, similarity ${fields[5]}")
    done <<< "$table"
    echo "$table"
}

# The zero-shot row: every task with the base LM, the vision tower and the pretrain projector.
coin_eval_zero_shot() {
    coin_require_dir "$BASE_LM" "base language model (BASE_LM)"
    coin_require_dir "$VISION_TOWER" "vision tower (VISION_TOWER)"
    coin_require_file "$PRETRAIN_PROJECTOR" "pretrain projector (PRETRAIN_PROJECTOR)"
    coin_log "zero-shot: model directory $ZERO_SHOT_MODEL (base LM + pretrain projector)"
    "$PYTHON" -m llava.model.zero_shot --model-base "$BASE_LM" --vision-tower "$VISION_TOWER" \
        --projector "$PRETRAIN_PROJECTOR" --output "$ZERO_SHOT_MODEL"
    coin_eval_all Zero_shot "$ZERO_SHOT_MODEL"
}

# The multitask row: every task with the jointly trained model.
coin_eval_multitask() {
    local model="${1:-$OUTPUT_ROOT/Multitask/Multitask}"
    [[ -f "$model/DONE" ]] || coin_die "multitask model not finished: $model/DONE missing (run scripts/CoIN/Train_Multitask/Train_all.sh, or pass its output directory)"
    coin_eval_all Multitask "$model"
}

coin_parse_tasks
coin_parse_batch_sizes
