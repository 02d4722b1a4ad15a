"""Upstream LLaVA ScienceQA scorer (same flags, parsing and output files).

    python -m llava.eval.eval_science_qa --base-dir DIR --result-file answers.jsonl
        --output-file output.jsonl --output-result output_result.jsonl [--split test]

DIR holds `problems.json` and `pid_splits.json`. Accuracy (percent) is over every problem of the split;
a problem without an answer, or whose answer gives no valid option letter, counts as wrong.
An answer is read as: exactly an option letter; else `X. ...`; else a single `The answer is X.`.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable

from llava.utils import atomic_write_json, load_json, load_jsonl

OPTIONS = ["A", "B", "C", "D", "E"]
FAILED = "FAILED"
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def leading_letter(text: str) -> str | None:
    """The option letter when the answer is a bare letter or starts with `X. `, else None."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    return None


def parse_option_letter(text: str) -> str:
    """Upstream rule: the option letter an answer names, or FAILED."""
    letter = leading_letter(text)
    if letter:
        return letter
    found = _ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else FAILED


def option_index(letter: str, n_choices: int) -> int:
    """Index of `letter` among the problem's first `n_choices` options, or -1."""
    return OPTIONS.index(letter) if letter in OPTIONS[:n_choices] else -1


def evaluate(problems: dict, pids: list[str], predictions: dict[str, dict],
             parse: Callable[[str], str] = parse_option_letter) -> dict:
    """Score `predictions` (pid -> answer record with "text", "prompt") on `problems[pid]` for pid in `pids`.

    An answer without a valid option index is wrong (upstream's and CoIN's `get_pred_idx` return -1 for it; the
    random option drawn after that `return` never runs). Returns {"acc" (percent), "correct", "count", "unparsed",
    "img_acc" (percent over prompts that contain "<image>", None without such prompts),
    "analysis": {"correct": [...], "incorrect": [...]}, "results": {pid: index}, "outputs": {pid: text}}.
    """
    analysis: dict[str, list] = {"correct": [], "incorrect": []}
    results, outputs = {}, {}
    unparsed = 0
    for pid in pids:
        problem = problems[pid]
        pred = predictions.get(pid, {"text": FAILED, "prompt": "Unknown"})
        letter = parse(pred["text"])
        index = option_index(letter, len(problem["choices"]))
        if index < 0:
            unparsed += 1
        results[pid] = index
        outputs[pid] = pred["text"]
        analysis["correct" if index == problem["answer"] else "incorrect"].append({
            "question_id": pid, "parsed_ans": letter, "ground_truth": OPTIONS[problem["answer"]],
            "question": pred["prompt"], "pred": pred["text"], "is_multimodal": "<image>" in pred["prompt"]})
    correct, count = len(analysis["correct"]), len(pids)
    if count == 0:
        raise ValueError("ScienceQA: no problems to score")
    img_correct = sum(a["is_multimodal"] for a in analysis["correct"])
    img_count = img_correct + sum(a["is_multimodal"] for a in analysis["incorrect"])
    # percent as upstream computes it (fraction first), so that output_result's acc is the same float
    return {"acc": correct / count * 100, "correct": correct, "count": count, "unparsed": unparsed,
            "img_acc": img_correct / img_count * 100 if img_count else None,
            "analysis": analysis, "results": results, "outputs": outputs}


def summary_line(evaluation: dict) -> str:
    """Upstream's printed line; IMG-Accuracy is n/a when no prompt has an image."""
    img = "n/a" if evaluation["img_acc"] is None else f"{evaluation['img_acc']:.2f}%"
    return (f"Total: {evaluation['count']}, Correct: {evaluation['correct']}, Accuracy: {evaluation['acc']:.2f}%, "
            f"IMG-Accuracy: {img}")


def write_output_files(evaluation: dict, output_file: str | None, output_result: str | None) -> None:
    """Write upstream's per-question analysis and `{acc, correct, count, results, outputs}` atomically."""
    if output_file:
        atomic_write_json(output_file, evaluation["analysis"])
    if output_result:
        atomic_write_json(output_result, {k: evaluation[k] for k in ("acc", "correct", "count", "results", "outputs")})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", required=True)
    parser.add_argument("--result-file", required=True)
    parser.add_argument("--output-file")
    parser.add_argument("--output-result")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    pids = load_json(os.path.join(args.base_dir, "pid_splits.json"))[args.split]
    problems = load_json(os.path.join(args.base_dir, "problems.json"))
    predictions = {str(p["question_id"]): p for p in load_jsonl(args.result_file)}
    missing = sum(pid not in predictions for pid in pids)
    if missing:
        print(f"warning: {missing} problems of split {args.split!r} have no answer in {args.result_file} "
              "(counted wrong)", file=sys.stderr)
    evaluation = evaluate(problems, pids, predictions)
    print(summary_line(evaluation))
    write_output_files(evaluation, args.output_file, args.output_result)


if __name__ == "__main__":
    main()
