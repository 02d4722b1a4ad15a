# shellcheck shell=bash
# mini-CoIN settings (sourced by scripts/mini/run.sh, ablation.sh and scripts/demo.sh): the CoIN chain scripts'
# environment variables for the tiny `mini` base on CPUs, and the data generator's arguments. Each can be
# overridden from the environment. results/mini_coin/tuning.md explains how they were chosen.
#
# A profile (scripts/mini/profiles/<name>.sh) sets its own values first: `harsh` (the default) or `calibrated`
# (forgets the way LLaVA-1.5-7B forgets on real CoIN). It is named by MINI_PROFILE or by `--profile NAME` among
# the arguments of the script that sources this file.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHON
: "${MINI_CACHE:=$ROOT/checkpoints/mini}"
for ((i = 1; i < $#; i++)); do
    if [[ "${!i}" == --profile ]]; then j=$((i + 1)); MINI_PROFILE="${!j}"; fi
done
: "${MINI_PROFILE:=harsh}"
[[ -f "$ROOT/scripts/mini/profiles/$MINI_PROFILE.sh" ]] || {
    echo "[mini] error: no profile '$MINI_PROFILE' (scripts/mini/profiles/: $(cd "$ROOT/scripts/mini/profiles" && ls | sed 's/\.sh$//' | tr '\n' ' '))" >&2
    exit 2
}
export MINI_PROFILE
# shellcheck source=/dev/null
source "$ROOT/scripts/mini/profiles/$MINI_PROFILE.sh"
# The chain scripts launch `deepspeed`: the one installed next to PYTHON.
if [[ "$PYTHON" == */* ]]; then export PATH="$(dirname "$PYTHON"):$PATH"; fi
: "${MINI_TASKS:=$(cd "$ROOT" && "$PYTHON" -m llava.coin.tasks)}"   # default: the 8 CoIN tasks, in order
: "${MINI_DATA_ARGS:=--train_per_task 1000 --test_per_task 100 --train_counts GQA=3000}"
: "${SWEEP=0.02 200}"                            # the multiplier sweep (LLaCA_c<X>); set but empty: none
: "${MINI_METHOD_SET:=ablation}"                  # the rows ablation.sh runs (llava/coin/methods.py SETS)
: "${MINI_RESULTS:=$ROOT/results/mini_coin}"      # the report
: "${MINI_RUNS:=$MINI_CACHE/runs}"                # the chains (one directory per seed and data)
# The chain scripts' settings (docs/coin_chain.md): one process per chain on CPU, fp32, small batches.
export NUM_GPUS="${NUM_GPUS:-1}" BF16="${BF16:-False}" TF32="${TF32:-False}" NUM_WORKERS="${NUM_WORKERS:-0}"
export LR="${LR:-2e-3}" MM_PROJECTOR_LR="${MM_PROJECTOR_LR:-2e-4}" LORA_R="${LORA_R:-8}" LORA_ALPHA="${LORA_ALPHA:-16}"
export LORA_TARGETS="${LORA_TARGETS:-}"
export BATCH_SIZES="${BATCH_SIZES:-16 16 16 16 16 16 16 16}" MULTITASK_BATCH_SIZE="${MULTITASK_BATCH_SIZE:-16}"
export MAX_STEPS="${MAX_STEPS:-}" EPOCHS="${EPOCHS:-3}" MODEL_MAX_LENGTH="${MODEL_MAX_LENGTH:-256}"
# The multitask row's epochs over the union (default: the chains' EPOCHS).
MULTITASK_EPOCHS="${MULTITASK_EPOCHS:-$EPOCHS}"
export EVAL_BATCH_SIZE="${EVAL_BATCH_SIZE:-64}" MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-32}" KEEP_CHECKPOINTS="${KEEP_CHECKPOINTS:-0}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
: "${MINI_TRAIN_ARGS:=--gradient_checkpointing False --llaca_log_steps 5}"
if [[ -n "$MAX_STEPS" ]]; then length="$MAX_STEPS steps"; else length="$EPOCHS epoch(s)"; fi
# What the chains were trained with (MINI_CHAIN_NOTE), what the multitask row was (MINI_MULTITASK_NOTE), and both
# as the report states them (MINI_SETTINGS_NOTE).
MINI_CHAIN_NOTE="profile $MINI_PROFILE: LoRA r$LORA_R/alpha $LORA_ALPHA${LORA_TARGETS:+ on $LORA_TARGETS}, lr $LR (projector $MM_PROJECTOR_LR), batch $(echo "$BATCH_SIZES" | cut -d' ' -f1), $length per task"
MINI_MULTITASK_NOTE="$MULTITASK_EPOCHS epoch(s) of the union, batch $MULTITASK_BATCH_SIZE"
MINI_SETTINGS_NOTE="$MINI_CHAIN_NOTE"
[[ "$MULTITASK_EPOCHS" == "$EPOCHS" ]] || MINI_SETTINGS_NOTE+="; the multitask row $MULTITASK_EPOCHS epochs of the union"

# A key for the generated data: the generator's arguments and its output format version (not its source text,
# so that editing a comment does not orphan every cached run).
mini_data_key() {
    { echo "$MINI_DATA_ARGS $MINI_TASKS"; (cd "$ROOT" && "$PYTHON" -c \
        'from playground.make_mini_coin import FORMAT_VERSION; print(f"format={FORMAT_VERSION}")'); } \
        | sha256sum | cut -c1-12
}

# scripts/mini/pretrain.sh with the base settings below (its own variable names, so the chain's LR etc. do not
# leak into it), on every core (PRETRAIN_THREADS); prints its log and, last, `BASE_DIR=<path>`.
: "${PRETRAIN_STEPS:=}" "${PRETRAIN_LR:=}" "${PRETRAIN_BATCH_SIZE:=}" "${PRETRAIN_ALIGN_STEPS:=}"
mini_pretrain() {
    env -u LR -u STEPS -u BATCH_SIZE -u ALIGN_STEPS \
        ${PRETRAIN_STEPS:+STEPS=$PRETRAIN_STEPS} ${PRETRAIN_LR:+LR=$PRETRAIN_LR} \
        ${PRETRAIN_BATCH_SIZE:+BATCH_SIZE=$PRETRAIN_BATCH_SIZE} ${PRETRAIN_ALIGN_STEPS:+ALIGN_STEPS=$PRETRAIN_ALIGN_STEPS} \
        THREADS="${PRETRAIN_THREADS:-$(env -u OMP_NUM_THREADS nproc)}" MINI_CACHE="$MINI_CACHE" bash "$ROOT/scripts/mini/pretrain.sh"
}
