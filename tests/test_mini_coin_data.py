"""The synthetic mini-CoIN generator writes the CoIN formats of docs/coin_formats.md, deterministically."""
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from llava.coin import tasks as coin_tasks
from llaca_plugin.grouping import extract_instructions
from playground.make_mini_coin import FORMAT_VERSION
from playground.mini_coin import tasks, vocabulary
from playground.mini_coin.drawing import Painter
from playground.mini_coin.generate import generate
from playground.mini_coin.scene import sample_row_pair

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(train_per_task=20, test_per_task=10, pretrain_size=50)
EVAL_FILES = {task.name: task.question_splits for task in coin_tasks.TASKS}
TASK_LINES = (tasks.SQA_INSTRUCTION, tasks.SHORT_ANSWER, tasks.VIZWIZ_UNANSWERABLE, tasks.GROUNDING_INSTRUCTION,
              tasks.IMAGENET_QUESTION)
BOX = re.compile(r"^\[(\d\.\d\d), (\d\.\d\d), (\d\.\d\d), (\d\.\d\d)\]$")


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini_coin")
    generate(root, seed=0, **SMALL)
    return root


def open_image(data: Path, relpath: str) -> Image.Image:
    with Image.open(data / "cl_dataset" / relpath) as image:
        image.load()
        return image


def test_train_files_are_llava_conversations(data):
    for task in coin_tasks.names():
        records = load(data / "Instructions" / task / "train.json")
        assert len(records) == SMALL["train_per_task"]
        for record in records:
            assert set(record) == {"id", "image", "conversations"}
            human, gpt = record["conversations"]
            assert human["from"] == "human" and gpt["from"] == "gpt"
            assert human["value"].startswith("<image>\n") and human["value"].count("<image>") == 1
            assert gpt["value"] and gpt["value"] == gpt["value"].strip()
            assert open_image(data, record["image"]).size == (96, 96)


def test_eval_files_hold_question_text_and_ground_truth(data):
    for task, splits in EVAL_FILES.items():
        for split in splits:
            records = load(data / "Instructions" / task / f"{split}.json")
            assert len(records) == SMALL["test_per_task"]
            for record in records:
                assert {"question_id", "image", "text"} <= set(record)
                assert "<image>" not in record["text"]
                last_line = record["text"].split("\n")[-1]
                if task == "Grounding":
                    assert last_line.startswith(tasks.GROUNDING_INSTRUCTION + ": ")
                    assert record["size"] == [96, 96]
                    x1, y1, x2, y2 = map(float, BOX.match(record["answer_bbox"]).groups())
                    assert 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1
                else:
                    assert last_line == tasks.INSTRUCTION_LINES[task][-1]
                    assert record["answer"]
                if task in ("VizWiz", "VQAv2"):
                    assert len(record["answers"]) == 10 and record["answer"] in record["answers"]
                open_image(data, record["image"])


def test_answer_formats_follow_the_real_tasks(data):
    def answers(task):
        return [r["conversations"][1]["value"] for r in load(data / "Instructions" / task / "train.json")]

    assert set(answers("ScienceQA")) <= set("ABCD")
    assert set(answers("TextVQA")) <= set(vocabulary.SIGN_WORDS)
    assert set(answers("ImageNet")) <= set(vocabulary.OBJECTS)
    assert all(BOX.match(answer) for answer in answers("Grounding"))
    assert all(answer == answer.lower() for answer in answers("GQA") + answers("VizWiz") + answers("VQAv2"))
    ocr = set(vocabulary.BOOK_AUTHORS) | {t.title() for t in vocabulary.BOOK_TITLES} | set(vocabulary.BOOK_GENRES.values()) | {"Yes", "No"}
    assert set(answers("OCRVQA")) <= ocr
    vizwiz_eval = [r["answer"] for r in load(data / "Instructions" / "VizWiz" / "val.json")]
    assert "unanswerable" in answers("VizWiz") + vizwiz_eval


def test_ids_unique_and_train_eval_images_disjoint(data):
    every_image = Counter()
    for task, splits in EVAL_FILES.items():
        train = load(data / "Instructions" / task / "train.json")
        ids = [r["id"] for r in train]
        every_image.update(r["image"] for r in train)
        for split in splits:
            records = load(data / "Instructions" / task / f"{split}.json")
            ids += [r["question_id"] for r in records]
            every_image.update(r["image"] for r in records)
        assert len(ids) == len(set(map(str, ids))), task
    assert max(every_image.values()) == 1


def test_scienceqa_annotations_match_questions(data):
    problems = load(data / "cl_dataset" / "ScienceQA" / "problems.json")
    splits = load(data / "cl_dataset" / "ScienceQA" / "pid_splits.json")
    test = load(data / "Instructions" / "ScienceQA" / "test.json")
    train = load(data / "Instructions" / "ScienceQA" / "train.json")
    assert splits["test"] == [r["question_id"] for r in test] and splits["train"] == [r["id"] for r in train]
    for record in test:
        problem = problems[record["question_id"]]
        assert problem["split"] == "test" and problem["image"] == Path(record["image"]).name
        assert "ABCDE"[problem["answer"]] == record["answer"]
        for index, choice in enumerate(problem["choices"]):
            assert f"\n{'ABCDE'[index]}. {choice}\n" in record["text"]
        assert record["text"].startswith(problem["question"] + "\nContext: " + problem["hint"])


def test_textvqa_and_gqa_annotations_match_questions(data):
    textvqa = load(data / "cl_dataset" / "TextVQA" / "TextVQA_0.5.1_val.json")
    val = load(data / "Instructions" / "TextVQA" / "val.json")
    assert textvqa["dataset_type"] == "val" and len(textvqa["data"]) == len(val)
    for entry, record in zip(textvqa["data"], val):
        assert entry["question_id"] == record["question_id"] and isinstance(entry["question_id"], int)
        assert entry["image_id"] == Path(record["image"]).stem
        assert record["text"] == f"{entry['question']}\n{tasks.SHORT_ANSWER}"
        assert len(entry["answers"]) == 10 and entry["answers"].count(record["answer"]) >= 8
    gqa = load(data / "cl_dataset" / "GQA" / "testdev_balanced_questions.json")
    test = load(data / "Instructions" / "GQA" / "test.json")
    assert list(gqa) == [r["question_id"] for r in test]
    for record in test:
        question = gqa[record["question_id"]]
        assert question["answer"] == record["answer"] and question["isBalanced"]
        assert question["imageId"] == Path(record["image"]).stem
        assert record["text"].startswith(question["question"] + "\n")
        assert {"structural", "semantic", "detailed"} <= set(question["types"]) and question["semantic"]


def test_gqa_scenes_are_two_objects_side_by_side_named_by_colour_and_shape():
    """Each GQA question is answerable from the picture: the named objects are there (except in a "no" existence
    question, whose colour is not), and left/right answers follow the objects' columns."""
    painter, rng = Painter(96, 3), random.Random(3)
    kinds = set()
    for _ in range(200):
        left, right = sample_row_pair(random.Random(rng.random()), 3)
        maker = rng.choice(list(tasks.GQA_QUESTIONS))
        question, answer, full, types = maker(rng, left, right)
        kinds.add(types[2])
        names = {f"{o.colour} {o.shape}": o for o in (left, right)}
        if types[2] == "relS":
            named = next(o for name, o in names.items() if f"of the {name}?" in question)
            other = right if named is left else left
            assert answer == other.colour and (("left" in question) == (other is left))
        elif types[2] == "positionChoose":
            subject = next(o for name, o in names.items() if question.startswith(f"Is the {name} "))
            assert answer == ("left" if subject is left else "right")
        elif types[2] == "shapeQuery":
            assert answer == next(o.shape for o in (left, right) if f"the {o.colour} object" in question)
        else:
            present = any(f" {name}?" in question for name in names)
            assert answer == ("yes" if present else "no")
            assert present or not any(f" {o.colour} " in question for o in (left, right))
        assert answer in full.lower()
    assert kinds == {"relS", "positionChoose", "shapeQuery", "existAttrC"}
    example = tasks.make_gqa(random.Random(0), painter)
    assert example.prompt == f"{example.question}\n{tasks.SHORT_ANSWER}" and example.image.size == (96, 96)


def test_multitask_is_the_shuffled_union(data):
    union = [r for task in coin_tasks.names() for r in load(data / "Instructions" / task / "train.json")]
    multitask = load(data / "Instructions" / "Multitask" / "train.json")
    key = lambda record: json.dumps(record, sort_keys=True)  # noqa: E731
    assert sorted(map(key, multitask)) == sorted(map(key, union)) and multitask != union


def test_pretrain_is_generic_and_disjoint_from_tasks(data):
    records = load(data / "Pretrain" / "pretrain.json")
    assert len(records) == SMALL["pretrain_size"]
    task_images = {r["image"] for task, splits in EVAL_FILES.items() for split in ("train", *splits)
                   for r in load(data / "Instructions" / task / f"{split}.json")}
    for record in records:
        human, gpt = record["conversations"]
        assert record["image"].startswith("Pretrain/") and record["image"] not in task_images
        assert human["value"].startswith("<image>\n")
        assert not any(line in human["value"] for line in TASK_LINES)
        assert gpt["value"].endswith(".") and not BOX.match(gpt["value"]) and len(gpt["value"]) > 3
        open_image(data, record["image"])


def test_meta_records_args_and_counts(data):
    meta = load(data / "mini_coin_meta.json")
    assert meta["args"]["seed"] == 0 and meta["args"]["train_per_task"] == 20
    assert meta["counts"]["VQAv2"] == {"train": 20, "val": 10, "test": 10}
    assert meta["counts"]["Multitask"]["train"] == 160 and "output_dir" not in meta["args"]


def test_same_seed_same_bytes_other_seed_differs(data, tmp_path):
    generate(tmp_path / "again", seed=0, **SMALL)
    generate(tmp_path / "other", seed=1, **SMALL)
    assert tree_digest(tmp_path / "again") == tree_digest(data)
    assert tree_digest(tmp_path / "other") != tree_digest(data)


def test_cli_task_subset_reproduces_those_tasks(data, tmp_path):
    out = tmp_path / "subset"
    command = [sys.executable, "playground/make_mini_coin.py", "--output_dir", str(out), "--seed", "0",
               "--train_per_task", "20", "--test_per_task", "10", "--pretrain_size", "5",
               "--tasks", "VizWiz", "ScienceQA"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["VizWiz"] == {"train": 20, "val": 10, "test": 10}
    assert sorted(p.name for p in (out / "Instructions").iterdir()) == ["Multitask", "ScienceQA", "VizWiz"]
    for task, split in (("VizWiz", "val"), ("ScienceQA", "train")):
        relative = Path("Instructions") / task / f"{split}.json"
        assert (out / relative).read_bytes() == (data / relative).read_bytes()
    assert not (out / "cl_dataset" / "GQA").exists()


def test_the_tasks_and_their_files_are_the_registrys(data):
    """Every CoIN task of llava/coin/tasks.py has a maker and instruction lines, and the generator writes each
    one's training file and the question files the registry names, nothing else."""
    assert list(tasks.TASK_MAKERS) == list(tasks.INSTRUCTION_LINES) == coin_tasks.names()
    for task in coin_tasks.TASKS:
        written = sorted(p.stem for p in (data / "Instructions" / task.name).iterdir())
        assert written == sorted(("train", *task.question_splits)) and task.eval_split in written


def test_the_benchmarks_default_tasks_are_the_registrys():
    shown = subprocess.run(["bash", "-c", 'unset MINI_TASKS; source scripts/mini/settings.sh; echo "$MINI_TASKS"'],
                           cwd=REPO, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHON": sys.executable})
    assert shown.stdout.split() == coin_tasks.names()


def test_rejects_unknown_task(tmp_path):
    with pytest.raises(ValueError, match="tasks"):
        generate(tmp_path, seed=0, tasks=("COCO",))


def test_cli_train_counts_give_one_task_more_records_and_keep_the_first_ones(data, tmp_path):
    out = tmp_path / "more_gqa"
    command = [sys.executable, "playground/make_mini_coin.py", "--output_dir", str(out), "--seed", "0",
               "--train_per_task", "20", "--test_per_task", "10", "--pretrain_size", "0",
               "--tasks", "GQA", "VizWiz", "--train_counts", "GQA=30"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    counts = json.loads(result.stdout)
    assert counts["GQA"]["train"] == 30 and counts["VizWiz"]["train"] == 20 and counts["Multitask"]["train"] == 50
    more = load(out / "Instructions" / "GQA" / "train.json")
    assert more[:20] == load(data / "Instructions" / "GQA" / "train.json")  # the same stream, drawn further
    assert load(out / "mini_coin_meta.json")["args"]["train_counts"] == {"GQA": 30}
    bad = subprocess.run(command[:-1] + ["GQA=many"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "TASK=N" in bad.stderr
    with pytest.raises(ValueError, match="train_counts: COCO=5"):
        generate(tmp_path / "x", seed=0, train_counts={"COCO": 5})


# The bytes the generator writes for seed 0 with SMALL and GQA=30, at FORMAT_VERSION 1. Cached data, bases and
# benchmark runs are keyed by the arguments and FORMAT_VERSION, not by the generator's text: a change to the
# output must bump FORMAT_VERSION (and this digest), or old runs would be reused for new data.
FORMAT_DIGESTS = {1: "d80c63bb2a51f653183257c00b9ad6e4d79d8bbfa1e5c0687df57e1de3d16a1f"}


def test_output_is_pinned_to_the_format_version(tmp_path):
    generate(tmp_path, seed=0, **SMALL, train_counts={"GQA": 30})
    assert tree_digest(tmp_path) == FORMAT_DIGESTS.get(FORMAT_VERSION), (
        "the generator's output changed: bump FORMAT_VERSION in playground/make_mini_coin.py and pin the new digest")


def test_shared_skills_put_a_source_tasks_questions_into_a_tasks_training_set(tmp_path):
    """--shared VQAv2=TextVQA:0.3: about 30 % of VQAv2's training records read a sign, asked with VQAv2's instruction
    line; VQAv2's test file and the other tasks stay as without the option."""
    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    counts = dict(train_per_task=200, test_per_task=10, pretrain_size=10, tasks=("TextVQA", "VQAv2"))
    generate(plain, seed=0, **counts)
    meta = generate(mixed, seed=0, shared={"VQAv2": {"TextVQA": 0.3}}, **counts)
    assert meta["args"]["shared"] == {"VQAv2": {"TextVQA": 0.3}}
    train = load(mixed / "Instructions" / "VQAv2" / "train.json")
    signs = [r for r in train if r["conversations"][0]["value"].split("\n")[1] in tasks.TEXTVQA_QUESTIONS]
    assert 0.2 < len(signs) / len(train) < 0.4
    assert all(r["conversations"][0]["value"].endswith("\n" + tasks.SHORT_ANSWER) for r in train)
    assert {r["conversations"][1]["value"] for r in signs} <= set(vocabulary.SIGN_WORDS)
    for same in ("Instructions/VQAv2/test.json", "Instructions/TextVQA/train.json"):
        assert (plain / same).read_bytes() == (mixed / same).read_bytes()


def test_shared_skills_can_ask_imagenets_question_in_a_short_answer_task(tmp_path):
    """--shared VQAv2=ImageNet:0.3: about 30 % of VQAv2's training records name a drawn object (ImageNet's question,
    which already ends with VQAv2's instruction line), so grouping still reads VQAv2's one instruction."""
    counts = dict(train_per_task=200, test_per_task=10, pretrain_size=10, tasks=("ImageNet", "VQAv2"))
    generate(tmp_path, seed=0, shared={"VQAv2": {"ImageNet": 0.3}}, **counts)
    train = load(tmp_path / "Instructions" / "VQAv2" / "train.json")
    named = [r for r in train if r["conversations"][0]["value"].split("\n")[1] == tasks.IMAGENET_QUESTION]
    assert 0.2 < len(named) / len(train) < 0.4
    assert {r["conversations"][1]["value"] for r in named} <= set(vocabulary.OBJECTS)
    assert extract_instructions(tmp_path / "Instructions" / "VQAv2" / "train.json") == [tasks.SHORT_ANSWER]


@pytest.mark.parametrize("shared", [{"ImageNet": {"TextVQA": 0.2}}, {"VQAv2": {"VQAv2": 0.2}},
                                    {"VQAv2": {"TextVQA": 0.6, "GQA": 0.5}}, {"VQAv2": {"Grounding": 0.1}}])
def test_shared_skills_refuse_what_is_not_a_short_answer_mix(tmp_path, shared):
    with pytest.raises(ValueError, match="shared"):
        generate(tmp_path, seed=0, shared=shared, **SMALL)


def test_pretrain_choices_put_multiple_choice_records_into_the_pre_training_set(tmp_path):
    """--pretrain_choices 0.25: about a quarter of the pre-training records are multiple-choice questions (2-4
    options, random order) about signs, drawings and books, answered with the option's letter; the rest are the
    same kinds as without the option."""
    meta = generate(tmp_path, seed=0, train_per_task=2, test_per_task=2, pretrain_size=400, pretrain_choices=0.25,
                    tasks=("TextVQA",))
    assert meta["args"]["pretrain_choices"] == 0.25
    records = load(tmp_path / "Pretrain" / "pretrain.json")
    choice = [r for r in records if r["conversations"][0]["value"].endswith(tasks.SQA_INSTRUCTION)]
    assert 0.18 < len(choice) / len(records) < 0.32
    for record in choice:
        prompt, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
        options = [line for line in prompt.split("\n") if re.match(r"^[A-D]\. ", line)]
        assert 2 <= len(options) <= 4 and answer in "ABCD"[:len(options)]
    assert len({r["conversations"][1]["value"] for r in choice}) == 4         # every letter is an answer somewhere
    with pytest.raises(ValueError, match="pretrain_choices"):
        generate(tmp_path / "bad", seed=0, pretrain_choices=1.0, **SMALL)
