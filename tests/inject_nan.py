"""Test helper: run train.py with the model's loss replaced by NaN at the forward pass number NAN_AT_CALL (1-based,
counted per process in training mode), to exercise `--nan_policy`. Usable under any launcher:
    NAN_AT_CALL=3 python tests/inject_nan.py <train.py flags>"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import transformers  # noqa: E402

from llava.train.train import main  # noqa: E402

target = int(os.environ["NAN_AT_CALL"])
original = transformers.LlavaForConditionalGeneration.forward
calls = {"n": 0}


def forward(self, *args, **kwargs):
    out = original(self, *args, **kwargs)
    if self.training:
        calls["n"] += 1
        if calls["n"] == target and out.loss is not None:
            out.loss = out.loss * float("nan")
    return out


transformers.LlavaForConditionalGeneration.forward = forward

if __name__ == "__main__":
    from llava.utils import run_main

    run_main(main)
