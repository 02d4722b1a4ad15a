"""Upstream LLaVA's command (scripts/v1_5/eval/vqav2.sh calls it): answers -> the VQAv2 server's upload file.

    python scripts/convert_vqav2_for_submission.py --split llava_vqav2_mscoco_test-dev2015 --ckpt NAME \
        [--dir ./playground/data/eval/vqav2]

The conversion and its checks: llava/eval/submission.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.eval.CoIN.common import run  # noqa: E402
from llava.eval.submission import vqav2_main  # noqa: E402

if __name__ == "__main__":
    run(vqav2_main)
