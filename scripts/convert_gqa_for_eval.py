"""Upstream LLaVA's command (scripts/v1_5/eval/gqa.sh calls it): answers -> GQA's predictions file.

    python scripts/convert_gqa_for_eval.py --src merge.jsonl --dst testdev_balanced_predictions.json \
        [--question-file Q.jsonl]

The conversion and its checks: llava/eval/submission.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.eval.CoIN.common import run  # noqa: E402
from llava.eval.submission import gqa_main  # noqa: E402

if __name__ == "__main__":
    run(gqa_main)
