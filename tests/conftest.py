"""Shared fixtures: a tiny model built offline, a small colour-naming dataset in LLaVA and CoIN formats, and a
runner for training / eval commands in subprocesses (the way users run them)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from playground.colour_data import train_args, write_colour_data  # noqa: E402,F401  (shared with the GPU smoke check)


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
               PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""))  # the venv's launchers
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_command(cmd: list, *, env: dict, cwd: Path = REPO, timeout: int = 600,
                check: bool = True) -> subprocess.CompletedProcess:
    """Run `cmd` in `cwd` with exactly `env`, output captured; with `check`, a failure is an AssertionError that
    shows the command, its exit status and the tails of its stdout and stderr."""
    proc = subprocess.run([str(word) for word in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                             f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


def run(cmd: list[str], timeout: int = 600, check: bool = True, **env) -> subprocess.CompletedProcess:
    """Run a command from the repository root in the tests' environment (subprocess_env, plus `env`)."""
    return run_command(cmd, env=subprocess_env(**env), timeout=timeout, check=check)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """`python -m llava.model.tiny --size test` output: lm/, vision/, mm_projector.bin."""
    from llava.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), size="test", seed=0)


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return write_colour_data(tmp_path_factory.mktemp("colour"))


PYTHON = sys.executable
