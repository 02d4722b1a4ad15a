"""CoIN TextVQA scorer: soft VQA accuracy (percent) against the ten human answers of
`TextVQA_0.5.1_val.json`, matched by question_id.

    python -m llava.eval.CoIN.eval_textvqa --annotation-file ./cl_dataset/TextVQA/TextVQA_0.5.1_val.json
        --result-file merge.jsonl [--question-file val.json] [--output-dir DIR] [--compat]
        [--score-file score.json --stage S --checkpoint P]

Without --question-file the questions are all entries of the annotation file. --compat changes nothing:
CoIN scores TextVQA this way too (m4c TextVQAAccuracyEvaluator, annotations keyed by question_id).
"""
from __future__ import annotations

from llava.eval.CoIN import common
from llava.utils import load_json


def score(questions: list[dict], answers: list[dict], annotations: list[dict], compat: bool = False) -> dict:
    """Soft VQA accuracy (percent); `annotations` is the annotation file's "data" list
    ({"question_id", "answers": [10 str]}). `compat` is accepted for the common interface (no CoIN quirk)."""
    gt_by_id = {str(a["question_id"]): a["answers"] for a in annotations}
    pairs = common.pair_answers(questions, answers)
    common.check_annotated(questions, gt_by_id, "the TextVQA annotation file")
    total = sum(common.soft_vqa_score(a["text"], gt_by_id[str(q["question_id"])]) for q, a in pairs)
    return common.make_result("vqa_soft_accuracy", total, len(pairs))


def main(argv: list[str] | None = None) -> None:
    parser = common.build_parser("TextVQA", __doc__, question_required=False)
    parser.add_argument("--annotation-file", default="./cl_dataset/TextVQA/TextVQA_0.5.1_val.json")
    args = common.parse_args(parser, argv)
    annotations = load_json(args.annotation_file)["data"]
    questions = (common.load_questions(args.question_file) if args.question_file
                 else common.Records(annotations, args.annotation_file))
    result = score(questions, common.load_answers(args.result_file), annotations, compat=args.compat)
    common.finish(args, result, common.samples_accuracy_text(result))


if __name__ == "__main__":
    common.run(main)
