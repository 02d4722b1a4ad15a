"""CoIN VizWiz scorer (val.json carries the ground truth).

    python -m llava.eval.CoIN.eval_vizwiz --annotation-file val.json --result-file merge.jsonl
        [--output-dir DIR] [--compat] [--score-file score.json --stage S --checkpoint P]

(--question-file is another name for --annotation-file.) Default: soft VQA accuracy (percent) where a
question has its ten annotator `answers`, else exact match after EvalAI normalisation against `answer`.
--compat: CoIN's case-insensitive exact match of the raw answer against `answer`.
"""
from __future__ import annotations

from llava.eval.CoIN import common

score = common.score_short_answers


def main(argv: list[str] | None = None) -> None:
    common.question_file_main("VizWiz", __doc__, score, argv, "--annotation-file")


if __name__ == "__main__":
    common.run(main)
