"""Upstream LLaVA TextVQA scorer (same flags and output): soft VQA accuracy of an answers file against
`TextVQA_0.5.1_val.json`, matching each answer by (image id, question) recovered from its prompt.

    python -m llava.eval.eval_textvqa --annotation-file TextVQA_0.5.1_val.json --result-file answers.jsonl
    python -m llava.eval.eval_textvqa --annotation-file ... --result-dir DIR     (every DIR/*.jsonl)

For the CoIN question files (keyed by question_id) use `llava.eval.CoIN.eval_textvqa`.
"""
from __future__ import annotations

import argparse
import os
import re

from llava.eval.m4c_evaluator import TextVQAAccuracyEvaluator
from llava.utils import load_json, load_jsonl


def prompt_processor(prompt: str) -> str:
    """The lower-cased question inside a LLaVA TextVQA prompt: `OCR tokens: ... Question: Q Short answer:`,
    a three-line prompt with a `Reference OCR token:` line, or `Q\\n<instruction>`."""
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        if match is None:
            raise ValueError(f"no 'Question: ... Short answer:' in prompt {prompt!r}")
        question = match.group(1)
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        raise ValueError(f"cannot find the question in prompt {prompt!r}")
    return question.lower()


def eval_single(annotation_file: str, result_file: str) -> float:
    """Print and return the accuracy (percent) of one answers file."""
    print(os.path.splitext(os.path.basename(result_file))[0])
    annotations = {(a["image_id"], a["question"].lower()): a for a in load_json(annotation_file)["data"]}
    pred_list = []
    for result in load_jsonl(result_file):
        key = (result["question_id"], prompt_processor(result["prompt"]))
        if key not in annotations:
            raise ValueError(f"{result_file}: no annotation in {annotation_file} for image id and question {key}")
        pred_list.append({"pred_answer": result["text"], "gt_answers": annotations[key]["answers"]})
    accuracy = 100.0 * TextVQAAccuracyEvaluator().eval_pred_list(pred_list)
    print(f"Samples: {len(pred_list)}\nAccuracy: {accuracy:.2f}%\n")
    return accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotation-file", required=True)
    parser.add_argument("--result-file")
    parser.add_argument("--result-dir")
    args = parser.parse_args(argv)
    if args.result_file is not None:
        eval_single(args.annotation_file, args.result_file)
    if args.result_dir is not None:
        for name in sorted(os.listdir(args.result_dir)):
            if not name.endswith(".jsonl"):
                print(f"Skipping {name}")
                continue
            eval_single(args.annotation_file, os.path.join(args.result_dir, name))


if __name__ == "__main__":
    main()
