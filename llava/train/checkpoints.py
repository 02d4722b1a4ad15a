"""What a training run's output folder holds, for readers that do not load torch (the CoIN chain, llava/coin/):
the completion marker each `checkpoint-N` gets last (LLaVATrainer writes it after every other file of the
checkpoint), the newest-complete-checkpoint rule that `--resume_from_checkpoint True` and the chain's resume
follow, and the name of the LLaCA plugin's state file (llava.train.llaca writes it into each checkpoint and, at
the end of the task, into the output folder)."""
from __future__ import annotations

import os

CHECKPOINT_COMPLETE = "COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"
LLACA_STATE = "llaca_state.pt"


def is_complete(checkpoint_dir: str) -> bool:
    """True when the checkpoint carries its completion marker (its save was not interrupted)."""
    return os.path.isfile(os.path.join(checkpoint_dir, CHECKPOINT_COMPLETE))


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The complete `checkpoint-N` of `output_dir` with the largest N (its path), else None (also when
    `output_dir` does not exist)."""
    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        step = name[len(CHECKPOINT_PREFIX):]
        path = os.path.join(output_dir, name)
        if name.startswith(CHECKPOINT_PREFIX) and step.isdigit() and is_complete(path):
            found.append((int(step), path))
    return max(found)[1] if found else None
