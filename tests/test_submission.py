"""Upstream LLaVA's converters (scripts/v1_5/eval/gqa.sh, vizwiz.sh, vqav2.sh call them with these flags) turn an
answers file into what GQA's eval.py and the VizWiz / VQAv2 servers read; bad input stops with one line naming the
file and the record."""
import json

from conftest import PYTHON, run

INSTRUCTION = "Answer the question using a single word or phrase."


def write_jsonl(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def answer(question_id, text):
    """A line of model_vqa_loader's answers file."""
    return {"question_id": question_id, "prompt": "q\n" + INSTRUCTION, "text": text, "answer_id": "a1b2",
            "model_id": "llava-v1.5-13b", "metadata": {}}


def question(question_id, image, text):
    return {"question_id": question_id, "image": image, "text": f"{text}\n{INSTRUCTION}", "category": "default"}


def convert(script, *args, check=True):
    return run([PYTHON, f"scripts/{script}.py", *map(str, args)], check=check, timeout=60)


def refused(script, *args) -> str:
    proc = convert(script, *args, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    return proc.stderr.strip()


# ------------------------------------------------------------------------------------------------------- GQA

GQA_QUESTIONS = [question("20968075", "n161313.jpg", "Is the sky dark?"),
                 question("201307251", "n235859.jpg", "What is on the table?")]


def test_gqa_predictions_lower_case_without_trailing_periods(tmp_path):
    src = write_jsonl(tmp_path / "merge.jsonl", [answer("20968075", "Yes."), answer("201307251", "A Laptop..")])
    dst = tmp_path / "data" / "testdev_balanced_predictions.json"
    proc = convert("convert_gqa_for_eval", "--src", src, "--dst", dst)
    assert dst.read_text() == json.dumps([{"questionId": "20968075", "prediction": "yes"},
                                          {"questionId": "201307251", "prediction": "a laptop"}])
    assert proc.stdout.strip() == f"{dst}: 2 predictions"


def test_gqa_bad_answers(tmp_path):
    no_text = write_jsonl(tmp_path / "no_text.jsonl", [answer("20968075", "Yes"), {"question_id": "201307251"}])
    assert refused("convert_gqa_for_eval", "--src", no_text, "--dst", tmp_path / "p.json") == \
        f"error: {no_text}: record 1 (question 201307251) has no 'text'"
    twice = write_jsonl(tmp_path / "twice.jsonl", [answer("20968075", "Yes"), answer("20968075", "No")])
    assert "1 questions answered more than once (first: ['20968075'])" in \
        refused("convert_gqa_for_eval", "--src", twice, "--dst", tmp_path / "p.json")
    questions = write_jsonl(tmp_path / "llava_gqa_testdev_balanced.jsonl", GQA_QUESTIONS)
    partial = write_jsonl(tmp_path / "partial.jsonl", [answer("20968075", "Yes")])
    assert "1 questions without an answer (first: 201307251)" in refused(
        "convert_gqa_for_eval", "--src", partial, "--dst", tmp_path / "p.json", "--question-file", questions)
    assert "No such file or directory" in refused("convert_gqa_for_eval", "--src", tmp_path / "none.jsonl",
                                                  "--dst", tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


# ---------------------------------------------------------------------------------------------------- VizWiz

def test_vizwiz_upload_in_question_order_with_evalai_normalisation(tmp_path):
    questions = write_jsonl(tmp_path / "llava_test.jsonl", [
        question(0, "VizWiz_test_00000000.jpg", "What is this?"),
        question(1, "VizWiz_test_00000001.jpg", "How many dogs?")])
    answers = write_jsonl(tmp_path / "answers" / "llava-v1.5-13b.jsonl",
                          [answer(1, "Two dogs."), answer(0, "Unanswerable")])
    upload = tmp_path / "answers_upload" / "llava-v1.5-13b.json"
    convert("convert_vizwiz_for_submission", "--annotation-file", questions, "--result-file", answers,
            "--result-upload-file", upload)
    assert json.loads(upload.read_text()) == [{"image": "VizWiz_test_00000000.jpg", "answer": "unanswerable"},
                                              {"image": "VizWiz_test_00000001.jpg", "answer": "2 dogs"}]


def test_vizwiz_answers_must_cover_the_questions(tmp_path):
    questions = write_jsonl(tmp_path / "llava_test.jsonl", [question(0, "a.jpg", "Q"), question(1, "b.jpg", "Q")])
    answers = write_jsonl(tmp_path / "answers.jsonl", [answer(0, "yes"), answer(7, "no")])
    message = refused("convert_vizwiz_for_submission", "--annotation-file", questions, "--result-file", answers,
                      "--result-upload-file", tmp_path / "upload.json")
    assert message.startswith(f"error: {answers} does not cover {questions} one to one: 1 questions without an "
                              "answer (first: 1); 1 answers to questions not in the question file (first: 7)")
    no_image = write_jsonl(tmp_path / "no_image.jsonl", [{"question_id": 0, "text": "Q"}])
    assert refused("convert_vizwiz_for_submission", "--annotation-file", no_image, "--result-file",
                   write_jsonl(tmp_path / "one.jsonl", [answer(0, "yes")]), "--result-upload-file",
                   tmp_path / "upload.json") == f"error: {no_image}: question 0 has no 'image'"


# ----------------------------------------------------------------------------------------------------- VQAv2

SPLIT = "llava_vqav2_mscoco_test-dev2015"


def vqav2_dir(tmp_path, answers):
    """upstream's playground/data/eval/vqav2 layout: test2015 questions, the test-dev split, the merged answers."""
    root = tmp_path / "vqav2"
    test = [question(262144000 + i, f"COCO_test2015_{i:012d}.jpg", "What colour is it?") for i in range(4)]
    write_jsonl(root / "llava_vqav2_mscoco_test2015.jsonl", test)
    write_jsonl(root / f"{SPLIT}.jsonl", [test[1], test[3]])
    write_jsonl(root / "answers" / SPLIT / "llava-v1.5-13b" / "merge.jsonl", answers)
    return root


def test_vqav2_upload_covers_test2015_blank_outside_the_split(tmp_path):
    root = vqav2_dir(tmp_path, [answer(262144001, "Red."), answer(262144003, "Two")])
    proc = convert("convert_vqav2_for_submission", "--dir", root, "--split", SPLIT, "--ckpt", "llava-v1.5-13b")
    upload = root / "answers_upload" / SPLIT / "llava-v1.5-13b.json"
    assert json.loads(upload.read_text()) == [
        {"question_id": 262144000, "answer": ""}, {"question_id": 262144001, "answer": "red"},
        {"question_id": 262144002, "answer": ""}, {"question_id": 262144003, "answer": "2"}]
    assert "2 answered, 2 left blank" in proc.stdout


def test_vqav2_bad_input(tmp_path):
    root = vqav2_dir(tmp_path, [answer(262144001, "Red.")])
    merge = root / "answers" / SPLIT / "llava-v1.5-13b" / "merge.jsonl"
    assert "1 questions without an answer (first: 262144003)" in refused(
        "convert_vqav2_for_submission", "--dir", root, "--split", SPLIT, "--ckpt", "llava-v1.5-13b")
    merge.write_text(json.dumps(answer(262144001, "Red.")) + "\n{not json\n")
    assert refused("convert_vqav2_for_submission", "--dir", root, "--split", SPLIT, "--ckpt", "llava-v1.5-13b") == \
        f"error: {merge}: invalid JSON on line 2, column 2: Expecting property name enclosed in double quotes"
    assert f"{root / 'answers' / SPLIT / 'other' / 'merge.jsonl'}" in refused(
        "convert_vqav2_for_submission", "--dir", root, "--split", SPLIT, "--ckpt", "other")
    assert not (root / "answers_upload").exists()
