#!/usr/bin/env bash
# The README's first command: set up .venv (if missing) and run a reduced mini-CoIN, sequential LoRA against
# LLaCA, through the same scripts as the full benchmark (scripts/mini/run.sh -> scripts/CoIN/...).
#
#   bash scripts/demo.sh
#
# Reduced: DEMO_TASKS (4 of the 8 CoIN tasks), 500 training / 100 test records per task, one seed, and a base
# pre-trained for fewer steps than the benchmark's (it is cached, so a second run starts at the chains).
# About 8 minutes on 2 CPU cores after the install (456 s measured, base included). Ends by printing the two
# methods' Avg / New / Forgetting and where the report and plots are. Every setting can be overridden from the
# environment, e.g.
#   DEMO_TASKS="ScienceQA TextVQA ImageNet GQA" bash scripts/demo.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/setup_env.sh
source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"

export MINI_TASKS="${DEMO_TASKS:-ScienceQA TextVQA ImageNet OCRVQA}"
export MINI_DATA_ARGS="${DEMO_DATA_ARGS:---train_per_task 500 --test_per_task 100}"
export PRETRAIN_ALIGN_STEPS="${PRETRAIN_ALIGN_STEPS:-400}" PRETRAIN_STEPS="${PRETRAIN_STEPS:-400}"
# One try of the base (the benchmark's allows 3 when its shape check fails; each try costs the demo ~2 minutes).
export BASE_TRIES="${BASE_TRIES:-1}"
export RUNS="${RUNS:-$ROOT/checkpoints/mini/demo_runs}"
OUT="${DEMO_OUT:-$ROOT/results/mini_coin_demo}"
# Two chains side by side, one thread each, when there are two cores; one after the other otherwise.
cores="$(env -u OMP_NUM_THREADS nproc)"
JOBS="${JOBS:-$((cores >= 2 ? 2 : 1))}"

started=$SECONDS
echo "[demo] mini-CoIN on $MINI_TASKS: sequential LoRA vs LLaCA, 1 seed ($cores CPU core(s), $JOBS chain(s) at a time)"
bash scripts/mini/run.sh --seeds 1 --methods "LoRA LLaCA" --jobs "$JOBS" --runs "$RUNS" --out "$OUT"
echo "[demo] finished in $((SECONDS - started)) s"
python -m llava.coin.summary "$OUT/report.json" --methods LoRA LLaCA \
    --benchmark "${DEMO_BENCHMARK:-$ROOT/results/mini_coin/report.json}"
echo "[demo] report: $OUT/report.md"
echo "[demo] plots:  $OUT/figures.png $OUT/forgetting_curves.png $OUT/coefficients.png,"
echo "               accuracy matrices: $(echo "$RUNS"/seed0-*/results)/{LoRA,LLaCA}/matrix.png"
