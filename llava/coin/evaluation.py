"""Evaluation of a CoIN chain: one cell (the task's CoIN inference module, one chunk per CUDA_VISIBLE_DEVICES
entry, the chunks merged in order, the task's scorer into score.json), a stage's row, the accuracy matrix and its
summary, and the one-row baselines. A cell whose score.json is newer than its model's DONE marker and names
that model is skipped; so is a chunk whose answers are newer than the model (FORCE=1 redoes them).

    python -m llava.coin.evaluation task TASK [STAGE [MODELPATH]]   scripts/CoIN/Eval/<N>_eval_<task>.sh
    python -m llava.coin.evaluation all [STAGE [MODELPATH]]         Eval/eval_all.sh
    python -m llava.coin.evaluation matrix                          Eval/eval_matrix.sh
    python -m llava.coin.evaluation zero-shot                       Eval/eval_zero_shot.sh
    python -m llava.coin.evaluation multitask [MODELPATH]           Eval/eval_multitask.sh
    python -m llava.coin.evaluation routes                          each cell's stage, task, checkpoint, route

STAGE (default: the last task of TASKS) names the results folder; MODELPATH (default OUTPUT_ROOT/METHOD/STAGE,
or in a grouped chain the checkpoint llava.coin.routing picks) is the model that answers.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys

from llava.coin import console, layout, tasks
from llava.coin.cells import copy_answers, is_fresh, is_scored, matrix_cells, summarize
from llava.coin.console import ChainError, Log
from llava.coin.routing import is_grouped_stage, route_cells
from llava.coin.settings import Settings, from_env

SHOWN_LOG_LINES = 20


# --------------------------------------------------------------------------------------------- one cell

def devices(s: Settings) -> list[str]:
    """One entry per inference chunk: CUDA_VISIBLE_DEVICES split at commas (a trailing comma adds none)."""
    entries = s.cuda_visible_devices.split(",")
    return entries[:-1] if len(entries) > 1 and entries[-1] == "" else entries


def scorer_inputs(s: Settings, task: tasks.CoinTask) -> list[str]:
    """The scorer's annotation flags (each checked to exist) and --compat."""
    args = []
    for annotation in task.annotations:
        layout.require_file(f"{s.image_root}/{annotation.requires}", annotation.what)
        args += [annotation.flag, f"{s.image_root}/{annotation.path}"]
    return args + (["--compat"] if s.compat else [])


def evaluate_cell(s: Settings, name: str, stage: str = "", model: str = "", log: Log = console.log) -> None:
    """Answer task `name` with `model` and score it into the cell STAGE/TASK, unless that is up to date."""
    task = tasks.task(name)
    stage = stage or s.task_names[-1]
    if not model and is_grouped_stage(s, stage):  # grouped chain: the checkpoint of the task's group
        model = route_cells(s, [(stage, name)])[0].checkpoint
    model = model or layout.task_dir(s, stage)
    cell = layout.cell_dir(s, stage, name)
    where = f"eval {name} @ {stage}"
    layout.require_dir(model, "model directory (MODELPATH)", f"usage: bash {task.eval_script} [STAGE] [MODELPATH]")
    layout.require_file(f"{model}/config.json", "config.json of the model",
                        "a directory written by training or by llava.model.zero_shot")
    if s.require_done and os.path.isfile(f"{model}/adapter_config.json") and not layout.is_done(model):
        raise ChainError(f"{model} has no DONE marker: its training has not finished (REQUIRE_DONE=0 evaluates it "
                         "anyway)")
    if not s.force and is_scored(cell, model):
        log(f"{where}: score.json up to date, skipping ({cell})")
        return
    question = layout.eval_file(s, task)
    layout.require_file(question, f"question file of {name}",
                        f"DATA_ROOT={s.data_root} INSTRUCTION_TYPE={s.instruction_type}")
    layout.require_dir(s.image_root, "image folder (IMAGE_ROOT)")
    layout.require_dir(s.base_lm, "base language model (BASE_LM, passed as --model-base)")
    scorer_args = scorer_inputs(s, task)  # checked before anything is generated
    if s.force:
        shutil.rmtree(cell, ignore_errors=True)
    os.makedirs(cell, exist_ok=True)
    if os.path.lexists(f"{cell}/score.json"):
        os.unlink(f"{cell}/score.json")
    chunks = devices(s)
    log(f"{where}: {task.inference} on {question} with {model}, {len(chunks)} chunk(s) -> {cell}")
    generate(s, task, stage, question, model, cell, chunks, log)
    merged = merge_chunks(cell, len(chunks))
    score(s, task, stage, [*scorer_args, "--question-file", question], model, cell, merged, log)


def merge_chunks(cell: str, count: int) -> str:
    """CELL/merge.jsonl: the chunks' answers in chunk order (written atomically); returns its path."""
    merged = f"{cell}/merge.jsonl"
    with open(f"{merged}.tmp", "wb") as out:
        for index in range(count):
            with open(f"{cell}/{count}_{index}.jsonl", "rb") as part:
                shutil.copyfileobj(part, out)
    os.replace(f"{merged}.tmp", merged)
    return merged


def score(s: Settings, task: tasks.CoinTask, stage: str, inputs: list[str], model: str, cell: str, merged: str,
          log: Log) -> None:
    """The task's scorer (`inputs`: its annotation flags and the question file) on the merged answers into
    CELL/score.json (its output in CELL/score.log, shown on failure); score.json records the task, the stage and
    the model."""
    score_log = f"{cell}/score.log"
    with open(score_log, "wb") as out:
        status = subprocess.call(
            [s.python, "-m", f"llava.eval.CoIN.{task.scorer}", *inputs, "--result-file", merged, "--output-dir",
             cell, "--score-file", f"{cell}/score.json", "--task", task.name, "--stage", stage, "--checkpoint", model],
            stdout=out, stderr=subprocess.STDOUT)
    with open(score_log, errors="replace") as f:
        lines = f.read().splitlines()
    if status:
        print("\n".join(lines), file=sys.stderr, flush=True)
        raise ChainError(f"eval {task.name} @ {stage}: scoring failed")
    accuracy = next((line for line in lines if line.startswith("Accuracy")), "scored")
    log(f"eval {task.name} @ {stage}: {accuracy} -> {cell}/score.json")


def generate(s: Settings, task: tasks.CoinTask, stage: str, question: str, model: str, cell: str,
             chunks: list[str], log: Log) -> None:
    """Run the inference module once per chunk (chunk i on device chunks[i], in parallel) into
    CELL/<CHUNKS>_<i>.jsonl, its output in CELL/<CHUNKS>_<i>.log; a chunk whose answers are fresh is reused.
    An interrupt (SIGINT, SIGTERM) stops the chunk processes and ends the program with status 130."""
    gen = ["--model-path", model, "--model-base", s.base_lm, "--question-file", question, "--image-folder",
           s.image_root, "--temperature", s.temperature, "--conv-mode", s.conv_mode, "--batch-size", s.eval_batch_size]
    if s.max_new_tokens:
        gen += ["--max_new_tokens", s.max_new_tokens]
    if s.image_preprocess:
        gen += ["--image-preprocess", s.image_preprocess]
    gen += list(s.extra_eval_args)
    where = f"{task.name} @ {stage}"
    running: dict[int, subprocess.Popen] = {}

    def interrupted(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        for index, device in enumerate(chunks):
            answers = f"{cell}/{len(chunks)}_{index}.jsonl"
            if is_fresh(answers, model):
                log(f"eval {where}: chunk {index} answers exist, reused ({answers})")
                continue
            with open(f"{cell}/{len(chunks)}_{index}.log", "wb") as out:
                running[index] = subprocess.Popen(
                    [s.python, "-m", f"llava.eval.CoIN.{task.inference}", *gen, "--answers-file", answers,
                     "--num-chunks", str(len(chunks)), "--chunk-idx", str(index)],
                    stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, CUDA_VISIBLE_DEVICES=device))
        failed = [index for index, child in running.items() if child.wait() != 0]
    except KeyboardInterrupt:
        for child in running.values():
            child.terminate()
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    for index in failed:
        chunk_log = f"{cell}/{len(chunks)}_{index}.log"
        with open(chunk_log, errors="replace") as f:
            tail = f.read().splitlines()[-SHOWN_LOG_LINES:]
        print(f"[CoIN] chunk {index} of {where} failed; last lines of {chunk_log}:", *tail, sep="\n",
              file=sys.stderr, flush=True)
    if failed:
        raise ChainError(f"eval {where}: generation failed")


# ------------------------------------------------------------------------------------- rows and matrix

def evaluate_stage(s: Settings, stage: str = "", model: str = "", log: Log = console.log) -> None:
    """Every task of TASKS after STAGE (default the last of TASKS) with MODELPATH (default the stage's folder;
    in a grouped chain each task's routed checkpoint)."""
    stage = stage or s.task_names[-1]
    routed = {}
    if not model and is_grouped_stage(s, stage):
        routed = {r.task: r.checkpoint for r in route_cells(s, [(stage, t) for t in s.task_names])}
    model = model or layout.task_dir(s, stage)
    for number, name in enumerate(s.task_names, 1):
        log(f"eval_all: ({number}/{len(s.task_names)}) {name} @ {stage}")
        evaluate_cell(s, name, stage, routed.get(name, model), log)


def evaluate_matrix(s: Settings, log: Log = console.log) -> None:
    """Every cell of matrix_cells (a cell answered by the same checkpoint as an earlier cell of its task starts
    from that cell's answers), then the summary."""
    cells = matrix_cells(s, log, layout.routing_file(s))
    for number, cell in enumerate(cells):
        answered = f", answered by {cell.model} ({cell.route})" if cell.route else ""
        log(f"matrix: cell {number + 1}/{len(cells)}: {cell.task} after stage {cell.stage}{answered}")
        same = next((c for c in cells[:number] if c.task == cell.task and c.model == cell.model), None)
        if same is not None:
            copy_answers(s, layout.cell_dir(s, same.stage, same.task), layout.cell_dir(s, cell.stage, cell.task),
                         cell.model, log)
        evaluate_cell(s, cell.task, cell.stage, cell.model, log)
    summarize(s, layout.results_dir(s), log)


def evaluate_zero_shot(s: Settings, log: Log = console.log) -> None:
    """The zero-shot row: ZERO_SHOT_MODEL (BASE_LM + VISION_TOWER + PRETRAIN_PROJECTOR, written by
    llava.model.zero_shot) on every task."""
    layout.require_dir(s.base_lm, "base language model (BASE_LM)")
    layout.require_dir(s.vision_tower, "vision tower (VISION_TOWER)")
    layout.require_file(s.pretrain_projector, "pretrain projector (PRETRAIN_PROJECTOR)")
    log(f"zero-shot: model directory {s.zero_shot_model} (base LM + pretrain projector)")
    status = subprocess.call([s.python, "-m", "llava.model.zero_shot", "--model-base", s.base_lm, "--vision-tower",
                              s.vision_tower, "--projector", s.pretrain_projector, "--output", s.zero_shot_model])
    if status:
        raise ChainError(f"zero-shot: python -m llava.model.zero_shot failed (exit status {status})")
    evaluate_stage(s, "Zero_shot", s.zero_shot_model, log)


def evaluate_multitask(s: Settings, model: str = "", log: Log = console.log) -> None:
    """The multitask row: every task with the jointly trained model (default OUTPUT_ROOT/Multitask/Multitask)."""
    model = model or f"{s.output_root}/{tasks.MULTITASK}/{tasks.MULTITASK}"
    if not layout.is_done(model):
        raise ChainError(f"multitask model not finished: {model}/{layout.DONE} missing (run "
                         "scripts/CoIN/Train_Multitask/Train_all.sh, or pass its output directory)")
    evaluate_stage(s, tasks.MULTITASK, model, log)


# --------------------------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    one = sub.add_parser("task")
    one.add_argument("task")
    for action in (one, sub.add_parser("all")):
        action.add_argument("stage", nargs="?", default="")
        action.add_argument("model", nargs="?", default="")
    sub.add_parser("matrix")
    sub.add_parser("zero-shot")
    sub.add_parser("multitask").add_argument("model", nargs="?", default="")
    sub.add_parser("routes")
    args = parser.parse_args(argv)
    s = from_env()
    if args.action == "task":
        evaluate_cell(s, args.task, args.stage, args.model)
    elif args.action == "all":
        evaluate_stage(s, args.stage, args.model)
    elif args.action == "matrix":
        evaluate_matrix(s)
    elif args.action == "zero-shot":
        evaluate_zero_shot(s)
    elif args.action == "multitask":
        evaluate_multitask(s, args.model)
    else:
        for cell in matrix_cells(s, console.quiet):
            print(f"{cell.stage}\t{cell.task}\t{cell.model}\t{cell.route}")


if __name__ == "__main__":
    console.run_cli(main)
