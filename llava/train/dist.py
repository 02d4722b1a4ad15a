"""Process-environment helpers for DeepSpeed runs, on GPUs and on CPU-only machines alike."""
from __future__ import annotations

import importlib
import logging
import os
import socket

import torch

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_single_process_env() -> None:
    """DeepSpeed needs RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT even for one process (otherwise it
    tries MPI discovery). Set them for a plain `python` launch; launchers (torchrun, deepspeed) set their own."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def prepare_deepspeed_on_cpu() -> bool:
    """On a machine without CUDA, keep DeepSpeed from JIT-compiling its shared-memory communication op (about
    50 s with g++ on first use, and seen to abort 2-process runs at exit); gloo then carries every collective.
    Results are unchanged. Returns True if the op was switched off. No effect where CUDA is present."""
    if torch.cuda.is_available():
        return False
    comm_torch = importlib.import_module("deepspeed.comm.torch")
    if getattr(comm_torch.build_shm_op, "_llava_disabled", False):
        return True

    def no_shm_op():
        return None

    no_shm_op._llava_disabled = True
    comm_torch.build_shm_op = no_shm_op
    logger.info("CPU run: DeepSpeed's shm comm op is not built; collectives use gloo")
    return True


def init_deepspeed_comm() -> None:
    """Initialise DeepSpeed's communication layer now (it joins the torch process group if one exists). The
    Trainer would do it later, but ZeRO-3 partitions weights while they load, which needs the world size first."""
    import deepspeed

    deepspeed.init_distributed()
