"""CoIN ImageNet scorer: label accuracy (percent). CoIN's scripts call it by CoIN's misspelt file name,
`llava.eval.CoIN.eval_ImagetNet`, which is an alias of this module.

    python -m llava.eval.CoIN.eval_imagenet --test-file test.json --result-file merge.jsonl
        [--output-dir DIR] [--compat] [--score-file score.json --stage S --checkpoint P]

(--question-file is another name for --test-file.) Default: an answer is paired with its question by
question_id and is right when it equals the question's `answer` label after EvalAI normalisation (case,
punctuation, articles, number words): an exact label match, so "a golden retriever" matches
"golden retriever" but "golden retriever dog" does not.
--compat: CoIN's rule. Answers are paired with questions by position in the two files (right only if the
merge kept the question order), and an answer is right when the label is a substring of it or it is a
substring of the label, raw and case-sensitive (so an empty answer is always right).
Result.text holds Samples/Accuracy and then the wrong answers as a JSON list, as CoIN writes it.
"""
from __future__ import annotations

import json

from llava.eval.CoIN import common


def score(questions: list[dict], answers: list[dict], compat: bool = False) -> dict:
    """Accuracy (percent); details["wrong"]: the wrong answer records with their "ground_truth" label."""
    source = common.source_of(questions, "questions")
    pairs = common.pair_answers(questions, answers)  # the coverage check holds in both modes
    if compat:
        pairs = list(zip(questions, answers))
    wrong = []
    for question, answer in pairs:
        label, text = common.field(question, "answer", source), answer["text"]
        if compat:
            right = label in text or text in label
        else:
            right = common.normalize_answer(text) == common.normalize_answer(label)
        if not right:
            wrong.append({**answer, "ground_truth": label})
    metric = "coin_substring_match_by_position" if compat else "label_exact_match_normalized"
    return common.make_result(metric, len(pairs) - len(wrong), len(pairs), wrong=wrong)


def result_text(result: dict) -> str:
    """Samples/Accuracy followed by the wrong answers as a JSON list, as CoIN writes Result.text."""
    return common.samples_accuracy_text(result) + json.dumps(result["details"]["wrong"], indent=4)


def main(argv: list[str] | None = None) -> None:
    common.question_file_main("ImageNet", __doc__, score, argv, "--test-file", result_text)


if __name__ == "__main__":
    common.run(main)
