"""What every CoIN scorer shares: reading question and answers files, the coverage check (answers and
questions one to one by question_id), short-answer (VQA-style) scoring, and the command-line tail
(print, `Result.text`, `score.json`).

A scorer's `score(...)` returns {"accuracy": percent 0-100, "n": questions scored, "metric": name,
"details": counts and per-task extras}. question_ids are compared as strings (12 and "12" are one id),
because annotation files and question files do not always agree on the type.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from llava.eval.m4c_evaluator import EvalAIAnswerProcessor, TextVQAAccuracyEvaluator
from llava.utils import atomic_write_json, atomic_write_text, load_json, load_jsonl

SHOWN_IDS = 5  # ids named in a coverage error

normalize_answer = EvalAIAnswerProcessor()
_soft_vqa = TextVQAAccuracyEvaluator()


class Records(list):
    """A list of records that remembers the file it was read from, for error messages."""

    def __init__(self, items, source: str):
        super().__init__(items)
        self.source = source


def source_of(records: list, default: str) -> str:
    return getattr(records, "source", default)


def key_of(record: dict, source: str, position: int) -> str:
    """The record's question_id as a string; error naming the source and position when absent."""
    if not isinstance(record, dict) or "question_id" not in record:
        raise ValueError(f"{source}: record {position} has no question_id")
    return str(record["question_id"])


def _shown(ids: list[str]) -> str:
    more = f", ... ({len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
    return ", ".join(ids[:SHOWN_IDS]) + more


def load_questions(path: str) -> Records:
    """A question file: a JSON list (CoIN test.json / val.json) or JSON lines (upstream .jsonl)."""
    records = load_jsonl(path) if str(path).endswith(".jsonl") else load_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a list of question records, got {type(records).__name__}")
    return Records(records, str(path))


def load_answers(path: str) -> Records:
    """An answers file (JSON lines, upstream schema: question_id, prompt, text, ...)."""
    return Records(load_jsonl(path), str(path))


def index_questions(questions: list[dict]) -> dict[str, dict]:
    """question_id -> question, in file order; error naming the file and the ids that repeat."""
    source = source_of(questions, "questions")
    by_id: dict[str, dict] = {}
    repeated = []
    for position, question in enumerate(questions):
        key = key_of(question, source, position)
        if key in by_id:
            repeated.append(key)
        by_id[key] = question
    if repeated:
        raise ValueError(f"{source}: duplicate question_id {_shown(repeated)}; a question file must list "
                         "each question once")
    if not by_id:
        raise ValueError(f"{source}: no questions to score")
    return by_id


def index_answers(answers: list[dict]) -> tuple[dict[str, dict], Counter]:
    """question_id (as a string) -> answer, and how often each id is answered. Error naming the file and record
    for an answer without a question_id or a `text`."""
    source = source_of(answers, "answers")
    answer_by_id: dict[str, dict] = {}
    counts: Counter = Counter()
    for position, answer in enumerate(answers):
        key = key_of(answer, source, position)
        if "text" not in answer:
            raise ValueError(f"{source}: record {position} (question {key}) has no 'text'")
        counts[key] += 1
        answer_by_id[key] = answer
    return answer_by_id, counts


def pair_answers(questions: list[dict], answers: list[dict]) -> list[tuple[dict, dict]]:
    """(question, answer) for every question, in question order. Error unless the answers cover the
    questions one to one: none missing, none for an unknown question, none repeated."""
    by_id = index_questions(questions)
    answer_source = source_of(answers, "answers")
    answer_by_id, counts = index_answers(answers)
    problems = []
    for label, ids in (("questions without an answer", [k for k in by_id if k not in counts]),
                       ("answers to questions not in the question file", [k for k in counts if k not in by_id]),
                       ("questions answered more than once", [k for k, c in counts.items() if c > 1])):
        if ids:
            problems.append(f"{len(ids)} {label} (first: {_shown(ids)})")
    if problems:
        raise ValueError(f"{answer_source} does not cover {source_of(questions, 'the questions')} one to one: "
                         + "; ".join(problems) + ". Re-run or re-merge the inference; no subset is scored.")
    return [(question, answer_by_id[key]) for key, question in by_id.items()]


def check_annotated(questions: list[dict], annotated, where: str) -> None:
    """Error naming the count and first ids of the questions whose question_id is not a key of `annotated`."""
    source = source_of(questions, "questions")
    missing = [key for position, q in enumerate(questions) if (key := key_of(q, source, position)) not in annotated]
    if missing:
        raise ValueError(f"{source}: {len(missing)} questions are not in {where} (first: {_shown(missing)})")


def field(record: dict, name: str, source: str) -> Any:
    """record[name]; error naming the source and question when absent."""
    if name not in record:
        raise ValueError(f"{source}: question {record.get('question_id')} has no {name!r}")
    return record[name]


def make_result(metric: str, total_score: float, n: int, **details) -> dict:
    """The scorer result; `total_score` is the summed per-question score (each in [0, 1])."""
    if n == 0:
        raise ValueError(f"{metric}: no questions to score")
    return {"accuracy": 100.0 * total_score / n, "n": n, "metric": metric, "details": details}


def human_answers(question: dict, source: str) -> list[str] | None:
    """The ten annotator answers of a VQA-style question (strings, or VQA records {"answer": ...}), or None."""
    if "answers" not in question:
        return None
    answers = [a["answer"] if isinstance(a, dict) else a for a in question["answers"]]
    if len(answers) != TextVQAAccuracyEvaluator.NUM_ANSWERS:
        raise ValueError(f"{source}: question {question.get('question_id')} has {len(answers)} 'answers'; "
                         f"the soft VQA score needs {TextVQAAccuracyEvaluator.NUM_ANSWERS}")
    return answers


def soft_vqa_score(pred: str, gt_answers: list[str]) -> float:
    """Soft VQA accuracy in [0, 1] of one prediction against ten human answers."""
    return _soft_vqa.score(pred, gt_answers)


def score_short_answers(questions: list[dict], answers: list[dict], compat: bool = False) -> dict:
    """VizWiz / VQAv2 scoring. Default: soft VQA accuracy where the question has ten `answers`, else
    exact match after EvalAI normalisation against `answer`. compat (CoIN): case-insensitive exact match
    of the raw text against `answer`."""
    source = source_of(questions, "questions")
    pairs = pair_answers(questions, answers)
    if compat:
        correct = sum(a["text"].upper() == field(q, "answer", source).upper() for q, a in pairs)
        return make_result("coin_case_insensitive_exact_match", correct, len(pairs))
    total, n_soft = 0.0, 0
    for question, answer in pairs:
        gt_answers = human_answers(question, source)
        if gt_answers is not None:
            total += soft_vqa_score(answer["text"], gt_answers)
            n_soft += 1
        else:
            total += normalize_answer(answer["text"]) == normalize_answer(field(question, "answer", source))
    if n_soft == len(pairs):
        metric = "vqa_soft_accuracy"
    elif n_soft == 0:
        metric = "exact_match_normalized"
    else:
        metric = "vqa_soft_accuracy+exact_match_normalized"
    return make_result(metric, total, len(pairs), soft_scored=n_soft, exact_scored=len(pairs) - n_soft)


# ----------------------------------------------------------------------------------------- command line

def build_parser(task: str, description: str, question_flags: tuple[str, ...] = ("--question-file",),
                 question_required: bool = True) -> argparse.ArgumentParser:
    """The flags every scorer takes; `question_flags` adds CoIN's own name for the question file."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--result-file", help="answers (JSON lines, e.g. merge.jsonl)")
    parser.add_argument(*question_flags, dest="question_file", required=question_required,
                        help="question file (test.json / val.json); the answers must cover it one to one")
    parser.add_argument("--output-dir", help="where to write CoIN's output files (Result.text, ...)")
    parser.add_argument("--compat", action="store_true", help="reproduce the CoIN scorer's rules and quirks")
    parser.add_argument("--score-file", help="write score.json here (needs --stage and --checkpoint)")
    parser.add_argument("--task", default=task, help=f"task name recorded in score.json (default {task})")
    parser.add_argument("--stage", help="stage recorded in score.json (the task trained last, Zero_shot, ...)")
    parser.add_argument("--checkpoint", help="model path recorded in score.json")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None,
               result_file_required: bool = True) -> argparse.Namespace:
    args = parser.parse_args(argv)
    if result_file_required and not args.result_file:
        parser.error("--result-file is required")
    if args.score_file and not (args.stage and args.checkpoint):
        parser.error("--score-file needs --stage and --checkpoint")
    return args


def samples_accuracy_text(result: dict) -> str:
    return f"Samples: {result['n']}\nAccuracy: {result['accuracy']:.2f}%\n"


def finish(args: argparse.Namespace, result: dict, result_text: str) -> None:
    """Print the result like the CoIN scorers, write `result_text` to --output-dir/Result.text and score.json."""
    print(samples_accuracy_text(result), end="")
    for name, value in result["details"].items():
        if isinstance(value, (int, float, str)):
            print(f"{name}: {value}")
    if args.output_dir:
        atomic_write_text(Path(args.output_dir) / "Result.text", result_text)
    if args.score_file:
        atomic_write_json(args.score_file, {
            "task": args.task, "stage": args.stage, "metric": result["metric"], "accuracy": result["accuracy"],
            "n": result["n"], "checkpoint": args.checkpoint})


def question_file_main(task: str, description: str, score: Callable[..., dict], argv: list[str] | None,
                       question_flag: str, result_text: Callable[[dict], str] = samples_accuracy_text) -> None:
    """Command line of a scorer whose ground truth is in the question file, `score(questions, answers,
    compat=...)`; `question_flag` is CoIN's name for that file (--test-file or --annotation-file)."""
    parser = build_parser(task, description, question_flags=("--question-file", question_flag))
    args = parse_args(parser, argv)
    result = score(load_questions(args.question_file), load_answers(args.result_file), compat=args.compat)
    finish(args, result, result_text(result))


def run(main: Callable[[], None]) -> None:
    """Run a scorer's main(); input errors end the process with one readable line (exit status 1)."""
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
