"""End to end, as a user runs it: train with upstream flags (DeepSpeed ZeRO-2, two processes), save in upstream's
layout, load, answer a CoIN question file with a CoIN inference script, score it; merge the LoRA and get the same
answers from the merged model."""
import json

import pytest

from conftest import PYTHON, run, train_args, write_colour_data


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = write_colour_data(root / "data", n_train=48)
    out = root / "llava-tiny-lora"
    args = train_args(tiny, data, out, "--num_train_epochs", "8", "--learning_rate", "5e-3", "--mm_projector_lr",
                      "5e-3", "--deepspeed", "scripts/zero2.json", "--per_device_train_batch_size", "2")
    proc = run(["deepspeed", "--num_gpus", "2", "--master_port", str(free_port()), "llava/train/train_mem.py", *args])
    return root, data, out, proc


def free_port():
    from llava.train.dist import free_port as port

    return port()


def answer(model_path, data, answers, *extra):
    run([PYTHON, "-m", "llava.eval.CoIN.model_vqa_cc_instruction", "--model-path", str(model_path),
         "--question-file", str(data / "test.json"), "--image-folder", str(data), "--answers-file", str(answers),
         "--temperature", "0", "--conv-mode", "vicuna_v1", *extra])
    return [json.loads(line) for line in answers.read_text().splitlines()]


def test_zero2_two_process_train_save_load_answer_score(trained, tiny):
    root, data, out, proc = trained
    assert {"adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json",
            "trainer_state.json"} <= {p.name for p in out.iterdir()}
    lines = answer(out, data, root / "answers.jsonl", "--model-base", str(tiny / "lm"), "--batch-size", "4")
    questions = json.loads((data / "test.json").read_text())
    assert [line["question_id"] for line in lines] == [q["question_id"] for q in questions]
    assert set(lines[0]) == {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
    score_file = root / "score.json"
    run([PYTHON, "-m", "llava.eval.CoIN.eval_vqav2", "--annotation-file", str(data / "test.json"), "--result-file",
         str(root / "answers.jsonl"), "--score-file", str(score_file), "--stage", "colour", "--checkpoint", str(out)])
    score = json.loads(score_file.read_text())
    assert score["n"] == len(questions) and score["accuracy"] >= 75.0, score  # chance is 33 %


def test_batched_generation_equals_one_by_one(trained, tiny):
    root, data, out, _ = trained
    one = answer(out, data, root / "a1.jsonl", "--model-base", str(tiny / "lm"))
    many = answer(out, data, root / "a8.jsonl", "--model-base", str(tiny / "lm"), "--batch-size", "8")
    assert [x["text"] for x in one] == [x["text"] for x in many]


def test_merged_model_gives_the_same_answers(trained, tiny):
    root, data, out, _ = trained
    merged = root / "merged"
    run([PYTHON, "scripts/merge_lora_weights.py", "--model-path", str(out), "--model-base", str(tiny / "lm"),
         "--save-model-path", str(merged)])
    lora = answer(out, data, root / "lora.jsonl", "--model-base", str(tiny / "lm"), "--batch-size", "4")
    full = answer(merged, data, root / "full.jsonl", "--batch-size", "4")
    assert [x["text"] for x in lora] == [x["text"] for x in full]


def test_chunks_cover_the_question_file_in_order(trained, tiny):
    root, data, out, _ = trained
    parts = [answer(out, data, root / f"2_{i}.jsonl", "--model-base", str(tiny / "lm"), "--num-chunks", "2",
                    "--chunk-idx", str(i), "--batch-size", "4") for i in range(2)]
    ids = [x["question_id"] for part in parts for x in part]
    assert ids == [q["question_id"] for q in json.loads((data / "test.json").read_text())]
