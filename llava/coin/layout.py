"""Where a chain reads and writes, spelt as the shell scripts spell it ("$OUTPUT_ROOT/$METHOD/$Task", not
normalised: the strings go into command lines, DONE markers, group.json and score.json), and the checks that an
input exists.

    OUTPUT_ROOT/METHOD/<Task>/            a task's weights, DONE (written last), group.json and codebook/ (grouped)
    OUTPUT_ROOT/METHOD/logs/              one log per training run
    OUTPUT_ROOT/METHOD/codebook/          the grouped chain's working codebook
    RESULT_ROOT/METHOD/<stage>/<task>/    a cell of the accuracy matrix (score.json, answers)
    RESULT_ROOT/<Zero_shot|Multitask>/<task>/   the one-row baselines
    RESULT_ROOT/METHOD/routing.json       which checkpoint answered each cell (grouped chains)
"""
from __future__ import annotations

import os

from llava.coin.console import ChainError
from llava.coin.settings import Settings
from llava.coin.tasks import TRAIN_FILE, CoinTask

DONE = "DONE"
GROUP_FILE = "group.json"
CODEBOOK = "codebook"
ONE_ROW_STAGES = ("Zero_shot", "Multitask")  # stages whose results do not depend on METHOD


def method_dir(s: Settings) -> str:
    return f"{s.output_root}/{s.method}"


def task_dir(s: Settings, name: str) -> str:
    return f"{method_dir(s)}/{name}"


def logs_dir(s: Settings) -> str:
    return f"{method_dir(s)}/logs"


def instructions_dir(s: Settings) -> str:
    return f"{s.data_root}/{s.instruction_type}"


def train_file(s: Settings, name: str) -> str:
    return f"{instructions_dir(s)}/{name}/{TRAIN_FILE}"


def eval_file(s: Settings, task: CoinTask) -> str:
    return f"{instructions_dir(s)}/{task.name}/{task.eval_file}"


def live_codebook(s: Settings) -> str:
    return f"{method_dir(s)}/{CODEBOOK}"


def results_dir(s: Settings) -> str:
    return f"{s.result_root}/{s.method}"


def cell_dir(s: Settings, stage: str, task: str) -> str:
    """A cell's folder: RESULT_ROOT/METHOD/STAGE/TASK, or RESULT_ROOT/STAGE/TASK for the one-row stages."""
    if stage in ONE_ROW_STAGES:
        return f"{s.result_root}/{stage}/{task}"
    return f"{results_dir(s)}/{stage}/{task}"


def routing_file(s: Settings) -> str:
    return f"{results_dir(s)}/routing.json"


def is_done(directory: str) -> bool:
    """True when a training run's folder holds its DONE marker (written last)."""
    return os.path.isfile(f"{directory}/{DONE}")


def require_file(path: str, what: str, hint: str = "") -> None:
    """ChainError "WHAT not found: PATH (HINT)" unless PATH is a file."""
    if not os.path.isfile(path):
        raise ChainError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))


def require_dir(path: str, what: str, hint: str = "") -> None:
    """ChainError "WHAT not found: PATH (HINT)" unless PATH is a directory."""
    if not os.path.isdir(path):
        raise ChainError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))
