"""The entry point every upstream and CoIN script calls (`deepspeed llava/train/train_mem.py ...`): the same
training as train.py, with FlashAttention-2 where it is installed and a CUDA device is present."""
import importlib.util
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402

from llava.train.train import main  # noqa: E402


def attention_implementation() -> str | None:
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


if __name__ == "__main__":
    from llava.utils import run_main

    run_main(main, attn_implementation=attention_implementation())
