"""CoIN scorers, the m4c evaluator and the upstream ScienceQA / TextVQA scorers, on hand-made cases."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llava.eval import eval_science_qa as upstream_sqa
from llava.eval import eval_textvqa as upstream_textvqa
from llava.eval.CoIN import (common, eval_gqa, eval_grounding, eval_ImagetNet, eval_imagenet, eval_ocrvqa,
                             eval_science_qa, eval_textvqa, eval_vizwiz, eval_vqav2)
from llava.eval.m4c_evaluator import EvalAIAnswerProcessor, STVQAAccuracyEvaluator, TextVQAAccuracyEvaluator

ROOT = Path(__file__).resolve().parents[1]


def write_json(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def write_jsonl(path: Path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def answers_for(texts: dict) -> list[dict]:
    """Answer records {question_id: text} in the upstream schema."""
    return [{"question_id": qid, "prompt": "q", "text": text, "answer_id": "x", "model_id": "m", "metadata": {}}
            for qid, text in texts.items()]


# ------------------------------------------------------------------------------------------ m4c evaluator

@pytest.mark.parametrize("raw, normalized", [
    ("Two dogs.", "2 dogs"),
    ("the cat's", "cat 's"),
    ("Yes!", "yes"),
    ("dont", "don't"),
    ("1,000", "1000"),
    ("3.5 ft", "3.5 ft"),
    ("Ten\tapples", "10 apples"),
    ("a-b", "b"),  # '-' not touching a space becomes a space, then the article 'a' goes
    ("The poster shows a 10% discount.", "poster shows 10% discount"),
    ("none", "0"),
])
def test_evalai_normalization(raw, normalized):
    assert EvalAIAnswerProcessor()(raw) == normalized


def test_textvqa_soft_score_by_hand():
    gt = ["red"] * 4 + ["dark red"] * 3 + ["blue"] * 2 + ["green"]
    evaluator = TextVQAAccuracyEvaluator()
    # count c: leaving out one of the c (c times) leaves c-1 matches, leaving out another (10-c times) leaves c.
    assert evaluator.score("Red", gt) == pytest.approx(1.0)  # 4 -> min(1, 3/3) and min(1, 4/3)
    assert evaluator.score("dark red", gt) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)  # 0.9
    assert evaluator.score("Blue.", gt) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)  # 0.6
    assert evaluator.score("green", gt) == pytest.approx((1 * 0 + 9 * 1 / 3) / 10)  # 0.3
    pred_list = [{"pred_answer": p, "gt_answers": gt} for p in ("dark red", "blue", "green", "purple")]
    assert evaluator.eval_pred_list(pred_list) == pytest.approx((0.9 + 0.6 + 0.3 + 0.0) / 4)
    with pytest.raises(ValueError, match="exactly 10"):
        evaluator.score("red", gt[:9])


def test_stvqa_exact_match_after_normalization():
    pred_list = [{"pred_answer": "Two", "gt_answers": ["2", "three"]}, {"pred_answer": "cat", "gt_answers": ["dog"]}]
    assert STVQAAccuracyEvaluator().eval_pred_list(pred_list) == 0.5


# --------------------------------------------------------------------------------------------- coverage

QUESTIONS = [{"question_id": i, "answer": "red"} for i in (1, 2, 3)]


def test_coverage_duplicate_question_id_names_file_and_id(tmp_path):
    questions = write_json(tmp_path / "test.json", QUESTIONS + [{"question_id": 2, "answer": "x"}])
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({1: "red", 2: "red", 3: "red"}))
    with pytest.raises(ValueError, match=r"test\.json: duplicate question_id 2"):
        eval_ocrvqa.main(["--question-file", questions, "--result-file", answers])


@pytest.mark.parametrize("texts, message", [
    ({1: "red", 2: "red"}, r"1 questions without an answer \(first: 3\)"),
    ({1: "red", 2: "red", 3: "red", 9: "red"}, r"1 answers to questions not in the question file \(first: 9\)"),
])
def test_coverage_missing_or_extra_answers(tmp_path, texts, message):
    questions = write_json(tmp_path / "test.json", QUESTIONS)
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for(texts))
    with pytest.raises(ValueError, match=r"merge\.jsonl does not cover .*test\.json") as error:
        eval_vizwiz.main(["--annotation-file", questions, "--result-file", answers])
    assert error.match(message)


def test_coverage_repeated_answers_and_string_ids():
    answers = answers_for({"1": "red", "2": "red", "3": "red"}) + answers_for({3: "blue"})
    with pytest.raises(ValueError, match=r"1 questions answered more than once \(first: 3\)"):
        eval_vqav2.score(QUESTIONS, answers)
    many_missing = common.Records(answers_for({1: "red"}), "m.jsonl")
    questions = [{"question_id": i, "answer": "red"} for i in range(1, 10)]
    with pytest.raises(ValueError, match=r"8 questions without an answer \(first: 2, 3, 4, 5, 6, \.\.\. \(3 more\)\)"):
        eval_ocrvqa.score(questions, many_missing)


def test_cli_exits_with_one_line_on_coverage_error(tmp_path):
    questions = write_json(tmp_path / "test.json", QUESTIONS)
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({1: "red"}))
    run = subprocess.run([sys.executable, "-m", "llava.eval.CoIN.eval_ocrvqa", "--annotation-file", questions,
                          "--result-file", answers], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.startswith("error: ") and "2 questions without an answer" in run.stderr


def test_score_file_needs_stage_and_checkpoint(tmp_path):
    with pytest.raises(SystemExit):
        eval_ocrvqa.main(["--annotation-file", "q.json", "--result-file", "a.jsonl", "--score-file", "s.json"])


# -------------------------------------------------------------------------------------------- ScienceQA

PROBLEMS = {
    "10": {"choices": ["x", "y", "z"], "answer": 0},
    "11": {"choices": ["x", "y", "z"], "answer": 1},
    "12": {"choices": ["x", "y", "z"], "answer": 2},
    "13": {"choices": ["x", "y"], "answer": 1},
    "14": {"choices": ["x", "y"], "answer": 0},
}
SQA_TEXTS = {"10": "A", "11": "B. y", "12": "The answer is C.", "13": "option b is right", "14": "no idea"}


def test_scienceqa_upstream_parsing_counts_unparsed_as_wrong():
    questions = [{"question_id": pid} for pid in PROBLEMS]
    answers = answers_for(SQA_TEXTS)
    answers[0]["prompt"] = "<image>\nq"
    result = eval_science_qa.score(questions, answers, PROBLEMS)
    assert result["accuracy"] == pytest.approx(60.0)  # A, "B. ", "The answer is C." right; 13 and 14 unparsed
    assert result["n"] == 5 and result["metric"] == "option_accuracy"
    assert result["details"]["unparsed"] == 2
    assert result["details"]["img_accuracy"] == pytest.approx(100.0)


def test_scienceqa_compat_single_character_word_and_no_guess():
    questions = [{"question_id": pid} for pid in PROBLEMS]
    result = eval_science_qa.score(questions, answers_for(SQA_TEXTS), PROBLEMS, compat=True)
    # "option b is right" -> first one-character word "b" -> B (right); "no idea" -> wrong, as in CoIN (its
    # random-option line comes after `return -1`)
    assert eval_science_qa.parse_coin_letter("option b is right") == "B"
    assert eval_science_qa.parse_coin_letter("The answer is C.") == "C"
    assert eval_science_qa.parse_coin_letter("no idea") == "FAILED"
    assert result["accuracy"] == pytest.approx(80.0) and result["details"]["unparsed"] == 1
    assert result["details"]["evaluation"]["results"]["14"] == -1


def test_scienceqa_cli_split_default_and_output_files(tmp_path):
    base = tmp_path / "ScienceQA"
    base.mkdir()
    write_json(base / "problems.json", PROBLEMS)
    write_json(base / "pid_splits.json", {"test": list(PROBLEMS), "val": []})
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for(SQA_TEXTS))
    out = tmp_path / "out"
    eval_science_qa.main(["--base-dir", str(base), "--result-file", answers, "--output-dir", str(out),
                          "--score-file", str(out / "score.json"), "--stage", "ScienceQA", "--checkpoint", "ck"])
    output_result = json.loads((out / "output_result.jsonl").read_text())
    assert output_result["acc"] == pytest.approx(60.0) and output_result["count"] == 5
    assert output_result["results"] == {"10": 0, "11": 1, "12": 2, "13": -1, "14": -1}
    assert len(json.loads((out / "output.jsonl").read_text())["incorrect"]) == 2
    assert (out / "Result.text").read_text() == "Samples: 5\nAccuracy: 60.00%\n"
    assert json.loads((out / "score.json").read_text()) == {
        "task": "ScienceQA", "stage": "ScienceQA", "metric": "option_accuracy", "accuracy": 60.0, "n": 5,
        "checkpoint": "ck"}
    # with a question file, the answers must cover it (here they cover more: an error)
    questions = write_json(tmp_path / "test.json", [{"question_id": "10"}])
    with pytest.raises(ValueError, match="4 answers to questions not in the question file"):
        eval_science_qa.main(["--base-dir", str(base), "--result-file", answers, "--question-file", questions])


def test_questions_must_be_annotated_and_jsonl_question_files(tmp_path):
    questions = common.Records([{"question_id": "10"}, {"question_id": "99"}], "test.json")
    with pytest.raises(ValueError, match=r"test\.json: 1 questions are not in ScienceQA problems\.json \(first: 99\)"):
        eval_science_qa.score(questions, answers_for({"10": "A", "99": "B"}), PROBLEMS)
    jsonl = write_jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    assert [q["question_id"] for q in common.load_questions(jsonl)] == [1, 2, 3]


def test_upstream_scienceqa_counts_missing_as_wrong(tmp_path, capsys):
    write_json(tmp_path / "problems.json", PROBLEMS)
    write_json(tmp_path / "pid_splits.json", {"test": list(PROBLEMS)})
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({k: SQA_TEXTS[k] for k in ("10", "11", "12")}))
    upstream_sqa.main(["--base-dir", str(tmp_path), "--result-file", answers,
                       "--output-result", str(tmp_path / "result.json")])
    assert "Total: 5, Correct: 3, Accuracy: 60.00%, IMG-Accuracy: n/a" in capsys.readouterr().out
    assert json.loads((tmp_path / "result.json").read_text())["correct"] == 3


# ---------------------------------------------------------------------------------------------- TextVQA

TEXTVQA_GT = ["red"] * 4 + ["dark red"] * 3 + ["blue"] * 2 + ["green"]


def test_textvqa_coin_soft_accuracy_by_question_id(tmp_path):
    annotation = {"dataset_name": "textvqa", "data": [
        {"question_id": 7, "image_id": "img7", "question": "What colour?", "answers": TEXTVQA_GT},
        {"question_id": 8, "image_id": "img8", "question": "Which word?", "answers": ["stop"] * 10}]}
    annotation_file = write_json(tmp_path / "TextVQA_0.5.1_val.json", annotation)
    questions = write_json(tmp_path / "val.json", [{"question_id": 7, "answer": "red"}, {"question_id": 8}])
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({7: "Blue", 8: "STOP."}))
    result = eval_textvqa.score(json.loads(Path(questions).read_text()), answers_for({7: "Blue", 8: "STOP."}),
                                annotation["data"])
    assert result["accuracy"] == pytest.approx(100 * (0.6 + 1.0) / 2)
    out = tmp_path / "out"
    eval_textvqa.main(["--annotation-file", annotation_file, "--result-file", answers, "--question-file", questions,
                       "--output-dir", str(out)])
    assert (out / "Result.text").read_text() == "Samples: 2\nAccuracy: 80.00%\n"
    # without --question-file the questions are the annotation's: a missing answer is an error
    short = write_jsonl(tmp_path / "short.jsonl", answers_for({7: "Blue"}))
    with pytest.raises(ValueError, match=r"1 questions without an answer \(first: 8\)"):
        eval_textvqa.main(["--annotation-file", annotation_file, "--result-file", short])


def test_upstream_textvqa_matches_by_image_and_question(tmp_path, capsys):
    annotation = {"data": [{"question_id": 1, "image_id": "imgA", "question": "What colour?", "answers": TEXTVQA_GT}]}
    annotation_file = write_json(tmp_path / "ann.json", annotation)
    result = {"question_id": "imgA", "prompt": "What colour?\nAnswer the question using a single word or phrase.",
              "text": "dark red"}
    result_dir = tmp_path / "answers"
    result_dir.mkdir()
    write_jsonl(result_dir / "model.jsonl", [result])
    upstream_textvqa.main(["--annotation-file", annotation_file, "--result-dir", str(result_dir)])
    assert "Samples: 1\nAccuracy: 90.00%" in capsys.readouterr().out
    assert upstream_textvqa.prompt_processor("OCR tokens: a b Question: Why? Short answer:") == "why?"


# --------------------------------------------------------------------------------------------- ImageNet

IMAGENET_QUESTIONS = [{"question_id": "n1", "answer": "golden retriever"}, {"question_id": "n2", "answer": "tabby cat"}]


def test_imagenet_pairs_by_id_by_default_and_by_position_in_compat():
    shuffled = answers_for({"n2": "Tabby cat.", "n1": "golden retriever dog"})
    by_id = eval_ImagetNet.score(IMAGENET_QUESTIONS, shuffled)
    assert by_id["accuracy"] == 50.0  # "Tabby cat." normalises to the label; "... dog" is not the label
    assert [w["question_id"] for w in by_id["details"]["wrong"]] == ["n1"]
    assert eval_ImagetNet.score(IMAGENET_QUESTIONS, shuffled, compat=True)["accuracy"] == 0.0  # misaligned
    in_order = answers_for({"n1": "golden retriever dog", "n2": "Tabby cat."})
    compat = eval_ImagetNet.score(IMAGENET_QUESTIONS, in_order, compat=True)
    assert compat["accuracy"] == 50.0  # label inside the answer counts; the case differs for "Tabby cat."
    assert compat["metric"] == "coin_substring_match_by_position"
    assert eval_imagenet.score is eval_ImagetNet.score


def test_imagenet_cli_result_text_lists_wrong_answers(tmp_path):
    questions = write_json(tmp_path / "test.json", IMAGENET_QUESTIONS)
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({"n1": "golden retriever", "n2": "dog"}))
    out = tmp_path / "out"
    eval_imagenet.main(["--test-file", questions, "--result-file", answers, "--output-dir", str(out)])
    text = (out / "Result.text").read_text()
    assert text.startswith("Samples: 2\nAccuracy: 50.00%\n[")
    assert json.loads(text.split("\n", 2)[2])[0]["ground_truth"] == "tabby cat"


# -------------------------------------------------------------------------------------------------- GQA

GQA_ANNOTATIONS = {
    "q1": {"answer": "yes", "isBalanced": True, "types": {"structural": "verify"}},
    "q2": {"answer": "red", "isBalanced": True, "types": {"structural": "query"}},
    "q3": {"answer": "no", "isBalanced": False, "types": {"structural": "verify"}},
}


def test_gqa_balanced_exact_match_and_compat_conversion():
    questions = [{"question_id": q} for q in GQA_ANNOTATIONS]
    answers = answers_for({"q1": "Yes.", "q2": "Red ", "q3": "no"})
    result = eval_gqa.score(questions, answers, GQA_ANNOTATIONS)
    assert (result["accuracy"], result["n"], result["details"]["skipped_unbalanced"]) == (100.0, 2, 1)
    assert (result["details"]["binary"], result["details"]["open"]) == (100.0, 100.0)
    compat = eval_gqa.score(questions, answers, GQA_ANNOTATIONS, compat=True)
    assert compat["accuracy"] == 50.0 and compat["details"]["open"] == 0.0  # "red " keeps its trailing space
    assert eval_gqa.coin_prediction(" Red.") == "red"


def test_gqa_cli_writes_predictions_and_reads_them_back(tmp_path):
    annotation_file = write_json(tmp_path / "testdev_balanced_questions.json", GQA_ANNOTATIONS)
    answers = write_jsonl(tmp_path / "merge.jsonl", answers_for({"q1": "Yes.", "q2": "blue", "q3": "no"}))
    out = tmp_path / "out"
    eval_gqa.main(["--result-file", answers, "--annotation-file", annotation_file, "--output-dir", str(out)])
    predictions = json.loads((out / "testdev_balanced_predictions.json").read_text())
    assert predictions[0] == {"questionId": "q1", "prediction": "yes"}
    assert (out / "Result.text").read_text() == "Samples: 2\nAccuracy: 50.00%\nBinary: 100.00%\nOpen: 0.00%\n"
    eval_gqa.main(["--tier", "testdev_balanced", "--path", str(out), "--annotation-file", annotation_file,
                   "--score-file", str(out / "score.json"), "--stage", "GQA", "--checkpoint", "ck"])
    assert json.loads((out / "score.json").read_text())["accuracy"] == 50.0


# ----------------------------------------------------------------------------------------- VizWiz, VQAv2

def test_vizwiz_soft_where_ten_answers_else_normalized_exact():
    ten = ["2"] * 3 + ["two"] * 1 + ["3"] * 6  # normalised: "2" x4, "3" x6
    questions = [{"question_id": 1, "answer": "2", "answers": [{"answer": a} for a in ten]},
                 {"question_id": 2, "answer": "red"}]
    answers = answers_for({1: "Two", 2: "The Red."})
    result = eval_vizwiz.score(questions, answers)
    assert result["accuracy"] == pytest.approx(100 * (1.0 + 1.0) / 2)  # "2" four times -> 1.0
    assert result["metric"] == "vqa_soft_accuracy+exact_match_normalized"
    assert (result["details"]["soft_scored"], result["details"]["exact_scored"]) == (1, 1)
    compat = eval_vizwiz.score(questions, answers, compat=True)
    assert compat["accuracy"] == 0.0  # "TWO" != "2", "THE RED." != "RED"
    assert eval_vizwiz.score(questions, answers_for({1: "red", 2: "RED"}), compat=True)["accuracy"] == 50.0


def test_vqav2_soft_score_partial_credit():
    answers_ten = ["yes"] * 2 + ["no"] * 8
    questions = [{"question_id": 5, "answer": "no", "answers": answers_ten}]
    result = eval_vqav2.score(questions, answers_for({5: "yes"}))
    assert result["accuracy"] == pytest.approx(100 * (2 * 1 / 3 + 8 * 2 / 3) / 10)
    assert result["metric"] == "vqa_soft_accuracy"
    with pytest.raises(ValueError, match="has 9 'answers'"):
        eval_vqav2.score([{"question_id": 5, "answers": answers_ten[:9]}], answers_for({5: "yes"}))


# -------------------------------------------------------------------------------------------- Grounding

def grounding_question(qid, box="[0.0, 0.0, 0.5, 0.5]"):
    return {"question_id": qid, "answer_bbox": box, "size": [640, 480]}


def test_grounding_compat_parser_drops_last_digit():
    questions = [grounding_question(1)]
    answers = answers_for({1: "[0.0, 0.0, 0.5, 0.5]"})
    assert eval_grounding.parse_box_coin("[0.0, 0.0, 0.5, 0.5]") == (0.0, 0.0, 0.5, 0.0)
    assert eval_grounding.score(questions, answers)["accuracy"] == 100.0
    assert eval_grounding.score(questions, answers, compat=True)["accuracy"] == 0.0


def test_grounding_threshold_and_unparsed():
    questions = [grounding_question(1), grounding_question(2), grounding_question(3)]
    # box 1 has IoU exactly 0.5 (half the ground truth); the trailing 0 survives CoIN's [1:-1] cut
    answers = answers_for({1: "[0.0, 0.0, 0.25, 0.50]", 2: "I cannot tell", 3: "[0.0, 0.0, 0.5, 0.5]."})
    result = eval_grounding.score(questions, answers)
    assert (result["accuracy"], result["details"]["unparsed"]) == (pytest.approx(200 / 3), 1)
    compat = eval_grounding.score(questions, answers, compat=True)
    # box 1: IoU 0.5 is not > 0.5; box 3: the trailing "." is what CoIN's [1:-1] cut removes, so it is right
    assert (compat["accuracy"], compat["details"]["unparsed"]) == (pytest.approx(100 / 3), 1)
    assert eval_grounding.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert eval_grounding.box_iou((1, 1, 0, 0), (0, 0, 1, 1)) == 0.0


# ---------------------------------------------------------------------------------------------- OCR-VQA

def test_ocrvqa_unanswerable_counted_wrong_only_in_compat(tmp_path):
    questions = [{"question_id": 1, "answer": "Unanswerable"}, {"question_id": 2, "answer": "The Great Gatsby"}]
    answers = answers_for({1: "Unanswerable", 2: "the great gatsby"})
    assert eval_ocrvqa.score(questions, answers)["accuracy"] == 100.0
    compat = eval_ocrvqa.score(questions, answers, compat=True)
    assert compat["accuracy"] == 50.0 and compat["details"]["unanswerable"] == 1
    question_file = write_json(tmp_path / "test.json", questions)
    answer_file = write_jsonl(tmp_path / "merge.jsonl", answers)
    out = tmp_path / "out"
    eval_ocrvqa.main(["--annotation-file", question_file, "--result-file", answer_file, "--compat",
                      "--output-dir", str(out), "--score-file", str(out / "score.json"), "--stage", "OCRVQA",
                      "--checkpoint", "ck", "--task", "OCR-VQA"])
    assert (out / "Result.text").read_text() == "Samples: 2\nAccuracy: 50.00%\n"
    score = json.loads((out / "score.json").read_text())
    assert (score["task"], score["metric"], score["n"]) == ("OCR-VQA", "coin_lower_exact_match", 2)
