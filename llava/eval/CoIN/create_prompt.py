"""CoIN's GPT-judge prompts: one chat per answer, written to `prompt_to_eval.json` beside the answers file (what
CoIN's scripts call after scoring, and what its reviewer, e.g. `eval_gpt_review.py -p DIR`, reads).

    python llava/eval/CoIN/create_prompt.py --rule llava/eval/CoIN/rule.json \\
        --questions ./playground/Instructions/ScienceQA/test.json --results RESULT_DIR/STAGE/merge.jsonl \\
        [--rule_temp CoIN | CoIN_Grounding]
    (or python -m llava.eval.CoIN.create_prompt ...)

The chats (one per answer, in answers order) and which question fields each template reads:
docs/coin_formats.md. The rule file shipped here holds the templates `CoIN` and `CoIN_Grounding` in this
project's wording; pass CoIN's own rule.json for its wording (its reviewer sends only the user message).
The answers must cover the questions one to one (errors name the file and the record).
"""
from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as a file, as CoIN's scripts do: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from llava.eval.CoIN.common import field, load_answers, load_questions, pair_answers, run  # noqa: E402
from llava.utils import atomic_write_json, load_json  # noqa: E402

DEFAULT_RULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rule.json")
SYSTEM_MESSAGE = "You check answers against the ground truth and score them carefully."
OUTPUT_NAME = "prompt_to_eval.json"
QA_TEMPLATE = "CoIN"  # the template that reads `answer`; every other one reads `answer_bbox`


def load_rule(path: str, template: str) -> dict:
    """The {"role", "prompt"} entry `template` of a rule file; errors name the file and what is missing."""
    rules = load_json(path)
    if not isinstance(rules, dict) or template not in rules:
        known = sorted(rules) if isinstance(rules, dict) else []
        raise ValueError(f"{path}: no rule template {template!r} (--rule_temp); it has {known}")
    rule = rules[template]
    missing = [key for key in ("role", "prompt") if not isinstance(rule, dict) or key not in rule]
    if missing:
        raise ValueError(f"{path}: rule template {template!r} has no {missing}")
    return rule


def judge_content(question: str, ground_truth, answer: str, rule: dict) -> str:
    """The user message: CoIN's sections, each closed by a blank line."""
    role = rule["role"]
    return (f"[Context]\n[Question]\n{question}\n\n"
            f"[Ground truth answer]\n{ground_truth}\n\n[End of ground truth answer]\n\n"
            f"[{role}]\n{answer}\n\n[End of {role}]\n\n"
            f"[System]\n{rule['prompt']}\n\n")


def build_prompts(questions: list[dict], answers: list[dict], rule: dict, template: str) -> list[list[dict]]:
    """One [system, user] chat per answer, in answers order."""
    source = getattr(questions, "source", "questions")
    question_of = {str(a["question_id"]): q for q, a in pair_answers(questions, answers)}
    chats = []
    for answer in answers:
        question = question_of[str(answer["question_id"])]
        text = field(question, "text", source)
        if template == QA_TEMPLATE:
            shown, truth = "\n".join(text.split("\n")[:-1]), field(question, "answer", source)
        else:
            shown, truth = text, field(question, "answer_bbox", source)
        chats.append([{"role": "system", "content": SYSTEM_MESSAGE},
                      {"role": "user", "content": judge_content(shown, truth, answer["text"], rule)}])
    return chats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="answers file (merge.jsonl); the output goes beside it")
    parser.add_argument("--questions", required=True, help="CoIN question file (test.json / val.json)")
    parser.add_argument("--rule", default=DEFAULT_RULE, help="rule file (default: the one shipped beside this script)")
    parser.add_argument("--rule_temp", default=QA_TEMPLATE, help="template in the rule file (CoIN, CoIN_Grounding)")
    args = parser.parse_args(argv)
    rule = load_rule(args.rule, args.rule_temp)
    chats = build_prompts(load_questions(args.questions), load_answers(args.results), rule, args.rule_temp)
    output = os.path.join(os.path.dirname(args.results), OUTPUT_NAME)
    atomic_write_json(output, chats, indent=4)
    print(f"{output}: {len(chats)} prompts")


if __name__ == "__main__":
    run(main)
