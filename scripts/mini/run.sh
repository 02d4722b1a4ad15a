#!/usr/bin/env bash
# The mini-CoIN benchmark, through the real CoIN training and evaluation scripts (scripts/CoIN/), on CPUs.
#
#   bash scripts/mini/run.sh [--profile harsh|calibrated] [--seeds N] [--methods "M1 M2 ..."] [--tasks "T1 ..."]
#                            [--jobs J] [--runs DIR] [--out DIR] [--carry REPORT_JSON] [--no-report | --report-only]
#
# --profile: the settings of scripts/mini/profiles/<name>.sh (default harsh), with its own run directories
# (MINI_RUNS) and report folder (MINI_RESULTS: results/mini_coin, results/mini_coin/calibrated).
#
# For each seed: mini-CoIN data (playground/make_mini_coin.py --seed S), then every method as a CoIN chain with
# the mini settings of scripts/mini/settings.sh passed through the chain scripts' environment variables, then
# the accuracy matrix (eval_matrix.sh). The base model comes from scripts/mini/pretrain.sh (built once, cached,
# shared by all seeds: the seeds vary the data and the training). Finally `python -m llava.eval.report` writes
# OUT/report.md (mean ± std over seeds), its plots and the coefficient statistics.
#
# Methods: the rows of llava/coin/methods.py (its `default` set unless --methods; scripts/mini/ablation.sh runs
# the `ablation` set, which adds the grouped rows), plus the multiplier sweep LLaCA_c<X> for X in SWEEP:
#   Zero_shot     the base model on every task (eval_zero_shot.sh)
#   LoRA          sequential LoRA (Train_LoRA)               FixedEMA   EMA 0.99 (Train_FixedEMA)
#   LLaCA         LLaCA, official variant (Train_LLaCA)      LLaCA_paper   the paper's variant
#   LLaCA_c7b     LLaCA official with the multiplier that puts these tensors in 7B's regime (c = 0.04)
#   LLaCA_bf16    LLaCA official with the released code's bf16 arithmetic (--llaca_arithmetic released)
#   LLaCA_bf16_c7b  both: the released arithmetic at the 7B-like multiplier
#   LLaCA_c<X>    LLaCA official with --llaca_multiplier X   (the sweep: SWEEP, default 0.02 200; LLaCA itself is 2)
#   Multitask     one run on the union (Train_Multitask, eval_multitask.sh)
#   Grouped_LLaCA grouping + LLaCA (Train_LLaCA_grouped, GROUP_EMA=reused: the released scripts' choice)
#   Grouped_LoRA  grouping with plain LoRA (GROUP_EMA=none)
#   Grouped_LLaCA_bf16  the released protocol: grouping, the EMA on reused groups only, bf16 arithmetic, no
#                 gradient clipping, DeepSpeed stage 0
#   Grouped_LLaCA_c7b, Grouped_LLaCA_bf16_c7b  grouping + the EMA at the 7B-like multiplier (fp32; the released
#                 protocol)
# Chains finished earlier are skipped (their DONE markers and score files), so a rerun only does what is missing.
# --report-only writes the report from the runs present (a method run on fewer seeds shows its count), e.g. after
# running the costly methods on fewer seeds than the others (WALL_NOTE then gives the report's wall-time line).
# --carry: an earlier report.json whose rows fill in the methods these runs hold no result of (marked † in the
# report and compared unpaired; llava/eval/report.py --carry).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/mini/settings.sh
source "$ROOT/scripts/mini/settings.sh"

SEEDS=3
METHODS="$("$PYTHON" -m llava.coin.methods list --set default) $(for c in $SWEEP; do printf 'LLaCA_c%s ' "$c"; done)"
JOBS="${JOBS:-2}"
RUNS="${RUNS:-$MINI_RUNS}"
OUT="$MINI_RESULTS"
REPORT=1
REPORT_ONLY=0
CARRY=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) shift 2 ;;                                   # read by settings.sh
        --seeds) SEEDS="$2"; shift 2 ;;
        --methods) METHODS="$2"; shift 2 ;;
        --tasks) MINI_TASKS="$2"; shift 2 ;;
        --jobs) JOBS="$2"; shift 2 ;;
        --runs) RUNS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --carry) CARRY=(--carry "$2"); shift 2 ;;
        --no-report) REPORT=0; shift ;;
        --report-only) REPORT_ONLY=1; shift ;;
        *) echo "usage: $0 [--profile NAME] [--seeds N] [--methods \"...\"] [--tasks \"...\"] [--jobs J] [--runs DIR] [--out DIR] [--carry REPORT_JSON] [--no-report | --report-only]" >&2
           exit 2 ;;
    esac
done
log() { echo "[mini $(date +%H:%M:%S)] $*"; }
STARTED=$SECONDS

# ------------------------------------------------------------------------------------------------ base
# MINI_BASE: an existing base (lm/, vision/, mm_projector.bin) instead of scripts/mini/pretrain.sh's.
if [[ -n "${MINI_BASE:-}" ]]; then
    BASE_DIR="$MINI_BASE"
elif [[ "$REPORT_ONLY" == 1 ]]; then
    BASE_DIR="the cached base of scripts/mini/pretrain.sh"
else
    base_line="$(mini_pretrain | tee >(cat >&2) | tail -n 1)"  # not `tee /dev/stderr`: reopening it truncates a log file
    BASE_DIR="${base_line#BASE_DIR=}"
fi
[[ "$REPORT_ONLY" == 1 || -d "$BASE_DIR/lm" ]] || { echo "[mini] error: no base model in '$BASE_DIR'" >&2; exit 1; }

# ------------------------------------------------------------------------------------------------ data
RUN_SEEDS=$SEEDS  # seeds to generate data for and run; none with --report-only
[[ "$REPORT_ONLY" == 1 ]] && RUN_SEEDS=0
data_dir() { echo "$MINI_CACHE/data/seed$1-$(mini_data_key)"; }
# Runs are keyed by the data too, so that other data (tasks, record counts, generator) never reuse finished stages.
run_dir() { echo "$RUNS/seed$1-$(mini_data_key)"; }
# A run directory records what its rows were made from: RUN_DIR/BASE the digest of the base's weights (BASE_ID),
# RUN_DIR/SETTINGS the chains' training settings (MINI_CHAIN_NOTE, MINI_TRAIN_ARGS) and, once the multitask row is
# run, RUN_DIR/MULTITASK its own (MINI_MULTITASK_NOTE: another multitask budget leaves the chains reusable). Another
# base or other settings must not pick up finished stages, so a mismatch is an error, not a silent reuse.
if [[ "$RUN_SEEDS" != 0 ]]; then
    BASE_ID="$( (cd "$BASE_DIR" && sha256sum lm/*.safetensors vision/*.safetensors mm_projector.bin) \
        | sha256sum | cut -c1-16)"
fi
claim_run_dir() {
    local run="$1" files=(BASE SETTINGS) file value recorded stale
    mkdir -p "$run"
    [[ " $METHODS " != *" Multitask "* ]] || files+=(MULTITASK)
    for file in "${files[@]}"; do
        case "$file" in
            BASE) value="$BASE_ID" stale="$run" ;;
            SETTINGS) value="$MINI_CHAIN_NOTE; $MINI_TRAIN_ARGS" stale="$run" ;;
            MULTITASK) value="$MINI_MULTITASK_NOTE; $MINI_TRAIN_ARGS"
                       stale="$run/MULTITASK, $run/checkpoints/Multitask and $run/results/Multitask" ;;
        esac
        [[ -f "$run/$file" ]] || echo "$value" > "$run/$file"
        recorded="$(cat "$run/$file")"
        [[ "$recorded" == "$value" ]] || {
            echo "[mini] error: $run/$file records '$recorded' where this run has '$value' (another base, or other" \
                 "settings): pass --runs DIR (or RUNS=DIR) for this run, or remove $stale" >&2
            exit 1
        }
    done
}
for ((seed = 0; seed < RUN_SEEDS; seed++)); do
    claim_run_dir "$(run_dir "$seed")"
    dir="$(data_dir "$seed")"
    if [[ ! -f "$dir/mini_coin_meta.json" ]]; then
        log "data: seed $seed -> $dir"
        # shellcheck disable=SC2086
        "$PYTHON" playground/make_mini_coin.py --output_dir "$dir.tmp.$$" --seed "$seed" $MINI_DATA_ARGS --tasks $MINI_TASKS
        rm -rf "$dir" && mv "$dir.tmp.$$" "$dir"
    fi
done

# ------------------------------------------------------------------------------------------------ chains
# One job = one (seed, method): train the chain (or the one-row baseline) and evaluate it.
job() {
    local seed="$1" method="$2" port="$3" chain group_ema ds_config extra
    local dir run log
    IFS='|' read -r chain group_ema ds_config extra < <("$PYTHON" -m llava.coin.methods fields "$method") \
        || { echo "[mini] error: unknown method $method" >&2; return 2; }
    dir="$(data_dir "$seed")"
    run="$(run_dir "$seed")"
    mkdir -p "$run/logs"
    log="$run/logs/$method.log"  # appended to: a rerun that skips finished stages keeps the first run's output
    echo "=== $(date '+%F %T') scripts/mini/run.sh: seed $seed $method ===" >> "$log"
    (
        export OUTPUT_ROOT="$run/checkpoints" RESULT_ROOT="$run/results" METHOD="$method" MASTER_PORT="$port"
        export BASE_LM="$BASE_DIR/lm" VISION_TOWER="$BASE_DIR/vision" PRETRAIN_PROJECTOR="$BASE_DIR/mm_projector.bin"
        export DATA_ROOT="$dir" IMAGE_ROOT="$dir/cl_dataset" TASKS="$MINI_TASKS"
        export EXTRA_TRAIN_ARGS="$MINI_TRAIN_ARGS --seed $seed $extra"
        [[ -z "$group_ema" ]] || export GROUP_EMA="$group_ema"
        [[ -z "$ds_config" ]] || export DS_CONFIG="$ROOT/scripts/$ds_config"
        case "$chain" in
            "") bash scripts/CoIN/Eval/eval_zero_shot.sh ;;
            Multitask) EPOCHS="$MULTITASK_EPOCHS" bash scripts/CoIN/Train_Multitask/Train_all.sh \
                && bash scripts/CoIN/Eval/eval_multitask.sh ;;
            *) bash "scripts/CoIN/Train_$chain/Train_all.sh" && bash scripts/CoIN/Eval/eval_matrix.sh ;;
        esac
    ) >> "$log" 2>&1 || { echo "[mini] error: seed $seed $method failed; see $log" >&2; tail -n 20 "$log" >&2; return 1; }
    log "done: seed $seed $method (log: $log)"
}

pids=()
failed=0
# A free port per chain (its tasks' DeepSpeed launches reuse it), so two benchmarks on one machine do not clash.
free_port() { "$PYTHON" -c 'from llava.train.dist import free_port; print(free_port())'; }
for ((seed = 0; seed < RUN_SEEDS; seed++)); do
    for method in $METHODS; do
        while [[ "$(jobs -rp | wc -l)" -ge "$JOBS" ]]; do wait -n || failed=1; done
        log "start: seed $seed $method"
        job "$seed" "$method" "$(free_port)" &
        pids+=($!)
    done
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
[[ "$failed" == 0 ]] || { echo "[mini] error: some runs failed (see the messages above); rerun to retry them" >&2; exit 1; }
log "all runs done in $((SECONDS - STARTED)) s"

# ------------------------------------------------------------------------------------------------ report
if [[ "$REPORT" == 1 ]]; then
    chains=()
    one_rows=()
    for m in $METHODS; do
        if [[ "$m" == Zero_shot || "$m" == Multitask ]]; then one_rows+=("$m"); else chains+=("$m"); fi
    done
    runs=()
    for ((seed = 0; seed < SEEDS; seed++)); do runs+=("$(run_dir "$seed")"); done
    # shellcheck disable=SC2086
    "$PYTHON" -m llava.eval.report --runs "${runs[@]}" --methods "${chains[@]}" --one-row "${one_rows[@]}" --out "$OUT" \
        --tasks $MINI_TASKS "${CARRY[@]}" \
        --title "mini-CoIN benchmark" --lr "$LR" \
        --note "Base: scripts/mini/pretrain.sh's, weights digest $(cat "$(run_dir 0)/BASE" 2> /dev/null || echo unknown). Tasks: $MINI_TASKS. Settings: scripts/mini/settings.sh ($MINI_SETTINGS_NOTE)." \
               "${WALL_NOTE:-Wall time for these runs: $((SECONDS - STARTED)) s on $(nproc --all) CPU core(s), $JOBS job(s) at a time.}"
fi
