"""CoIN ScienceQA scorer: option-letter accuracy (percent) against `problems.json`.

    python -m llava.eval.CoIN.eval_science_qa --base-dir ./cl_dataset/ScienceQA --result-file merge.jsonl
        [--question-file test.json] [--output-file output.jsonl] [--output-result output_result.jsonl]
        [--output-dir DIR] [--split test] [--compat] [--score-file score.json --stage S --checkpoint P]

The questions are the question file's (question_id = ScienceQA pid), or without one the pids of `--split`
in `pid_splits.json`. Default: upstream LLaVA parsing (a bare letter, `X. ...`, or one `The answer is X.`);
an answer naming no valid option is wrong, and counted as `unparsed`.
--compat: CoIN's parsing (a bare letter, `X. ...`, else the first one-character word, upper-cased); an answer
naming no valid option is wrong there too (CoIN's random-option fallback sits after a `return -1` and never runs).
IMG-Accuracy is over the answers whose `prompt` holds `<image>` (model_vqa_science writes it so).
"""
from __future__ import annotations

import os
import re

from llava.eval.CoIN import common
from llava.eval.eval_science_qa import (FAILED, evaluate, leading_letter, parse_option_letter,
                                        summary_line, write_output_files)
from llava.utils import load_json

_SINGLE_CHARACTER_WORD = re.compile(r"\b(\w)\b")


def parse_coin_letter(text: str) -> str:
    """CoIN's rule: a bare option letter, `X. ...`, else the first one-character word upper-cased, else FAILED."""
    letter = leading_letter(text)
    if letter:
        return letter
    found = _SINGLE_CHARACTER_WORD.findall(text)
    return found[0].upper() if found else FAILED


def score(questions: list[dict], answers: list[dict], problems: dict, compat: bool = False) -> dict:
    """Accuracy (percent) of `answers` on `questions` (records with question_id = pid) against `problems`
    ({pid: {"choices", "answer": index}}). details: unparsed, img_accuracy (percent over prompts with `<image>`,
    None without any), evaluation (per-question analysis for the output files)."""
    pairs = common.pair_answers(questions, answers)
    common.check_annotated(questions, problems, "ScienceQA problems.json")
    predictions = {str(q["question_id"]): {"text": a["text"], "prompt": a.get("prompt", "")} for q, a in pairs}
    evaluation = evaluate(problems, list(predictions), predictions,
                          parse=parse_coin_letter if compat else parse_option_letter)
    details = {"unparsed": evaluation["unparsed"], "img_accuracy": evaluation["img_acc"], "evaluation": evaluation}
    return common.make_result("coin_option_accuracy" if compat else "option_accuracy",
                              evaluation["correct"], evaluation["count"], **details)


def _output_path(explicit: str | None, output_dir: str | None, name: str) -> str | None:
    """The explicit path, else `name` inside --output-dir, else None (not written)."""
    return explicit or (os.path.join(output_dir, name) if output_dir else None)


def main(argv: list[str] | None = None) -> None:
    parser = common.build_parser("ScienceQA", __doc__, question_required=False)
    parser.add_argument("--base-dir", default="./cl_dataset/ScienceQA",
                        help="folder with problems.json and pid_splits.json")
    parser.add_argument("--output-file", help="per-question analysis (default DIR/output.jsonl with --output-dir)")
    parser.add_argument("--output-result", help="{acc, correct, count, results, outputs} "
                                                "(default DIR/output_result.jsonl with --output-dir)")
    parser.add_argument("--split", default="test", help="pid_splits.json split scored without --question-file")
    args = common.parse_args(parser, argv)
    problems = load_json(os.path.join(args.base_dir, "problems.json"))
    if args.question_file:
        questions = common.load_questions(args.question_file)
    else:
        splits_file = os.path.join(args.base_dir, "pid_splits.json")
        questions = common.Records([{"question_id": pid} for pid in load_json(splits_file)[args.split]],
                                   f"{splits_file} split {args.split!r}")
    result = score(questions, common.load_answers(args.result_file), problems, compat=args.compat)
    evaluation = result["details"]["evaluation"]
    print(summary_line(evaluation))
    write_output_files(evaluation, _output_path(args.output_file, args.output_dir, "output.jsonl"),
                       _output_path(args.output_result, args.output_dir, "output_result.jsonl"))
    common.finish(args, result, common.samples_accuracy_text(result))


if __name__ == "__main__":
    common.run(main)
