"""The benchmark's rows: each a CoIN chain (scripts/CoIN/Train_<chain>/) with the flags and settings that make
it that method. One table for scripts/mini/run.sh, scripts/mini/ablation.sh and `llava.eval.report`.

    python -m llava.coin.methods list [--set default|ablation|calibrated]   the names, space-separated
    python -m llava.coin.methods fields NAME                          chain|group_ema|ds_config|train args

`LLaCA_c<X>` is the official variant with multiplier X for any positive X (the multiplier sweep).
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

# The multiplier that puts mini-CoIN's tensors where LLaVA-1.5-7B's LoRA-r128 tensors sit (k ≈ 0.03-0.045 at
# c = 2, lr 2e-4): the median over tasks of the "c for 7B-like k" column of the official LLaCA row in
# results/mini_coin/report.md (per task 0.0083-0.046, median 0.041), rounded.
C_7B = 0.04
RELEASED = "--llaca_arithmetic released"
NO_CLIPPING = "--max_grad_norm 0"          # the released scripts' DeepSpeed config has no gradient_clipping


@dataclass(frozen=True)
class Method:
    """name: the row; chain: Train_<chain> (None: evaluation only); label: the ablation table's wording (None:
    not in it); train_args: flags appended to the chain's train_mem.py command; group_ema: GROUP_EMA of the
    grouped chain; ds_config: a DeepSpeed config of scripts/ instead of the chain's default (zero2.json)."""
    name: str
    chain: str | None
    label: str | None = None
    train_args: str = ""
    group_ema: str = ""
    ds_config: str = ""

    @property
    def one_row(self) -> bool:
        """A baseline with one row of accuracies (no chain matrix): zero-shot and multitask."""
        return self.chain in (None, "Multitask")


TABLE = [
    Method("Zero_shot", None),
    Method("LoRA", "LoRA", "sequential LoRA"),
    Method("FixedEMA", "FixedEMA", "+ fixed EMA 0.99"),
    Method("LLaCA", "LLaCA", "+ gradient-informed EMA (official, fp32)"),
    Method("LLaCA_paper", "LLaCA", "+ gradient-informed EMA (paper)", "--llaca_variant paper"),
    Method("LLaCA_c7b", "LLaCA", f"+ gradient-informed EMA, 7B-like multiplier (c = {C_7B})",
           f"--llaca_multiplier {C_7B}"),
    Method("LLaCA_bf16", "LLaCA", "+ gradient-informed EMA, released bf16 arithmetic", RELEASED),
    Method("LLaCA_bf16_c7b", "LLaCA", f"+ gradient-informed EMA, released bf16 arithmetic, c = {C_7B}",
           f"{RELEASED} --llaca_multiplier {C_7B}"),
    Method("Multitask", "Multitask"),
    Method("Grouped_LLaCA", "LLaCA_grouped", "+ gradient-informed EMA + grouping", group_ema="reused"),
    Method("Grouped_LoRA", "LLaCA_grouped", "grouping with plain LoRA", group_ema="none"),
    Method("Grouped_LLaCA_bf16", "LLaCA_grouped", "the released protocol: grouping + bf16 EMA, no clipping, stage 0",
           f"{RELEASED} {NO_CLIPPING}", group_ema="reused", ds_config="zero0.json"),
    Method("Grouped_LLaCA_c7b", "LLaCA_grouped", f"grouping + gradient-informed EMA with c = {C_7B}",
           f"--llaca_multiplier {C_7B}", group_ema="reused"),
    Method("Grouped_LLaCA_bf16_c7b", "LLaCA_grouped", f"the released protocol at the 7B-like multiplier (c = {C_7B})",
           f"{RELEASED} {NO_CLIPPING} --llaca_multiplier {C_7B}", group_ema="reused", ds_config="zero0.json"),
]
BY_NAME = {m.name: m for m in TABLE}

# Where the forgetting removed comes from: (what is added, the row with it, the row without it). The report pairs
# the two rows seed by seed (unpaired where one of them is carried from an earlier report: report.py --carry).
DECOMPOSITION = [
    ("instruction grouping (plain LoRA)", "Grouped_LoRA", "LoRA"),
    ("a fixed EMA 0.99 (no gradient information)", "FixedEMA", "LoRA"),
    ("fp32 gradient-informed EMA (official, c = 2)", "LLaCA", "LoRA"),
    ("released bf16 arithmetic, on top of the fp32 EMA", "LLaCA_bf16", "LLaCA"),
    (f"7B-like multiplier (c = {C_7B}), on top of the fp32 EMA", "LLaCA_c7b", "LLaCA"),
    (f"released bf16 arithmetic at the 7B-like multiplier, on top of the fp32 EMA at c = {C_7B}", "LLaCA_bf16_c7b",
     "LLaCA_c7b"),
    ("fp32 EMA, on top of grouping", "Grouped_LLaCA", "Grouped_LoRA"),
    ("the released protocol (bf16 EMA, no clipping, stage 0), on top of grouping", "Grouped_LLaCA_bf16",
     "Grouped_LoRA"),
    (f"7B-like multiplier (c = {C_7B}), on top of grouping", "Grouped_LLaCA_c7b", "Grouped_LoRA"),
    (f"the released protocol at the 7B-like multiplier (c = {C_7B}), on top of grouping", "Grouped_LLaCA_bf16_c7b",
     "Grouped_LoRA"),
    ("the whole released method against sequential LoRA", "Grouped_LLaCA_bf16", "LoRA"),
    ("the whole released method at the 7B-like multiplier against sequential LoRA", "Grouped_LLaCA_bf16_c7b", "LoRA"),
]
SWEEP = re.compile(r"LLaCA_c(\d+(?:\.\d+)?(?:e-?\d+)?)")

# The sets of rows the scripts run (the sweep's points are added by run.sh from SWEEP).
SETS = {
    "default": ["Zero_shot", "LoRA", "FixedEMA", "LLaCA", "LLaCA_paper", "LLaCA_c7b", "LLaCA_bf16", "LLaCA_bf16_c7b",
                "Multitask"],
    "ablation": ["Zero_shot", "LoRA", "FixedEMA", "LLaCA", "LLaCA_paper", "LLaCA_c7b", "LLaCA_bf16", "LLaCA_bf16_c7b",
                 "Multitask", "Grouped_LLaCA", "Grouped_LoRA", "Grouped_LLaCA_bf16", "Grouped_LLaCA_c7b",
                 "Grouped_LLaCA_bf16_c7b"],
    # The calibrated profile's decomposition (results/mini_coin/calibrated/); more rows, e.g. LLaCA_bf16_c7b or
    # Grouped_LLaCA_c7b, with run.sh --profile calibrated --methods.
    "calibrated": ["Zero_shot", "Multitask", "LoRA", "FixedEMA", "LLaCA", "LLaCA_c7b", "LLaCA_bf16", "Grouped_LoRA",
                   "Grouped_LLaCA", "Grouped_LLaCA_bf16"],
}


def method(name: str) -> Method:
    """The row called `name`; `LLaCA_c<X>` for any multiplier X > 0. ValueError names the known rows."""
    if name in BY_NAME:
        return BY_NAME[name]
    match = SWEEP.fullmatch(name)
    if match and float(match.group(1)) > 0:
        return Method(name, "LLaCA", f"+ gradient-informed EMA, c = {match.group(1)}",
                      f"--llaca_multiplier {match.group(1)}")
    raise ValueError(f"unknown method {name!r}; known: {', '.join(BY_NAME)}, and LLaCA_c<X> (multiplier X > 0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the names of a set of rows")
    listing.add_argument("--set", choices=sorted(SETS), default="default")
    fields = sub.add_parser("fields", help="what the chain script needs, '|'-separated")
    fields.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(" ".join(SETS[args.set]))
        return 0
    try:
        m = method(args.name)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print("|".join([m.chain or "", m.group_ema, m.ds_config, m.train_args]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
