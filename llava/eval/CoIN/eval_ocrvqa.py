"""CoIN OCR-VQA scorer: exact-match accuracy (percent) against `answer`.

    python -m llava.eval.CoIN.eval_ocrvqa --annotation-file test.json --result-file merge.jsonl
        [--output-dir DIR] [--compat] [--score-file score.json --stage S --checkpoint P]

(--question-file is another name for --annotation-file.) Default: exact match after EvalAI normalisation
(case, punctuation, articles, number words).
--compat: CoIN's rule: an answer containing "Unanswerable" is wrong, any other is right when it equals the
label lower-cased. (CoIN prints `Samples: 0`, a display bug; the real count is printed here.)
"""
from __future__ import annotations

from llava.eval.CoIN import common

UNANSWERABLE = "Unanswerable"


def score(questions: list[dict], answers: list[dict], compat: bool = False) -> dict:
    """Accuracy (percent). details (compat): unanswerable, the answers counted wrong for "Unanswerable"."""
    source = common.source_of(questions, "questions")
    pairs = common.pair_answers(questions, answers)
    if compat:
        unanswerable = sum(UNANSWERABLE in a["text"] for _, a in pairs)
        correct = sum(UNANSWERABLE not in a["text"] and a["text"].lower() == common.field(q, "answer", source).lower()
                      for q, a in pairs)
        return common.make_result("coin_lower_exact_match", correct, len(pairs), unanswerable=unanswerable)
    correct = sum(common.normalize_answer(a["text"]) == common.normalize_answer(common.field(q, "answer", source))
                  for q, a in pairs)
    return common.make_result("exact_match_normalized", correct, len(pairs))


def main(argv: list[str] | None = None) -> None:
    common.question_file_main("OCRVQA", __doc__, score, argv, "--annotation-file")


if __name__ == "__main__":
    common.run(main)
