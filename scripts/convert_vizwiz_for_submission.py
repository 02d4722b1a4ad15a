"""Upstream LLaVA's command (scripts/v1_5/eval/vizwiz.sh calls it): answers -> the VizWiz server's upload file.

    python scripts/convert_vizwiz_for_submission.py --annotation-file llava_test.jsonl --result-file answers.jsonl \
        --result-upload-file upload.json

The conversion and its checks: llava/eval/submission.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.eval.CoIN.common import run  # noqa: E402
from llava.eval.submission import vizwiz_main  # noqa: E402

if __name__ == "__main__":
    run(vizwiz_main)
