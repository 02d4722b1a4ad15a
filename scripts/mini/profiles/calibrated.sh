# shellcheck shell=bash
# The calibrated profile: a mini-CoIN whose sequential LoRA forgets the way LLaVA-1.5-7B forgets on real CoIN
# (the tasks with an answer format of their own are wiped out; the short-answer tasks collapse under a
# format-distinct task, recover under the next short-answer one and keep about half to three quarters of what
# they learned). Same base, same formats, scorers and instruction wording as the harsh profile. How it was found
# and what each change did: results/mini_coin/tuning.md, "The calibrated profile".
: "${MINI_DATA_ARGS:=--train_per_task 1000 --test_per_task 100 --train_counts GQA=3000 --shared GQA=TextVQA:0.1,VQAv2:0.1 VizWiz=TextVQA:0.1,GQA:0.1,VQAv2:0.1 VQAv2=TextVQA:0.1,GQA:0.1,VizWiz:0.1 OCRVQA=TextVQA:0.1,VQAv2:0.1}"
: "${EPOCHS:=1}"
: "${SWEEP:=}"
: "${MINI_METHOD_SET:=calibrated}"
: "${MINI_RESULTS:=$ROOT/results/mini_coin/calibrated}"
: "${MINI_RUNS:=$MINI_CACHE/runs-calibrated}"
