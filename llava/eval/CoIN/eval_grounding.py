"""CoIN Grounding (RefCOCO/+/g) scorer: accuracy (percent) of predicted boxes at an IoU threshold.

    python -m llava.eval.CoIN.eval_grounding --test-file test.json --result-file merge.jsonl
        [--output-dir DIR] [--compat] [--score-file score.json --stage S --checkpoint P]

(--question-file is another name for --test-file.) Boxes are [x1, y1, x2, y2] in [0, 1], normalised to the
image padded to a square; both boxes are scaled by max(w, h) of the question's `size` before the IoU, as
CoIN does (the IoU itself does not change with the scale).
Default: the predicted box is the four numbers in the answer (any other count of numbers: unparsed,
wrong); right when IoU >= 0.5.
--compat: CoIN's parser and threshold. Brackets are removed, then the first and last characters are cut
([1:-1]) before splitting on ',': "[0.1, 0.2, 0.3, 0.45]" is read as (0.1, 0.2, 0.3, 0.4); a parse failure or
other than four numbers is wrong; right when IoU > 0.5.
"""
from __future__ import annotations

import re

from llava.eval.CoIN import common

IOU_THRESHOLD = 0.5
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")

Box = tuple[float, float, float, float]


def parse_box(text: str) -> Box | None:
    """The four numbers in `text` as a box, or None when it holds another count of numbers."""
    numbers = [float(n) for n in _NUMBER.findall(text)]
    return tuple(numbers) if len(numbers) == 4 else None


def parse_box_coin(text: str) -> Box | None:
    """CoIN's parser: brackets removed, first and last characters cut, split on ','; None on failure."""
    try:
        numbers = [float(n) for n in text.replace("[", "").replace("]", "")[1:-1].split(",")]
    except ValueError:
        return None
    return tuple(numbers) if len(numbers) == 4 else None


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes; 0 for empty or inverted boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def score(questions: list[dict], answers: list[dict], compat: bool = False) -> dict:
    """Acc@IoU (percent); questions carry `answer_bbox` ("[x1, y1, x2, y2]" or a list) and `size` [w, h].
    details: unparsed (answers with no box, counted wrong)."""
    source = common.source_of(questions, "questions")
    parse = parse_box_coin if compat else parse_box
    pairs = common.pair_answers(questions, answers)
    correct = unparsed = 0
    for question, answer in pairs:
        gt_box = parse_box(str(common.field(question, "answer_bbox", source)))
        if gt_box is None:
            raise ValueError(f"{source}: question {question['question_id']} has an answer_bbox without 4 numbers")
        pred_box = parse(answer["text"])
        if pred_box is None:
            unparsed += 1
            continue
        scale = max(common.field(question, "size", source))
        iou = box_iou([x * scale for x in pred_box], [x * scale for x in gt_box])
        correct += (iou > IOU_THRESHOLD) if compat else (iou >= IOU_THRESHOLD)
    metric = "coin_acc@iou>0.5" if compat else "acc@iou>=0.5"
    return common.make_result(metric, correct, len(pairs), unparsed=unparsed)


def main(argv: list[str] | None = None) -> None:
    common.question_file_main("Grounding", __doc__, score, argv, "--test-file")


if __name__ == "__main__":
    common.run(main)
