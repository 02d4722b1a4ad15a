"""The instruction-grouped chain (scripts/CoIN/Train_LLaCA_grouped/): a task's group and starting weights before
it trains, its commit to the codebook after.

Before task k the chain's working codebook (OUTPUT_ROOT/METHOD/codebook/) is rebuilt from the copy stage k-1
kept (empty for the first task), so a deleted or retrained stage or an interrupted commit cannot leak into it;
`llaca_plugin.grouping.decide` compares the task's train.json with it, and the decision goes to
<Task>/group.json before training, with what follows from it (docs/coin_chain.md):

* a reused group continues from its latest finished checkpoint (the last earlier task of the group);
* a new group starts from the previous task's weights (NEW_GROUP_INIT=previous) or from a new LoRA and the
  pretrain projector (fresh); the first task always from the projector;
* `--llaca` is on for reused groups (GROUP_EMA=reused), every task (all) or none (none).

After training, before DONE, the task's instructions are committed to its group and the codebook, as it then
is, is copied to <Task>/codebook/. A rerun of an unfinished task repeats its group.json.
"""
from __future__ import annotations

import datetime
import filecmp
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from llava.coin import layout
from llava.coin.console import ChainError, Log
from llava.coin.settings import Settings
from llava.utils import atomic_write_text

PROJECTOR_FLAG = "pretrain_mm_mlp_adapter"
PREVIOUS_FLAG = "previous_task_model_path"


@dataclass(frozen=True)
class GroupRecord:
    """The fields of <Task>/group.json the chain acts on. init_task: the task whose weights it starts from
    (None: the pretrain projector)."""

    group: int
    new: bool
    llaca: bool
    init_task: str | None
    init_reason: str
    new_group_init: str
    group_ema: str

    @classmethod
    def read(cls, path: str) -> GroupRecord:
        try:
            with open(path) as f:
                record = json.load(f)
            return cls(**{name: record[name] for name in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ChainError(f"cannot read {path} ({err!r}); delete it to decide the task's group again") from None


def group_file(s: Settings, task: str) -> str:
    return f"{layout.task_dir(s, task)}/{layout.GROUP_FILE}"


def codebook_copy(s: Settings, task: str) -> str:
    return f"{layout.task_dir(s, task)}/{layout.CODEBOOK}"


def recorded_group(s: Settings, task: str, needed_by: str) -> int:
    """The group an earlier stage recorded in its group.json; ChainError when it has none."""
    path = group_file(s, task)
    if not os.path.isfile(path):
        raise ChainError(f"{path} missing: every {needed_by} of a grouped chain records its group")
    with open(path) as f:
        return json.load(f)["group"]


def _threshold(s: Settings) -> float | None:
    return float(s.group_threshold) if s.group_threshold else None


def sync_codebook(s: Settings, previous: str | None, log: Log) -> str:
    """Make the working codebook a copy of stage `previous`'s (empty without one); returns its path."""
    live = layout.live_codebook(s)
    staging = f"{live}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(layout.method_dir(s), exist_ok=True)
    if previous:
        source = codebook_copy(s, previous)
        layout.require_dir(source, f"codebook copy of stage {previous}",
                           f"{previous} was not trained by the grouped chain; each grouped stage keeps the codebook "
                           "as it was after it")
        shutil.copytree(source, staging)
    else:
        os.mkdir(staging)
    if os.path.isdir(live) and not _same_tree(live, staging):
        origin = f"the copy of stage {previous}" if previous else "empty (first task)"
        log(f"{s.method}: codebook {live} reset to {origin}")
    shutil.rmtree(live, ignore_errors=True)
    os.rename(staging, live)
    return live


def _same_tree(first: str, second: str) -> bool:
    """True when two directory trees hold the same names and file contents."""
    compared = filecmp.dircmp(first, second)
    if compared.left_only or compared.right_only or compared.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(first, second, compared.common_files, shallow=False)
    return not mismatch and not errors and all(
        _same_tree(os.path.join(first, d), os.path.join(second, d)) for d in compared.common_dirs)


def decide(s: Settings, task: str, previous: str | None, data: str, log: Log) -> None:
    """Decide `task`'s group against the codebook of stage `previous` and write <Task>/group.json atomically:
    group, new, similarity, the starting weights and --llaca, with the settings they came from."""
    from llaca_plugin.grouping import GroupingError, decide as decide_group

    live = sync_codebook(s, previous, log)
    try:
        decision = decide_group(live, data, _threshold(s))
    except GroupingError as err:
        raise ChainError(f"{s.method}/{task}: grouping {data} against {live} failed: {err}") from None
    method_dir = layout.method_dir(s)
    if not decision.new:  # the group's latest checkpoint: the last earlier task of this group
        earlier = s.task_names[: s.task_names.index(task)]
        owners = [t for t in earlier if recorded_group(s, t, "earlier stage") == decision.group]
        if not owners:
            raise ChainError(f"{task} reuses group {decision.group}, but no earlier task of the chain is in it")
        init = (PREVIOUS_FLAG, f"{method_dir}/{owners[-1]}", owners[-1], f"latest checkpoint of group {decision.group}")
    elif previous and s.new_group_init == "previous":
        init = (PREVIOUS_FLAG, f"{method_dir}/{previous}", previous, "new group, NEW_GROUP_INIT=previous")
    else:
        why = "new group, NEW_GROUP_INIT=fresh" if previous else "first task"
        init = (PROJECTOR_FLAG, s.pretrain_projector, None, why)
    record = {"task": task, "group": decision.group, "new": decision.new, "similarity": decision.similarity,
              "init_flag": init[0], "init_path": init[1], "init_task": init[2], "init_reason": init[3],
              "llaca": {"reused": not decision.new, "all": True, "none": False}[s.group_ema],
              "new_group_init": s.new_group_init, "group_ema": s.group_ema, "threshold": _threshold(s),
              "instruct": data, "codebook": live,
              "codebook_from": codebook_copy(s, previous) if previous else None,
              "decided": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.makedirs(layout.task_dir(s, task), exist_ok=True)
    atomic_write_text(group_file(s, task), json.dumps(record, indent=1) + "\n")


def commit(s: Settings, task: str, previous: str | None, group: int, data: str, log: Log) -> None:
    """After training, before DONE: commit the task's instructions to `group` and keep the codebook as it now
    is in <Task>/codebook/."""
    from llaca_plugin.grouping import GroupingError, commit as commit_group

    live = sync_codebook(s, previous, log)
    try:
        added = commit_group(live, data, group)
    except GroupingError as err:
        raise ChainError(f"{s.method}/{task}: committing to the codebook failed (group {group}, {data}): {err}") \
            from None
    target = str(Path(live) / f"instruction_{group}.txt")  # as `python -m llaca_plugin.grouping --commit` prints it
    log(f"{s.method}/{task}: codebook: " + json.dumps({"group": group, "added": added, "file": target}))
    kept = codebook_copy(s, task)
    staging = f"{kept}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(live, staging)
    shutil.rmtree(kept, ignore_errors=True)
    os.rename(staging, kept)
