"""Accuracy matrix of a continual-instruction-tuning chain and its figures: Avg, New, Forgetting, BWT, MAA, FWT.

    python -m llava.eval.matrix --results DIR [--zero-shot ZDIR] [--out OUT] [--tasks T1 T2 ...]

reads DIR/<stage task>/<eval task>/score.json (written by the CoIN scorers) and ZDIR/<task>/score.json, and
writes OUT/summary.json, OUT/summary.md, OUT/matrix.png and OUT/curves.png (OUT defaults to DIR).

A[j][i] is the accuracy (percent) on task i after training stage j; stages and tasks share one order (CoIN's
order, keeping the tasks present in DIR, or --tasks). With T stages done (1-based below):
  Avg = mean_i A[T][i]                       New = mean_i A[i][i]
  Forgetting = mean_{i<T} (max_{j in [i, T-1]} A[j][i] - A[T][i])   (positive = forgotten)
  BWT = mean_{i<T} (A[T][i] - A[i][i])        MAA = mean_j mean_{i<=j} A[j][i]
  FWT = mean_{1<i<=T} (N[i] - Z[i]), N[i] = task i scored after stage i-1 (`next`), Z = the zero-shot row.
A partial chain (fewer stages than tasks) gives the figures of the T stages done. A figure is null when
it is not defined (Forgetting and BWT with T = 1; FWT without both N and Z, or with T = 1) and when any
cell it needs is missing: missing cells are never guessed or skipped.
"""
from __future__ import annotations

import argparse
import io
import math
import os
from pathlib import Path

from llava.coin.tasks import names as coin_task_names
from llava.eval.CoIN.common import run
from llava.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, load_json

Cell = float | None
FIGURES = ["avg", "new", "forgetting", "bwt", "maa", "fwt"]
FIGURE_LABELS = {"avg": "Avg (Last)", "new": "New", "forgetting": "Forgetting", "bwt": "BWT", "maa": "MAA",
                 "fwt": "FWT"}


# ------------------------------------------------------------------------------------------------ figures

def _mean(values: list[Cell]) -> Cell:
    """Mean of the values; None when there are none or any is None."""
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)


def _check_matrix(matrix: list[list[Cell]]) -> None:
    if not matrix:
        raise ValueError("accuracy matrix: no stages")
    for j, row in enumerate(matrix):
        for i, value in enumerate(row):
            if value is None:
                continue
            if i > j:
                raise ValueError(f"accuracy matrix: A[{j}][{i}] = {value} is above the diagonal (task {i} scored "
                                 f"before it was trained); such scores belong in `next_task`, not in the matrix")
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 100:
                raise ValueError(f"accuracy matrix: A[{j}][{i}] = {value!r} is not a percentage in [0, 100]")


def _at(values: list[Cell], i: int) -> Cell:
    """values[i], or None past the end (rows and per-task lists may be short)."""
    return values[i] if i < len(values) else None


def _difference(a: Cell, b: Cell) -> Cell:
    return None if a is None or b is None else a - b


def summarize(matrix: list[list[Cell]], next_task: list[Cell] | None = None,
              zero_shot: list[Cell] | None = None) -> dict[str, Cell]:
    """The chain's figures (percent or percentage points) from A[j][i] (rows = stages done, 0-based here,
    None where i > j or not measured; rows may be shorter than the task list). `next_task[i]` is task i
    scored after stage i-1 and `zero_shot[i]` the base model on task i (both per task, None where not
    measured). Returns {"avg", "new", "forgetting", "bwt", "maa", "fwt"}; see the module doc for the
    definitions and for when a figure is None."""
    _check_matrix(matrix)
    last = len(matrix) - 1  # the stage the figures are taken after; tasks 0..last are trained

    def cell(j: int, i: int) -> Cell:
        return _at(matrix[j], i)

    def drop(i: int) -> Cell:
        """Best accuracy of task i before the last stage minus its accuracy after it."""
        history = [cell(j, i) for j in range(i, last)]
        return None if None in history else _difference(max(history), cell(last, i))

    forgetting = bwt = fwt = None
    if last > 0:
        forgetting = _mean([drop(i) for i in range(last)])
        bwt = _mean([_difference(cell(last, i), cell(i, i)) for i in range(last)])
        if next_task is not None and zero_shot is not None:
            fwt = _mean([_difference(_at(next_task, i), _at(zero_shot, i)) for i in range(1, last + 1)])
    return {
        "avg": _mean([cell(last, i) for i in range(last + 1)]),
        "new": _mean([cell(i, i) for i in range(last + 1)]),
        "forgetting": forgetting,
        "bwt": bwt,
        "maa": _mean([_mean([cell(j, i) for i in range(j + 1)]) for j in range(last + 1)]),
        "fwt": fwt,
    }


# ------------------------------------------------------------------------------------------ results tree

def read_score(path: Path, task: str) -> dict | None:
    """The score.json at `path` (None if absent); error if it names another task or lacks a field."""
    if not path.is_file():
        return None
    score = load_json(path)
    missing = [k for k in ("task", "accuracy", "checkpoint") if k not in score]
    if missing:
        raise ValueError(f"{path}: score.json without {', '.join(missing)}")
    if score["task"] != task:
        raise ValueError(f"{path}: records task {score['task']!r} but sits in the folder of task {task!r}")
    return score


def chain_tasks(results_dir: Path, tasks: list[str] | None) -> tuple[list[str], int]:
    """(task order, number of stages done). Without `tasks`: the CoIN tasks that have a stage folder or a
    score under one, in CoIN order. The stage folders must be the first tasks of that order."""
    if tasks is None:
        coin_tasks = coin_task_names()
        tasks = [t for t in coin_tasks if (results_dir / t).is_dir()
                 or any((results_dir / s / t / "score.json").is_file() for s in coin_tasks)]
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks repeat: {tasks}")
    done = [(results_dir / t).is_dir() for t in tasks]
    stages = done.index(False) if False in done else len(tasks)
    if stages == 0:
        raise ValueError(f"{results_dir}: no stage folder of the first task {tasks[:1]} (tasks: {tasks})")
    if any(done[stages:]):
        raise ValueError(f"{results_dir}: stage folder {tasks[done.index(True, stages)]} exists but the earlier "
                         f"stage {tasks[stages]} does not; a chain's stages follow the task order")
    return tasks, stages


def collect(results_dir: str | os.PathLike, tasks: list[str] | None = None,
            zero_shot_dir: str | os.PathLike | None = None) -> dict:
    """Read the results tree into {"tasks", "matrix", "next", "zero_shot", "checkpoints"}; cells and
    checkpoints are None where no score.json exists, "zero_shot" is None without `zero_shot_dir`. Of the
    scores above the diagonal only `next` (DIR/<task i-1>/<task i>) is read."""
    results_dir = Path(results_dir)
    tasks, stages = chain_tasks(results_dir, tasks)
    matrix = [[None] * len(tasks) for _ in range(stages)]
    checkpoints = [[None] * len(tasks) for _ in range(stages)]
    for j in range(stages):
        for i in range(j + 1):
            score = read_score(results_dir / tasks[j] / tasks[i] / "score.json", tasks[i])
            if score is not None:
                matrix[j][i], checkpoints[j][i] = score["accuracy"], score["checkpoint"]
    next_task = [None] * len(tasks)
    for i in range(1, min(stages + 1, len(tasks))):
        score = read_score(results_dir / tasks[i - 1] / tasks[i] / "score.json", tasks[i])
        next_task[i] = None if score is None else score["accuracy"]
    zero_shot = None
    if zero_shot_dir is not None:
        zero_shot = []
        for task in tasks:
            score = read_score(Path(zero_shot_dir) / task / "score.json", task)
            zero_shot.append(None if score is None else score["accuracy"])
    return {"tasks": tasks, "matrix": matrix, "next": next_task, "zero_shot": zero_shot, "checkpoints": checkpoints}


# --------------------------------------------------------------------------------------------- outputs

def _fmt(value: Cell) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(summary: dict) -> str:
    """The matrix (with the `next` and zero-shot rows) and the figures as Markdown tables."""
    tasks, matrix = summary["tasks"], summary["matrix"]
    lines = ["# Accuracy matrix", "",
             f"Accuracy (%) on each task (columns) after each training stage (rows); {len(matrix)} of "
             f"{len(tasks)} stages done. `next`: the task scored just before its own stage.", "",
             "| stage \\ task | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    rows = [(stage, row) for stage, row in zip(tasks, matrix)] + [("next", summary["next"])]
    if summary["zero_shot"] is not None:
        rows.append(("zero-shot", summary["zero_shot"]))
    lines += [f"| {name} | " + " | ".join(_fmt(v) for v in row) + " |" for name, row in rows]
    lines += ["", "| figure | value |", "|---|---|"]
    lines += [f"| {FIGURE_LABELS[k]} | {_fmt(summary[k])} |" for k in FIGURES]
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def matrix_png(summary: dict) -> bytes:
    """Heat map of the matrix (stages x tasks, 0-100 %) with the accuracy written in each measured cell."""
    import numpy as np
    from matplotlib.figure import Figure

    tasks, matrix = summary["tasks"], summary["matrix"]
    values = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    fig = Figure(figsize=(1.1 * len(tasks) + 2.5, 0.6 * len(matrix) + 2))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for j, row in enumerate(matrix):
        for i, v in enumerate(row):
            if v is not None:
                ax.text(i, j, f"{v:.1f}", ha="center", va="center", color="white" if v < 60 else "black", fontsize=8)
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix)), tasks[:len(matrix)])
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("after stage")
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    return _png(fig)


def curves_png(summary: dict) -> bytes:
    """Each trained task's accuracy across the stages from its own onwards (gaps where not measured)."""
    from matplotlib.figure import Figure

    tasks, matrix = summary["tasks"], summary["matrix"]
    stages = len(matrix)
    fig = Figure(figsize=(max(6.0, 1.0 * stages + 3), 4.5))
    ax = fig.subplots()
    for i in range(stages):
        xs = list(range(i, stages))
        ys = [float("nan") if matrix[j][i] is None else matrix[j][i] for j in xs]
        ax.plot(xs, ys, marker="o", label=tasks[i])
    ax.set_xticks(range(stages), tasks[:stages], rotation=45, ha="right")
    ax.set_xlim(-0.5, stages - 0.5)
    ax.set_ylim(0, 100)
    ax.set_xlabel("after stage")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def write_outputs(summary: dict, out_dir: str | os.PathLike) -> None:
    """summary.json, summary.md, matrix.png and curves.png in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "summary.md", markdown(summary))
    atomic_write_bytes(out_dir / "matrix.png", matrix_png(summary))
    atomic_write_bytes(out_dir / "curves.png", curves_png(summary))


def main(argv: list[str] | None = None) -> dict:
    """Collect, summarise, write the outputs and print the Markdown; returns summary.json's content."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="DIR with <stage task>/<eval task>/score.json")
    parser.add_argument("--zero-shot", help="folder with <task>/score.json of the base model")
    parser.add_argument("--out", help="output folder (default: --results)")
    parser.add_argument("--tasks", nargs="+", help="task order (default: CoIN's, keeping the tasks present)")
    args = parser.parse_args(argv)
    chain = collect(args.results, args.tasks, args.zero_shot)
    figures = summarize(chain["matrix"], chain["next"], chain["zero_shot"])
    summary = {k: chain[k] for k in ("tasks", "matrix", "next", "zero_shot")} | figures
    summary["checkpoints"] = chain["checkpoints"]
    write_outputs(summary, args.out or args.results)
    print(markdown(summary), end="")
    return summary


if __name__ == "__main__":
    run(main)
