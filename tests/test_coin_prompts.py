"""CoIN's ScienceQA answers file as CoIN's model_vqa_science writes it (`prompt` = "<image>\\n" + question), so the
scorer reports IMG-Accuracy; and CoIN's create_prompt.py: GPT-judge prompts beside the answers file."""
import json
import re

import pytest
from PIL import Image

from conftest import PYTHON, REPO, run

RULE = REPO / "llava" / "eval" / "CoIN" / "rule.json"

SQA_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SQA_PROBLEMS = {  # cl_dataset/ScienceQA/problems.json: answer = index of the right choice
    "101": {"question": "Which colour is the square?", "choices": ["red", "blue"], "answer": 0, "image": "image.png",
            "split": "test"},
    "102": {"question": "Which colour is the square?", "choices": ["red", "blue"], "answer": 1, "image": "image.png",
            "split": "test"},
    "103": {"question": "Which is a mammal?", "choices": ["cat", "trout", "owl"], "answer": 0, "image": None,
            "split": "test"},
}


def sqa_question(pid: str, with_image: bool) -> dict:
    """A record of CoIN's Instructions/ScienceQA/test.json."""
    problem = SQA_PROBLEMS[pid]
    options = " ".join(f"({letter}) {choice}" for letter, choice in zip("ABC", problem["choices"]))
    record = {"question_id": pid, "text": f"Question: {problem['question']}\nOptions: {options}\n{SQA_INSTRUCTION}",
              "answer": "AB"[problem["answer"]]}
    if with_image:
        record["image"] = f"ScienceQA/test/{pid}/image.png"
    return record


@pytest.fixture(scope="module")
def sqa(tmp_path_factory, tiny):
    """A zero-shot model directory for the tiny model, a CoIN ScienceQA test.json (two questions with an image, one
    without), the annotation files, and the answers llava.eval.CoIN.model_vqa_science writes for them."""
    root = tmp_path_factory.mktemp("sqa")
    model = root / "zero_shot"
    run([PYTHON, "-m", "llava.model.zero_shot", "--model-base", str(tiny / "lm"), "--vision-tower",
         str(tiny / "vision"), "--projector", str(tiny / "mm_projector.bin"), "--output", str(model)])
    for pid, colour in (("101", (220, 30, 30)), ("102", (30, 30, 220))):
        (root / "cl_dataset" / "ScienceQA" / "test" / pid).mkdir(parents=True)
        Image.new("RGB", (40, 30), colour).save(root / "cl_dataset" / "ScienceQA" / "test" / pid / "image.png")
    (root / "cl_dataset" / "ScienceQA" / "problems.json").write_text(json.dumps(SQA_PROBLEMS))
    (root / "cl_dataset" / "ScienceQA" / "pid_splits.json").write_text(json.dumps({"test": list(SQA_PROBLEMS)}))
    questions = [sqa_question("101", True), sqa_question("102", True), sqa_question("103", False)]
    (root / "test.json").write_text(json.dumps(questions))
    answers = root / "results" / "merge.jsonl"
    run([PYTHON, "-m", "llava.eval.CoIN.model_vqa_science", "--model-path", str(model), "--model-base",
         str(tiny / "lm"), "--question-file", str(root / "test.json"), "--image-folder", str(root / "cl_dataset"),
         "--answers-file", str(answers), "--temperature", "0", "--conv-mode", "vicuna_v1", "--max_new_tokens", "3"])
    return root, questions, [json.loads(line) for line in answers.read_text().splitlines()]


def test_scienceqa_answers_record_the_image_token_as_coin_does(sqa):
    _, questions, answers = sqa
    assert [a["question_id"] for a in answers] == ["101", "102", "103"]
    # CoIN's model_vqa_science: the question without image tokens, "<image>\n" in front when the record has an image
    assert [a["prompt"] for a in answers] == ["<image>\n" + questions[0]["text"], "<image>\n" + questions[1]["text"],
                                              questions[2]["text"]]


@pytest.mark.parametrize("compat", [False, True])
def test_scorer_reports_img_accuracy_on_those_answers(sqa, compat):
    root, _, answers = sqa
    out = root / ("compat" if compat else "default")
    proc = run([PYTHON, "-m", "llava.eval.CoIN.eval_science_qa", "--base-dir", str(root / "cl_dataset" / "ScienceQA"),
                "--result-file", str(root / "results" / "merge.jsonl"), "--output-file", str(out / "output.jsonl"),
                "--output-result", str(out / "output_result.jsonl"), *(["--compat"] if compat else [])])
    analysis = json.loads((out / "output.jsonl").read_text())
    image_right = sum(a["is_multimodal"] for a in analysis["correct"])
    image_total = image_right + sum(a["is_multimodal"] for a in analysis["incorrect"])
    assert image_total == 2  # 101 and 102; 103 has no image
    line = re.search(r"Total: 3, Correct: \d, Accuracy: [\d.]+%, IMG-Accuracy: (.*)", proc.stdout)
    assert line and line.group(1) == f"{100.0 * image_right / image_total:.2f}%"


# ---------------------------------------------------------------------------------------------- create_prompt

def write_answers(path, texts: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"question_id": qid, "prompt": "p", "text": text, "answer_id": "x",
                                        "model_id": "m", "metadata": {}}) + "\n" for qid, text in texts.items()))
    return path


def test_create_prompt_coin_template(tmp_path):
    questions = tmp_path / "test.json"
    questions.write_text(json.dumps([sqa_question("101", True), sqa_question("103", False)]))
    answers = write_answers(tmp_path / "ScienceQA" / "Finetune" / "merge.jsonl", {"103": "A", "101": "B"})
    # JingyangQiao/CoIN's command line (the script run as a file)
    proc = run([PYTHON, "llava/eval/CoIN/create_prompt.py", "--rule", "llava/eval/CoIN/rule.json", "--questions",
                str(questions), "--results", str(answers)])
    output = tmp_path / "ScienceQA" / "Finetune" / "prompt_to_eval.json"
    assert proc.stdout.strip() == f"{output}: 2 prompts"
    chats = json.loads(output.read_text())
    rule = json.loads(RULE.read_text())["CoIN"]
    assert [[m["role"] for m in chat] for chat in chats] == [["system", "user"]] * 2
    assert chats[0][1]["content"] == (  # answers order; the question without its instruction line
        "[Context]\n[Question]\nQuestion: Which is a mammal?\nOptions: (A) cat (B) trout (C) owl\n\n"
        "[Ground truth answer]\nA\n\n[End of ground truth answer]\n\n"
        "[Assistant]\nA\n\n[End of Assistant]\n\n"
        f"[System]\n{rule['prompt']}\n\n")
    assert "[Ground truth answer]\nA\n" in chats[1][1]["content"] and "[Assistant]\nB\n" in chats[1][1]["content"]


def test_create_prompt_grounding_template(tmp_path):
    text = "Please provide the bounding box coordinate of the region this sentence describes: the red cup."
    questions = tmp_path / "test.json"
    questions.write_text(json.dumps([{"question_id": 7, "image": "coco/1.jpg", "text": text,
                                      "answer_bbox": "[0.1, 0.2, 0.5, 0.6]", "size": [640, 480]}]))
    answers = write_answers(tmp_path / "Grounding" / "merge.jsonl", {7: "[0.12, 0.2, 0.5, 0.61]"})
    # zackschen/CoIN's form (a module)
    run([PYTHON, "-m", "llava.eval.CoIN.create_prompt", "--questions", str(questions), "--results", str(answers),
         "--rule_temp", "CoIN_Grounding"])
    content = json.loads((tmp_path / "Grounding" / "prompt_to_eval.json").read_text())[0][1]["content"]
    assert content.startswith(f"[Context]\n[Question]\n{text}\n\n[Ground truth answer]\n[0.1, 0.2, 0.5, 0.6]\n\n")
    assert "[Assistant]\n[0.12, 0.2, 0.5, 0.61]\n\n[End of Assistant]" in content


def test_create_prompt_bad_input(tmp_path):
    questions = tmp_path / "test.json"
    questions.write_text(json.dumps([{"question_id": 1, "image": "a.jpg", "text": "Q\nI"},
                                     {"question_id": 2, "image": "b.jpg", "text": "Q\nI", "answer": "x"}]))
    answers = write_answers(tmp_path / "merge.jsonl", {1: "x", 2: "y"})

    def refused(*extra):
        proc = run([PYTHON, "-m", "llava.eval.CoIN.create_prompt", "--questions", str(questions), "--results",
                    str(answers), *extra], check=False)
        assert proc.returncode == 1
        return proc.stderr.strip()

    assert refused() == f"error: {questions}: question 1 has no 'answer'"
    assert refused("--rule_temp", "CoIN_Caption") == \
        f"error: {RULE}: no rule template 'CoIN_Caption' (--rule_temp); it has ['CoIN', 'CoIN_Grounding']"
    write_answers(answers, {2: "y"})
    assert "1 questions without an answer (first: 1)" in refused()
    assert "No such file or directory" in refused("--rule", str(tmp_path / "rule.json"))
    assert not (tmp_path / "prompt_to_eval.json").exists()
