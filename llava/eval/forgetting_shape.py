"""How sequential training forgets, seed by seed, checked against the shape of real CoIN's forgetting.

Real CoIN with LLaVA-1.5-7B and sequential LoRA (the CoIN authors' result files; `results/mini_coin/tuning.md`,
"The calibrated profile") forgets partially: the tasks with an answer format of their own (ImageNet, Grounding) are
wiped out, the short-answer tasks collapse while a format-distinct task trains, recover under the next short-answer
task and end with about 60 % of what they reached (TextVQA 0.57, GQA 0.65, VizWiz 0.59, VQAv2 0.68), and the
multitask run reaches about each task's own-stage accuracy. TARGETS turns that into checks on a run's accuracy
matrix (rows: after each stage, columns: tasks, percent) and its multitask scores:

    forgetting   mean Forgetting within [15, 35]
    new          New >= 40
    kept         the short-answer tasks keep on average 45-80 % of their New after the last stage
    below_5      at most two tasks below 5 % after the last stage
    multitask    the multitask run >= 60 % on every task
    recovery     a short-answer task that fell below a third of its New recovers to at least half of it later
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

SHORT_ANSWER = ("TextVQA", "GQA", "VizWiz", "VQAv2")


@dataclass(frozen=True)
class Targets:
    forgetting: tuple[float, float] = (15.0, 35.0)
    new_at_least: float = 40.0
    kept: tuple[float, float] = (0.45, 0.80)
    most_below_5: int = 2
    multitask_at_least: float = 60.0


TARGETS = Targets()


def recoveries(matrix: list[list[float]], tasks: list[str]) -> list[dict]:
    """Each short-answer task's first collapse (below a third of its New after a later stage) followed by a recovery
    (at least half of its New after a stage after that): task, the stage and accuracy of each."""
    out = []
    for i, task in enumerate(tasks):
        if task not in SHORT_ANSWER or not matrix[i][i]:
            continue
        new = matrix[i][i]
        low = next((j for j in range(i + 1, len(matrix)) if matrix[j][i] < new / 3), None)
        if low is None:
            continue
        high = next((j for j in range(low + 1, len(matrix)) if matrix[j][i] >= new / 2), None)
        if high is not None:
            out.append({"task": task, "new": new, "low_after": tasks[low], "low": matrix[low][i],
                        "high_after": tasks[high], "high": matrix[high][i]})
    return out


def seed_shape(summary: dict, multitask: list[float] | None, targets: Targets = TARGETS) -> dict:
    """The figures and checks of one seed. summary: `llava.eval.matrix`'s summary.json (a complete matrix);
    multitask: the multitask run's accuracy per task in the same order, or None where it was not (fully) run."""
    tasks, matrix = summary["tasks"], summary["matrix"]
    if len(matrix) != len(tasks):
        raise ValueError(f"the matrix holds {len(matrix)} of {len(tasks)} stages: the shape needs a finished chain")
    final = matrix[-1]
    kept = {t: final[i] / matrix[i][i] for i, t in enumerate(tasks) if t in SHORT_ANSWER and matrix[i][i]}
    mean_kept = statistics.fmean(kept.values()) if kept else None
    below_5 = [t for i, t in enumerate(tasks) if final[i] < 5]
    back = recoveries(matrix, tasks)
    lowest = None if multitask is None else min(multitask)
    checks = {
        "forgetting": targets.forgetting[0] <= summary["forgetting"] <= targets.forgetting[1],
        "new": summary["new"] >= targets.new_at_least,
        "kept": mean_kept is not None and targets.kept[0] <= mean_kept <= targets.kept[1],
        "below_5": len(below_5) <= targets.most_below_5,
        "multitask": None if lowest is None else lowest >= targets.multitask_at_least,
        "recovery": bool(back),
    }
    return {"forgetting": summary["forgetting"], "new": summary["new"], "kept": kept, "mean_kept": mean_kept,
            "below_5": below_5, "multitask_lowest": lowest,
            "recoveries": back, "checks": checks}


def shape_lines(method: str, seeds: list[dict | None]) -> list[str]:
    """The report section: one line per seed, naming the checks it fails (a check that could not be made, the
    multitask one without a multitask run, is neither passed nor failed)."""
    if not any(seeds):
        return []
    t = TARGETS
    lines = ["", f"## Forgetting shape: {method} against real CoIN's", "",
             f"Targets (`llava/eval/forgetting_shape.py`): Forgetting {t.forgetting[0]:g}–{t.forgetting[1]:g}; New ≥ "
             f"{t.new_at_least:g}; the short-answer tasks ({', '.join(SHORT_ANSWER)}) keep {t.kept[0] * 100:.0f}–"
             f"{t.kept[1] * 100:.0f} % of their New on average; at most {t.most_below_5} tasks below 5 % at the end; the "
             f"multitask run ≥ {t.multitask_at_least:g} % on every task; a short-answer task that collapses (below a "
             "third of its New) recovers (to half of it) under a later stage.", "",
             "| seed | Forgetting | New | kept (" + ", ".join(SHORT_ANSWER) + ") | below 5 % at the end | "
             "multitask lowest | recoveries | checks failed |", "|---|---|---|---|---|---|---|---|"]
    for seed, s in enumerate(seeds):
        if s is None:
            lines.append(f"| {seed} | – | – | – | – | – | – | no finished chain |")
            continue
        kept = ", ".join(f"{s['kept'][t]:.2f}" if t in s["kept"] else "–" for t in SHORT_ANSWER)
        mean_kept = f" (mean {s['mean_kept']:.2f})" if s["mean_kept"] is not None else ""
        back = "; ".join(f"{r['task']} {r['low']:.0f} after {r['low_after']} → {r['high']:.0f} after {r['high_after']}"
                         for r in s["recoveries"]) or "none"
        failed = [name for name, ok in s["checks"].items() if ok is False]
        lowest = "–" if s["multitask_lowest"] is None else f"{s['multitask_lowest']:.1f}"
        lines.append(f"| {seed} | {s['forgetting']:.1f} | {s['new']:.1f} | {kept}{mean_kept} | "
                     f"{', '.join(s['below_5']) or 'none'} ({len(s['below_5'])}) | {lowest} | {back} | "
                     f"{', '.join(failed) or 'none'} |")
    return lines
