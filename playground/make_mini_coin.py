"""Synthetic mini-CoIN in the real CoIN file formats (docs/coin_formats.md), small enough for CPU runs.

    python playground/make_mini_coin.py --output_dir DIR --seed N [--train_per_task 1000] [--test_per_task 200]
        [--train_counts GQA=3000 ...] [--shared VQAv2=TextVQA:0.2 ...] [--tasks ScienceQA TextVQA ...]
        [--pretrain_size 20000] [--image_size 96] [--grid 3]

Eight tasks in CoIN order, each with its real counterpart's kind of question, instruction wording and answer
format, drawn with PIL on square images whose grid x grid cells line up with the vision tower's patches (96 px,
grid 3, patch 32 by default). Also a pre-training set (captions and generic question-answer pairs in full
sentences, in no task's instruction or answer format) so that a tiny base model follows instructions about the
images. Every (task, split) and the pre-training set draw from their own random stream seeded with
(seed, name): a task's data does not depend on which other tasks are generated, and the same arguments give the
same bytes. Output layout:

    DIR/Instructions/<Task>/train.json, test.json (+ val.json for TextVQA, VizWiz, VQAv2)
    DIR/Instructions/Multitask/train.json          union of the generated training sets, shuffled
    DIR/cl_dataset/...                             images (PNG) and the scorers' annotation files
    DIR/Pretrain/pretrain.json                     images under DIR/cl_dataset/Pretrain/
    DIR/mini_coin_meta.json                        arguments, counts, instruction lines, vocabularies

The generator itself is the package playground/mini_coin/ (one module per job: drawing, tasks, pre-training data,
CoIN formats, writing); this file is its command line and holds its format version.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as a file (`python playground/make_mini_coin.py`): make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.coin.tasks import names as coin_task_names  # noqa: E402
from playground.mini_coin.generate import generate  # noqa: E402

# The version of what this generator writes for given arguments: cached data, bases and benchmark runs are keyed
# by it and the arguments (not by the generator's text). Bump it with any change to the output; a test pins the
# output's digest, so a change that forgets the bump fails.
FORMAT_VERSION = 1


def parse_count(item: str) -> tuple[str, int]:
    """'GQA=3000' -> ("GQA", 3000)."""
    task, _, count = item.partition("=")
    if not count.isdigit():
        raise ValueError(f"--train_counts takes TASK=N items, got {item!r}")
    return task, int(count)


def parse_shared(item: str) -> tuple[str, dict[str, float]]:
    """'VQAv2=TextVQA:0.2,GQA:0.1' -> ("VQAv2", {"TextVQA": 0.2, "GQA": 0.1})."""
    task, _, sources = item.partition("=")
    try:
        pairs = [source.split(":") for source in sources.split(",")]
        return task, {name: float(fraction) for name, fraction in pairs}
    except ValueError:
        raise ValueError(f"--shared takes TASK=SOURCE:FRACTION[,SOURCE:FRACTION] items, got {item!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic mini-CoIN dataset.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train_per_task", type=int, default=1000)
    parser.add_argument("--test_per_task", type=int, default=200, help="records per eval file (val and test)")
    parser.add_argument("--train_counts", nargs="*", default=[], metavar="TASK=N",
                        help="training records of these tasks instead of --train_per_task, e.g. GQA=3000")
    parser.add_argument("--shared", nargs="*", default=[], metavar="TASK=SOURCE:F[,SOURCE:F]",
                        help="a share F of TASK's training records asks SOURCE's questions in TASK's wording (TASK "
                             "a short-answer task; SOURCE another one or ImageNet), e.g. VQAv2=TextVQA:0.2,ImageNet:0.05")
    parser.add_argument("--tasks", nargs="+", choices=coin_task_names(), default=coin_task_names())
    parser.add_argument("--pretrain_size", type=int, default=20000)
    parser.add_argument("--pretrain_choices", type=float, default=0.0,
                        help="share of the pre-training records that are multiple-choice questions answered with a "
                             "letter (0: none)")
    parser.add_argument("--image_size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--grid", type=int, default=3, help="cells per image side (one patch each)")
    args = vars(parser.parse_args(argv))
    started = time.perf_counter()
    try:
        train_counts = dict(parse_count(item) for item in args.pop("train_counts"))
        shared = dict(parse_shared(item) for item in args.pop("shared"))
        meta = generate(args.pop("output_dir"), tasks=tuple(args.pop("tasks")), train_counts=train_counts,
                        shared=shared, **args)
    except ValueError as err:
        parser.error(str(err))
    images = sum(sum(splits.values()) for task, splits in meta["counts"].items() if task != "Multitask")
    print(json.dumps({"images": images, "seconds": round(time.perf_counter() - started, 1), **meta["counts"]}))


if __name__ == "__main__":
    main()
