"""CoIN GQA scorer: exact-match accuracy (percent) over the balanced questions, like GQA's `testdev_balanced`.

    python -m llava.eval.CoIN.eval_gqa --result-file merge.jsonl [--question-file test.json]
        [--annotation-file ./cl_dataset/GQA/testdev_balanced_questions.json] [--output-dir DIR] [--compat]
        [--score-file score.json --stage S --checkpoint P]
    python -m llava.eval.CoIN.eval_gqa --tier testdev_balanced --path DIR --output-dir DIR
        (CoIN's call: reads DIR/<tier>_predictions.json, [{"questionId", "prediction"}])

The ground-truth `answer` and `isBalanced` come from the annotation file (default
./cl_dataset/GQA/<tier>_questions.json, where CoIN reads it). The questions are the question file's (each must
be annotated), or without one every annotated question; questions that are not balanced are left out of
the accuracy and counted as `skipped_unbalanced`.
Default: the answer stripped, trailing periods removed and lower-cased must equal the lower-cased label.
--compat: CoIN's conversion (trailing periods removed, lower-cased, one leading space dropped) compared
with the raw label.
With --output-dir: Result.text (with Binary/Open accuracies when the annotation has question types) and,
when scoring --result-file, <tier>_predictions.json as CoIN's convert_gqa_for_eval writes it.
"""
from __future__ import annotations

import os

from llava.eval.CoIN import common
from llava.utils import atomic_write_json, load_json


def coin_prediction(text: str) -> str:
    """CoIN's convert_gqa_for_eval: trailing periods removed, lower-cased, one leading space dropped."""
    text = text.rstrip(".").lower()
    return text[1:] if text.startswith(" ") else text


def gqa_normalize(text: str) -> str:
    """GQA normalisation: surrounding spaces and trailing periods removed, lower-cased."""
    return text.strip().rstrip(".").strip().lower()


def score(questions: list[dict], answers: list[dict], annotations: dict, compat: bool = False) -> dict:
    """Accuracy (percent) over the balanced questions; `annotations` maps questionId -> {"answer",
    "isBalanced", "types": {"structural"}}. details: skipped_unbalanced, binary / open accuracies (percent,
    None where no such question or no types)."""
    pairs = common.pair_answers(questions, answers)
    common.check_annotated(questions, annotations, "the GQA annotation file")
    by_type: dict[str, list[bool]] = {"binary": [], "open": []}
    correct, balanced = 0, 0
    for question, answer in pairs:
        annotation = annotations[str(question["question_id"])]
        if not annotation["isBalanced"]:
            continue
        if compat:
            right = coin_prediction(answer["text"]) == annotation["answer"]
        else:
            right = gqa_normalize(answer["text"]) == gqa_normalize(annotation["answer"])
        correct += right
        balanced += 1
        structural = annotation.get("types", {}).get("structural")
        if structural is not None:
            by_type["open" if structural == "query" else "binary"].append(right)
    type_accuracy = {kind: 100.0 * sum(marks) / len(marks) if marks else None for kind, marks in by_type.items()}
    metric = "coin_exact_match_balanced" if compat else "exact_match_balanced"
    return common.make_result(metric, correct, balanced, skipped_unbalanced=len(pairs) - balanced, **type_accuracy)


def result_text(result: dict) -> str:
    """Samples/Accuracy, then the Binary and Open accuracies that exist."""
    lines = [f"{kind.capitalize()}: {result['details'][kind]:.2f}%\n" for kind in ("binary", "open")
             if result["details"][kind] is not None]
    return common.samples_accuracy_text(result) + "".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = common.build_parser("GQA", __doc__, question_required=False)
    parser.add_argument("--annotation-file", help="GQA questions file (default ./cl_dataset/GQA/<tier>_questions.json)")
    parser.add_argument("--tier", default="testdev_balanced")
    parser.add_argument("--path", help="CoIN's input: folder with <tier>_predictions.json (instead of --result-file)")
    args = common.parse_args(parser, argv, result_file_required=False)
    if bool(args.result_file) == bool(args.path):
        parser.error("give exactly one of --result-file and --path")
    annotation_file = args.annotation_file or os.path.join("./cl_dataset/GQA", f"{args.tier}_questions.json")
    annotations = load_json(annotation_file)
    questions = (common.load_questions(args.question_file) if args.question_file
                 else common.Records([{"question_id": qid} for qid in annotations], annotation_file))
    predictions_name = f"{args.tier}_predictions.json"
    if args.path:
        predictions_file = os.path.join(args.path, predictions_name)
        answers = common.Records([{"question_id": p["questionId"], "text": p["prediction"]}
                                  for p in load_json(predictions_file)], predictions_file)
    else:
        answers = common.load_answers(args.result_file)
    result = score(questions, answers, annotations, compat=args.compat)
    if args.result_file and args.output_dir:
        atomic_write_json(os.path.join(args.output_dir, predictions_name),
                          [{"questionId": a["question_id"], "prediction": coin_prediction(a["text"])}
                           for a in answers], indent=None)
    common.finish(args, result, result_text(result))


if __name__ == "__main__":
    common.run(main)
