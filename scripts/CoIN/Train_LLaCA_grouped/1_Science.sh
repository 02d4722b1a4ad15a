#!/usr/bin/env bash
# Grouped LLaCA chain, CoIN task 1/8: ScienceQA. Instruction grouping (python -m llaca_plugin.grouping on its
# train.json, decision kept in <Task>/group.json) picks its start (INIT_FLAG INIT_PATH): its group's latest
# checkpoint, or for a new group NEW_GROUP_INIT=previous|fresh; and the EMA (LLACA): GROUP_EMA=reused|all|none.
# The command is upstream LLaVA's LoRA fine-tuning plus CoIN's flags. Each "$VARIABLE" is a setting (environment
# variable, published default: docs/coin_chain.md) or comes from the plan (scripts/CoIN/plan_task.sh): TASK_BATCH
# (its entry of BATCH_SIZES), INIT_FLAG INIT_PATH, GPU_FLAGS and the optional *_FLAG(S). The plan skips a DONE task;
# a rerun resumes an unfinished one from its newest complete checkpoint (RESUME_FLAG).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../plan_task.sh" LLaCA_grouped ScienceQA

"$PYTHON" -m llava.coin.training run LLaCA_grouped ScienceQA -- \
"$DEEPSPEED" "${GPU_FLAGS[@]}" --master_port "$MASTER_PORT" "$COIN_ROOT/llava/train/train_mem.py" \
    --deepspeed "$DS_CONFIG" \
    --lora_enable True --lora_r "$LORA_R" --lora_alpha "$LORA_ALPHA" --mm_projector_lr "$MM_PROJECTOR_LR" \
    --model_name_or_path "$BASE_LM" \
    "$INIT_FLAG" "$INIT_PATH" \
    --version v1 \
    --data_path "$DATA_ROOT/$INSTRUCTION_TYPE/ScienceQA/train.json" \
    --image_folder "$IMAGE_ROOT" \
    --vision_tower "$VISION_TOWER" \
    --mm_projector_type mlp2x_gelu \
    --mm_vision_select_layer -2 \
    --mm_use_im_start_end False \
    --mm_use_im_patch_token False \
    --image_aspect_ratio pad \
    --group_by_modality_length True \
    --bf16 "$BF16" \
    --output_dir "$OUTPUT_ROOT/$METHOD/ScienceQA" \
    --num_train_epochs "$EPOCHS" \
    --per_device_train_batch_size "$TASK_BATCH" \
    --per_device_eval_batch_size "$TASK_BATCH" \
    --gradient_accumulation_steps "$GRAD_ACCUM" \
    --evaluation_strategy no \
    --learning_rate "$LR" \
    --weight_decay 0. \
    --warmup_ratio 0.03 \
    --lr_scheduler_type cosine \
    --logging_steps 1 \
    --tf32 "$TF32" \
    --model_max_length "$MODEL_MAX_LENGTH" \
    --gradient_checkpointing True \
    --dataloader_num_workers "$NUM_WORKERS" \
    --lazy_preprocess True \
    --report_to none \
    --save_strategy "$SAVE_STRATEGY" "${SAVE_STEPS_FLAG[@]}" "${MAX_STEPS_FLAG[@]}" "${LORA_TARGETS_FLAG[@]}" \
    --llaca "$LLACA" \
    "${RESUME_FLAG[@]}" "${EXTRA_TRAIN_FLAGS[@]}"
