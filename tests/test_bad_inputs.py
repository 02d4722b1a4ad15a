"""Bad input gets a clear error naming the file, the record and the fix, and damages nothing already written:
each case runs train.py (or an eval script) the way a user would, next to a finished task's output directory, and
checks the message and that every file already there is byte-for-byte unchanged."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import PYTHON, run, train_args


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tiny, colour_data, tmp_path_factory):
    """A finished LoRA task (the previous task of a chain) and its files' hashes."""
    out = tmp_path_factory.mktemp("prev") / "task1"
    run([PYTHON, "-m", "llava.train.train", *train_args(tiny, colour_data, out, "--max_steps", "2")])
    return out


def error_line(proc) -> str:
    """The command's final `error: ...` line (after any traceback and progress bars)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert lines, proc.stderr[-3000:]
    return lines[-1]


def records(data: Path) -> list[dict]:
    return json.loads((data / "train.json").read_text())


def set_records(data: Path, recs: list[dict]) -> None:
    (data / "train.json").write_text(json.dumps(recs))


def edit_record(index: int, **changes):
    def apply(data, extra):
        recs = records(data)
        recs[index].update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del recs[index][key]
        set_records(data, recs)
    return apply


def edit_turn(index: int, turn: int, **changes):
    def apply(data, extra):
        recs = records(data)
        recs[index]["conversations"][turn].update(changes)
        set_records(data, recs)
    return apply


def truncate_image(data, extra):
    """Image bytes are decoded when a batch needs them: train a whole epoch so record 3 is reached."""
    path = data / records(data)[3]["image"]
    path.write_bytes(path.read_bytes()[:40])
    extra["args"].remove("--max_steps")
    extra["args"].remove("2")


def json_syntax_error(data, extra):
    (data / "train.json").write_text('[\n  {"id": 1,\n   "conversations": [}\n]')


def empty_dataset(data, extra):
    set_records(data, [])


def previous_task(mutate):
    def apply(data, extra, finished=None):
        prev = data.parent / "prev"
        shutil.copytree(extra["finished"], prev)
        mutate(prev)
        extra["args"] += ["--previous_task_model_path", str(prev)]
    return apply


def drop_non_lora(prev):
    (prev / "non_lora_trainables.bin").unlink()


def wrong_shape(prev):
    import torch

    state = torch.load(prev / "non_lora_trainables.bin")
    state["base_model.model.model.mm_projector.2.weight"] = torch.zeros(5, 5)
    torch.save(state, prev / "non_lora_trainables.bin")


def other_rank(prev):
    config = json.loads((prev / "adapter_config.json").read_text())
    config["r"] = 4
    (prev / "adapter_config.json").write_text(json.dumps(config))


def bad_deepspeed_config(data, extra):
    path = data / "ds.json"
    path.write_text('{"zero_optimization": {"stage": 2,}}')
    extra["args"] += ["--deepspeed", str(path)]


def long_prefix(data, extra):
    """The image sits in the second human turn, after a long first exchange (upstream moves <image> to the start
    of its own turn, not of the conversation)."""
    recs = records(data)
    recs[2]["conversations"] = [{"from": "human", "value": "word " * 400}, {"from": "gpt", "value": "ok"},
                                {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": "red"}]
    set_records(data, recs)
    extra["args"] += ["--model_max_length", "400"]


TRAIN_CASES = [
    # name, setup, expected fragments of the message (the file is checked separately where it is named)
    ("missing image", edit_record(2, image="img/missing.png"), ["train.json: record 2 (id=r2)", "image file missing",
                                                                "Check --image_folder"]),
    ("truncated image bytes", truncate_image, ["record 3 (id=r3)", "cannot read image", "Replace the file"]),
    ("json syntax error", json_syntax_error, ["train.json: invalid JSON at line 3, column 22"]),
    ("no conversations", edit_record(1, conversations=None), ["record 1 (id=r1)", "no `conversations` list"]),
    ("roles out of order", edit_turn(1, 1, **{"from": "human"}), ["record 1 (id=r1)", "roles out of order",
                                                                  "must alternate"]),
    ("image token without image", edit_record(4, image=None), ["record 4 (id=r4)", "<image> token but no `image` field"]),
    ("image without image token", edit_turn(5, 0, value="What colour is it?"),
     ["record 5 (id=r5)", "`image` field but no <image> token", "Add \"<image>\\n\""]),
    ("two image tokens", edit_turn(6, 0, value="<image>\n<image>\nWhat colour?"), ["record 6 (id=r6)", "2 <image> tokens"]),
    ("image tokens cut by model_max_length", long_prefix, ["record 2 (id=r2)", "image tokens would be cut by "
                                                          "--model_max_length 400", "Raise --model_max_length"]),
    ("empty dataset", empty_dataset, ["train.json: empty dataset"]),
    ("previous task missing files", previous_task(drop_non_lora), ["missing ['non_lora_trainables.bin']"]),
    ("previous task wrong shapes", previous_task(wrong_shape), ["non_lora_trainables.bin: tensor model.multi_modal_projector.linear_2.weight has shape (5, 5), the model expects (64, 64)"]),
    ("previous task other LoRA rank", previous_task(other_rank), ["trained with LoRA rank 4, this run uses --lora_r 8"]),
    ("invalid DeepSpeed config", bad_deepspeed_config, ["ds.json: invalid JSON at line 1, column 35"]),
]


@pytest.mark.parametrize("name,setup,fragments", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_bad_training_input(tmp_path, tiny, colour_data, finished, name, setup, fragments):
    """train.py's main() in this process (the message is what the command prints after `error: `)."""
    from llava.train.train import main

    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    out = tmp_path / "out"
    shutil.copytree(finished, out)  # an earlier run's results in the output dir: they must survive
    before = snapshot(out)
    extra = {"args": ["--max_steps", "2"], "finished": finished}
    setup(data, extra)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        main(train_args(tiny, data, out, *extra["args"]))
    for fragment in fragments:
        assert fragment in str(err.value), f"{fragment!r} not in {str(err.value)!r}"
    assert {k: v for k, v in snapshot(out).items() if k in before} == before


def test_the_command_ends_with_one_error_line(tmp_path, tiny, colour_data):
    data = tmp_path / "data"
    shutil.copytree(colour_data, data)
    edit_record(2, image="img/missing.png")(data, {})
    proc = run([PYTHON, "-m", "llava.train.train", *train_args(tiny, data, tmp_path / "out")], check=False)
    assert proc.returncode == 1
    assert proc.stderr.rstrip().splitlines()[-1] == (
        f"error: {data / 'train.json'}: record 2 (id=r2): image file missing: {data / 'img/missing.png'}. "
        "Check --image_folder and the record's `image` path")


def test_nan_loss_stops_with_step_and_records(tmp_path, tiny, colour_data):
    out = tmp_path / "out"
    proc = run([PYTHON, "tests/inject_nan.py", *train_args(tiny, colour_data, out, "--max_steps", "4")],
               check=False, NAN_AT_CALL=3)
    assert proc.returncode != 0
    message = error_line(proc)
    assert "non-finite loss (nan) at optimizer step 3; batch records: [" in message and "train.json record " in message
    assert "--nan_policy skip" in message


@pytest.mark.parametrize("deepspeed", [False, True], ids=["torch", "zero2"])
def test_nan_loss_skip_policy_skips_the_step_and_merges_nothing(tmp_path, tiny, colour_data, deepspeed):
    out = tmp_path / "out"
    extra = ["--max_steps", "5", "--nan_policy", "skip", "--llaca", "True", "--llaca_log_steps", "1"]
    if deepspeed:
        extra += ["--deepspeed", "scripts/zero2.json"]
    run([PYTHON, "tests/inject_nan.py", *train_args(tiny, colour_data, out, *extra)], NAN_AT_CALL=3)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert max(entry.get("nan_skipped_steps", 0) for entry in history) == 1
    log = [json.loads(line) for line in (out / "llaca_log.jsonl").read_text().splitlines()]
    assert log[-1]["summary"]["steps"] == 4  # five optimizer steps, one skipped: four merges
    assert all(t["applied"] is None or t["applied"] == t["applied"] for t in log[-1]["tensors"])


EVAL_CASES = [
    ("duplicate question_id", lambda qs: qs + [qs[0]], "duplicate question_id"),
    ("missing question_id", lambda qs: [{k: v for k, v in q.items() if k != "question_id"} if i == 1 else q
                                         for i, q in enumerate(qs)], "record 1 has no question_id"),
]


@pytest.mark.parametrize("name,mutate,fragment", EVAL_CASES, ids=[c[0] for c in EVAL_CASES])
def test_bad_question_file(tmp_path, tiny, colour_data, finished, name, mutate, fragment):
    questions = tmp_path / "test.json"
    questions.write_text(json.dumps(mutate(json.loads((colour_data / "test.json").read_text()))))
    answers = tmp_path / "answers.jsonl"
    answers.write_text("keep me\n")
    proc = run([PYTHON, "-m", "llava.eval.CoIN.model_vqa_cc_instruction", "--model-path", str(finished),
                "--model-base", str(tiny / "lm"), "--question-file", str(questions), "--image-folder", str(colour_data),
                "--answers-file", str(answers), "--temperature", "0"], check=False)
    assert proc.returncode != 0
    message = error_line(proc)
    assert str(questions) in message and fragment in message
    assert answers.read_text() == "keep me\n"


def test_answers_that_do_not_cover_the_questions(tmp_path, colour_data):
    questions = json.loads((colour_data / "test.json").read_text())
    answers = tmp_path / "merge.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": q["answer"]}) + "\n"
                               for q in questions[:-2]))
    score = tmp_path / "score.json"
    proc = run([PYTHON, "-m", "llava.eval.CoIN.eval_vqav2", "--annotation-file", str(colour_data / "test.json"),
                "--result-file", str(answers), "--score-file", str(score), "--stage", "s", "--checkpoint", "c"],
               check=False)
    assert proc.returncode != 0 and "2" in proc.stderr and str(questions[-1]["question_id"]) in proc.stderr
    assert not score.exists()
