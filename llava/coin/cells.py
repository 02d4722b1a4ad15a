"""The accuracy matrix's cells: which exist (every finished stage j and task i <= j, with j+1 under NEXT_TASK=1),
which checkpoint answers each (the stage's folder, or a grouped chain's routed checkpoint), which are up to date
(a result newer than its model's DONE marker and made from that model), the answers two cells can share, and
the summary over them (`llava.eval.matrix`), rewritten only when a score is newer.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
from dataclasses import dataclass

from llava.coin import layout
from llava.coin.console import ChainError, Log
from llava.coin.routing import is_grouped_stage, route_cells
from llava.coin.settings import Settings

CHUNK_ANSWERS = "[0-9]*_[0-9]*.jsonl"  # <CHUNKS>_<IDX>.jsonl


@dataclass(frozen=True)
class Cell:
    """A cell of the accuracy matrix: task scored after stage, answered by model; route: how a grouped chain
    chose the model ("" otherwise)."""

    stage: str
    task: str
    model: str
    route: str = ""



def model_stamp(model: str) -> str:
    """The file a result must be newer than: the model's DONE marker, else its config.json."""
    done = f"{model}/{layout.DONE}"
    return done if os.path.isfile(done) else f"{model}/config.json"


def is_fresh(path: str, model: str) -> bool:
    """True when `path` is a file newer than the model it was made from (or the model has no stamp)."""
    if not os.path.isfile(path):
        return False
    stamp = model_stamp(model)
    return not os.path.exists(stamp) or os.stat(path).st_mtime_ns > os.stat(stamp).st_mtime_ns


def is_scored(cell: str, model: str) -> bool:
    """True when the cell's score.json is fresh and was made from `model` (same real path)."""
    score = f"{cell}/score.json"
    if not is_fresh(score, model):
        return False
    try:
        with open(score) as f:
            recorded = json.load(f).get("checkpoint")
    except (OSError, ValueError, AttributeError):
        return False  # unreadable: scored again
    return bool(recorded) and os.path.realpath(recorded) == os.path.realpath(model)



def finished_stages(s: Settings, log: Log) -> list[str]:
    """The stages of TASKS with a DONE marker, in order, up to the first unfinished one (a warning names the
    DONE stages after it, which are left out); ChainError when there is none."""
    names, stages = s.task_names, []
    for index, name in enumerate(names):
        if layout.is_done(layout.task_dir(s, name)):
            stages.append(name)
            continue
        for later in names[index + 1:]:
            if layout.is_done(layout.task_dir(s, later)):
                log(f"matrix: warning: {later} is DONE but the earlier stage {name} is not; stages after {name} "
                    "are left out")
        break
    if not stages:
        raise ChainError(f"no finished stage in {layout.method_dir(s)} (no {names[0]}/{layout.DONE}); train the "
                         "chain first")
    log(f"matrix {s.method}: {len(stages)} of {len(names)} stages done ({' '.join(stages)})")
    return stages


def matrix_cells(s: Settings, log: Log, routing_file: str | None = None) -> list[Cell]:
    """For every finished stage j, every task i <= j (and j+1 with NEXT_TASK=1), answered by stage j's folder
    or, in a grouped chain (group.json in the task folders), by the routed checkpoint (the table goes to
    `routing_file` when given)."""
    names, pairs = s.task_names, []
    stages = finished_stages(s, log)
    for j, stage in enumerate(stages):
        last = j + 1 if s.next_task and j + 1 < len(names) else j
        pairs += [(stage, names[i]) for i in range(last + 1)]
    if is_grouped_stage(s, stages[0]):
        log(f"matrix {s.method}: grouped chain (group.json in its task folders), ROUTE={s.route}")
        return [Cell(r.stage, r.task, r.checkpoint, r.description) for r in route_cells(s, pairs, routing_file)]
    return [Cell(stage, name, layout.task_dir(s, stage)) for stage, name in pairs]


def copy_answers(s: Settings, source: str, target: str, model: str, log: Log) -> None:
    """Give cell `target` the chunk answers of the scored cell `source` (same task, same checkpoint), unless
    FORCE=1 or `target` is scored already; evaluate_cell then scores them without generating."""
    if s.force or is_scored(target, model) or not is_scored(source, model):
        return
    os.makedirs(target, exist_ok=True)
    for path in sorted(glob.glob(f"{glob.escape(source)}/{CHUNK_ANSWERS}")):
        copy = f"{target}/{os.path.basename(path)}"
        if not os.path.isfile(path) or is_fresh(copy, model):
            continue
        shutil.copyfile(path, f"{copy}.{os.getpid()}.tmp")
        os.replace(f"{copy}.{os.getpid()}.tmp", copy)
        log(f"matrix: {copy}: answers of the same checkpoint copied from {source}")


def summarize(s: Settings, results: str, log: Log) -> None:
    """`python -m llava.eval.matrix` over RESULTS (with the zero-shot row when it has scores), unless
    summary.json and its figures are newer than every score.json they read."""
    from llava.eval import matrix

    zero_shot = f"{s.result_root}/Zero_shot"
    args = ["--results", results, "--tasks", *s.task_names]
    if glob.glob(f"{glob.escape(zero_shot)}/*/score.json"):
        args += ["--zero-shot", zero_shot]
    summary = f"{results}/summary.json"
    outputs = [summary, f"{results}/matrix.png", f"{results}/curves.png"]
    if not s.force and all(os.path.isfile(p) for p in outputs) and not _scores_newer_than(summary, results, zero_shot):
        log(f"matrix: {summary} is up to date")
        return
    log(f"matrix: python -m llava.eval.matrix {' '.join(args)}")
    matrix.main(args)
    log(f"matrix: wrote {results}/summary.json, summary.md, matrix.png, curves.png")


def _scores_newer_than(reference: str, *folders: str) -> bool:
    limit = os.stat(reference).st_mtime_ns
    for folder in folders:
        for root, _, files in os.walk(folder):
            if "score.json" in files and os.stat(os.path.join(root, "score.json")).st_mtime_ns > limit:
                return True
    return False
