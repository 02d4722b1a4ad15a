"""Answers files (JSON lines from the inference scripts) -> the files that GQA's evaluation script and the VizWiz
and VQAv2 evaluation servers read: what upstream LLaVA's `scripts/convert_*` write, from the same command lines
(`scripts/convert_gqa_for_eval.py`, `convert_vizwiz_for_submission.py`, `convert_vqav2_for_submission.py`).

Stricter than upstream, never silently: a line that is not JSON, an answer without `question_id` or `text`, a
question answered twice, an answer to a question the question file does not hold, or a question without an answer
is an error naming the file and the record (upstream skips bad lines, or stops on a bare assertion).
question_ids are compared as strings; each output keeps the id as its input file spells it.
"""
from __future__ import annotations

import argparse
import json
import os

from llava.eval.CoIN.common import (check_annotated, field, index_answers, index_questions, load_answers,
                                    load_questions, normalize_answer, pair_answers, source_of)
from llava.utils import atomic_write_text

VQAV2_TEST_QUESTIONS = "llava_vqav2_mscoco_test2015.jsonl"  # every test2015 question: the server wants them all


def check_answers(answers: list[dict]) -> None:
    """Each answer has a question_id and a `text`, and no question is answered twice."""
    source = source_of(answers, "answers")
    _, counts = index_answers(answers)
    repeated = [key for key, count in counts.items() if count > 1]
    if repeated:
        raise ValueError(f"{source}: {len(repeated)} questions answered more than once (first: {repeated[:5]}); "
                         "was a chunk merged twice? Re-merge the chunk files")


def gqa_predictions(answers: list[dict], questions: list[dict] | None = None) -> list[dict]:
    """GQA's predictions file: [{"questionId", "prediction": the answer lower-cased, trailing periods removed}]
    in answers order. With `questions`, the answers must cover them one to one."""
    if questions is None:
        check_answers(answers)
    else:
        pair_answers(questions, answers)
    return [{"questionId": a["question_id"], "prediction": a["text"].rstrip(".").lower()} for a in answers]


def vizwiz_submission(questions: list[dict], answers: list[dict]) -> list[dict]:
    """VizWiz's upload file: [{"image", "answer": EvalAI-normalised}] in question-file order."""
    source = source_of(questions, "questions")
    return [{"image": field(q, "image", source), "answer": normalize_answer(a["text"])}
            for q, a in pair_answers(questions, answers)]


def vqav2_submission(test_questions: list[dict], split_questions: list[dict], answers: list[dict]) -> list[dict]:
    """VQAv2's upload file: [{"question_id", "answer"}] for every question of test2015 in its file order, EvalAI-
    normalised; questions outside the answered split (test-dev) get "" as the server requires. The answers must
    cover the split's question file one to one, and the split must lie inside test2015."""
    answered = {str(q["question_id"]): normalize_answer(a["text"]) for q, a in pair_answers(split_questions, answers)}
    test_by_id = index_questions(test_questions)
    check_annotated(split_questions, test_by_id, source_of(test_questions, VQAV2_TEST_QUESTIONS))
    return [{"question_id": q["question_id"], "answer": answered.get(key, "")} for key, q in test_by_id.items()]


def write_submission(path: str, records: list[dict]) -> None:
    """One JSON document, no indentation, as upstream's converters write it; atomically; parent folders made."""
    atomic_write_text(path, json.dumps(records))


# ----------------------------------------------------------------------------------------------- command lines

def gqa_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Answers (JSON lines) -> GQA's predictions file "
                                                 "(testdev_balanced_predictions.json for `eval.py --tier`).")
    parser.add_argument("--src", required=True, help="answers file (merge.jsonl)")
    parser.add_argument("--dst", required=True, help="predictions file to write")
    parser.add_argument("--question-file", help="(ours) the question file answered; the answers must cover it")
    args = parser.parse_args(argv)
    questions = load_questions(args.question_file) if args.question_file else None
    predictions = gqa_predictions(load_answers(args.src), questions)
    write_submission(args.dst, predictions)
    print(f"{args.dst}: {len(predictions)} predictions")


def vizwiz_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Answers (JSON lines) -> the VizWiz evaluation server's upload file.")
    parser.add_argument("--annotation-file", required=True, help="the question file answered (llava_test.jsonl)")
    parser.add_argument("--result-file", required=True, help="answers file")
    parser.add_argument("--result-upload-file", required=True, help="upload file to write")
    args = parser.parse_args(argv)
    submission = vizwiz_submission(load_questions(args.annotation_file), load_answers(args.result_file))
    write_submission(args.result_upload_file, submission)
    print(f"{args.result_upload_file}: {len(submission)} answers")


def vqav2_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(
        "DIR/answers/SPLIT/CKPT/merge.jsonl -> DIR/answers_upload/SPLIT/CKPT.json, the VQAv2 evaluation server's "
        f"upload file: every question of DIR/{VQAV2_TEST_QUESTIONS}, answered from the split's answers, the rest "
        "blank. The answers must cover DIR/SPLIT.jsonl, the question file they were made from."))
    parser.add_argument("--dir", default="./playground/data/eval/vqav2")
    parser.add_argument("--ckpt", required=True, help="checkpoint name (the answers' folder)")
    parser.add_argument("--split", required=True, help="e.g. llava_vqav2_mscoco_test-dev2015")
    args = parser.parse_args(argv)
    answers = load_answers(os.path.join(args.dir, "answers", args.split, args.ckpt, "merge.jsonl"))
    split_questions = load_questions(os.path.join(args.dir, f"{args.split}.jsonl"))
    submission = vqav2_submission(load_questions(os.path.join(args.dir, VQAV2_TEST_QUESTIONS)), split_questions,
                                  answers)
    destination = os.path.join(args.dir, "answers_upload", args.split, f"{args.ckpt}.json")
    write_submission(destination, submission)
    print(f"{destination}: {len(split_questions)} answered, {len(submission) - len(split_questions)} left blank "
          f"(test2015 questions outside {args.split})")
