"""Which checkpoint of a grouped chain answers each cell (stage j, task i) of the accuracy matrix.

The answering group is, with ROUTE=owner, the group task i was trained in (its group.json) when i <= j;
otherwise (ROUTE=test_file, the released rule, or a next-task cell i = j+1, whose group is not decided at stage
j) the group that `llaca_plugin.grouping.decide` gives task i's evaluated file (test/val) against stage j's
codebook copy. The checkpoint is that group's latest at a stage <= j. Both groups are computed for every cell.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from llava.coin import groups, layout, tasks
from llava.coin.console import ChainError
from llava.coin.settings import Settings
from llava.utils import atomic_write_text


@dataclass(frozen=True)
class Route:
    """One cell's answer: checkpoint (a task folder), group and the rule that chose it (owner | test_file),
    owner_group (None for a task not trained by stage j), and the test file's group and similarity."""

    stage: str
    task: str
    checkpoint: str
    group: int
    rule: str
    owner_group: int | None
    test_file: str
    test_group: int
    test_similarity: float

    @property
    def description(self) -> str:
        return (f"group {self.group} by {self.rule}; test file -> group {self.test_group}, "
                f"similarity {self.test_similarity:.4f}")

    def record(self) -> dict:
        """The cell's entry of routing.json (similarity rounded to 4 decimals)."""
        return asdict(self) | {"test_similarity": round(self.test_similarity, 4)}


def is_grouped_stage(s: Settings, stage: str) -> bool:
    """True when STAGE is a finished stage of a grouped chain (its folder holds group.json and DONE)."""
    return os.path.isfile(groups.group_file(s, stage)) and layout.is_done(layout.task_dir(s, stage))


def route_cells(s: Settings, cells: list[tuple[str, str]], routing_file: str | None = None) -> list[Route]:
    """The route of every (stage, task) cell. `routing_file` (optional) receives {"route", "cells"}
    as JSON, rewritten only when it changes."""
    from llaca_plugin.grouping import GroupingError, decide

    recorded: dict[str, int] = {}

    def group_of(task: str) -> int:
        if task not in recorded:
            recorded[task] = groups.recorded_group(s, task, "stage")
        return recorded[task]

    threshold = float(s.group_threshold) if s.group_threshold else None
    routes = []
    for stage, task in cells:
        if stage not in s.task_names:
            raise ChainError(f"stage {stage} is not in TASKS ({' '.join(s.task_names)})")
        seen = s.task_names[: s.task_names.index(stage) + 1]
        latest = {group_of(t): t for t in seen}  # group -> its latest task at a stage <= j
        owner = group_of(task) if task in seen else None
        codebook = groups.codebook_copy(s, stage)
        test_file = os.path.join(layout.instructions_dir(s), task, tasks.task(task).eval_file)
        if not os.path.isdir(codebook):
            raise ChainError(f"{codebook} missing: stage {stage} keeps the codebook as it was after it")
        try:
            test = decide(codebook, test_file, threshold)
        except GroupingError as err:
            raise ChainError(f"routing {task} at stage {stage}: {err}") from None
        rule = s.route if owner is not None else "test_file"
        group = owner if rule == "owner" else test.group
        if group not in latest:
            raise ChainError(f"{task} at stage {stage}: group {group} has no checkpoint at a stage <= {stage}")
        routes.append(Route(stage, task, f"{layout.method_dir(s)}/{latest[group]}", group, rule, owner, test_file,
                            test.group, test.similarity))
    if routing_file:
        text = json.dumps({"route": s.route, "cells": [r.record() for r in routes]}, indent=1) + "\n"
        if not os.path.isfile(routing_file) or Path(routing_file).read_text() != text:
            atomic_write_text(routing_file, text)
    return routes
