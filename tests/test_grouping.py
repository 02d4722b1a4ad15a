"""Instruction grouping reproduces LoRASelect's decisions and the released CoIN group table."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llaca_plugin import grouping
from llaca_plugin.grouping import GroupDecision, GroupingError, commit, decide, extract_instructions
from llava.coin import tasks as coin_tasks
from playground.mini_coin.generate import generate

REPO = Path(__file__).resolve().parents[1]
TASKS = coin_tasks.names()
SQA = "Answer with the option's letter from the given choices directly."
SHORT = "Answer the question using a single word or phrase."


def write_train(root: Path, task: str, prompts: list[str], kind: str = "Instructions") -> Path:
    path = root / kind / task / "train.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [{"id": i, "image": "x.png", "conversations": [{"from": "human", "value": f"<image>\n{p}"},
                                                             {"from": "gpt", "value": "a"}]}
               for i, p in enumerate(prompts)]
    path.write_text(json.dumps(records))
    return path


def write_test(root: Path, task: str, texts: list[str], kind: str = "Instructions", name: str = "test.json") -> Path:
    path = root / kind / task / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"question_id": i, "image": "x.png", "text": t} for i, t in enumerate(texts)]))
    return path


def codebook_state(codebook: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(codebook.iterdir())} if codebook.exists() else {}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llaca_plugin.grouping", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_extraction_rules_per_task(tmp_path):
    imagenet = write_train(tmp_path, "ImageNet", ["What is the object in the image?\n" + SHORT] * 3)
    grounding = write_train(tmp_path, "Grounding", ["Please provide the box this sentence describes: a dog",
                                                    "Please provide the box this sentence describes: a cat"])
    vqa = write_train(tmp_path, "GQA", ["Is it red?\n" + SHORT, "Is it blue?\n" + SHORT, "Why?\nSay why."])
    assert extract_instructions(imagenet) == ["What is the object in the image?"]
    assert extract_instructions(grounding) == ["Please provide the box this sentence describes"]
    assert extract_instructions(vqa) == [SHORT, "Say why."]
    imagenet_test = write_test(tmp_path, "ImageNet", ["What is the object in the image?\n" + SHORT])
    assert extract_instructions(imagenet_test) == ["What is the object in the image?"]
    released = extract_instructions(imagenet_test, released_imagenet_test_rule=True)
    assert released == ["What is the object in the image?\n" + SHORT]
    grounding_test = write_test(tmp_path, "Grounding", ["Please provide the box this sentence describes: a dog"])
    assert extract_instructions(grounding_test) == ["Please provide the box this sentence describes"]


def test_identical_instruction_reuses_and_disjoint_opens_new_group(tmp_path):
    book = tmp_path / "codebook"
    first = write_train(tmp_path, "ScienceQA", ["Q?\nA. x\n" + SQA])
    assert decide(book, first) == GroupDecision(group=1, similarity=0.0, new=True)
    commit(book, first, 1)
    same = write_train(tmp_path / "b", "ScienceQA", ["Other?\n" + SQA])
    decision = decide(book, same)
    assert (decision.group, decision.new) == (1, False) and decision.similarity == pytest.approx(1.0)
    other = write_train(tmp_path, "TextVQA", ["What is written?\n" + SHORT])
    decision = decide(book, other)
    assert (decision.group, decision.new) == (2, True) and decision.similarity < 0.9


def test_test_file_below_threshold_goes_to_newest_group(tmp_path):
    book = tmp_path / "codebook"
    commit(book, write_train(tmp_path, "ScienceQA", ["Q?\n" + SQA]), 1)
    commit(book, write_train(tmp_path, "TextVQA", ["Q?\n" + SHORT]), 2)
    assert decide(book, write_test(tmp_path, "ScienceQA", ["Q?\n" + SQA])).group == 1
    unknown = decide(book, write_test(tmp_path, "Other", ["Q?\nDraw a sheep."]))
    assert unknown == GroupDecision(group=2, similarity=0.0, new=False)


def test_threshold_depends_on_instruction_type(tmp_path):
    book = tmp_path / "codebook"
    commit(book, write_train(tmp_path, "TextVQA", ["Q?\nAnswer briefly with one word."]), 1)
    similar = ["Q?\nAnswer briefly with one sentence."]
    original = write_train(tmp_path, "GQA", similar)
    diverse = write_train(tmp_path, "GQA", similar, kind="Instructions_Diverse")
    assert grouping.default_threshold(original) == 0.90 and grouping.default_threshold(diverse) == 0.30
    strict, loose = decide(book, original), decide(book, diverse)
    assert 0.30 <= strict.similarity < 0.90 and strict.similarity == loose.similarity
    assert (strict.group, strict.new) == (2, True) and (loose.group, loose.new) == (1, False)
    assert decide(book, original, threshold=0.3).group == 1


def test_train_or_test_is_decided_by_file_name(tmp_path):
    book = tmp_path / "codebook"
    commit(book, write_train(tmp_path, "ScienceQA", ["Q?\n" + SQA]), 1)
    test_in_train_dir = write_test(tmp_path / "train_runs", "Other", ["Q?\nDraw a sheep."])
    assert decide(book, test_in_train_dir).new is False
    with pytest.raises(GroupingError, match="only training files"):
        commit(book, test_in_train_dir, 2)


def test_commit_appends_only_new_lines_atomically(tmp_path, monkeypatch):
    book = tmp_path / "codebook"
    assert commit(book, write_train(tmp_path, "GQA", ["a?\n" + SHORT, "b?\nSay why."]), 1) == [SHORT, "Say why."]
    again = write_train(tmp_path / "again", "VQAv2", ["c?\n" + SHORT, "d?\nCount the items."])
    assert commit(book, again, 1) == ["Count the items."]
    assert commit(book, again, 1) == []
    assert (book / "instruction_1.txt").read_text() == f"{SHORT}\nSay why.\nCount the items.\n"
    before = codebook_state(book)

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(grouping.os, "replace", failing_replace)
    with pytest.raises(OSError):
        commit(book, write_train(tmp_path / "new", "VQAv2", ["e?\nCount them."]), 1)
    assert codebook_state(book) == before  # unchanged, no temporary file left behind


def test_commit_refuses_skipped_group_numbers(tmp_path):
    book = tmp_path / "codebook"
    train = write_train(tmp_path, "ScienceQA", ["Q?\n" + SQA])
    for bad in (0, 2):
        with pytest.raises(GroupingError, match="not in 1..1"):
            commit(book, train, bad)
    commit(book, train, 1)
    with pytest.raises(GroupingError, match="not in 1..2"):
        commit(book, train, 3)


@pytest.mark.parametrize("prompts", [[], ["Q?\nWhat is the?"], ["Q?\n"]])
def test_empty_or_stop_word_only_instructions_fail_clearly(tmp_path, prompts, capsys):
    train = write_train(tmp_path, "GQA", prompts)
    with pytest.raises(GroupingError, match=str(train)):
        decide(tmp_path / "codebook", train)
    assert grouping.main(["--codebook", str(tmp_path / "codebook"), "--instruct", str(train)]) == 2
    assert str(train) in capsys.readouterr().err


def test_cli_prints_one_json_line_and_writes_only_with_commit(tmp_path, capsys):
    book = tmp_path / "codebook"
    commit(book, write_train(tmp_path, "ScienceQA", ["Q?\n" + SQA]), 1)
    train = write_train(tmp_path, "TextVQA", ["Q?\n" + SHORT])
    before = codebook_state(book)
    result = run_cli("--codebook", str(book), "--instruct", str(train))
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    assert json.loads(result.stdout) == {"group": 2, "similarity": pytest.approx(0.0919, abs=1e-3), "new": True}
    assert codebook_state(book) == before
    assert grouping.main(["--codebook", str(book), "--instruct", str(train), "--threshold", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out)["group"] == 1
    assert grouping.main(["--codebook", str(book), "--instruct", str(train), "--commit", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == [SHORT]
    assert (book / "instruction_2.txt").read_text() == SHORT + "\n"
    stray = write_test(tmp_path, "Other", ["Q?\nWhat is the?"])
    assert grouping.main(["--codebook", str(book), "--instruct", str(stray)]) == 2
    assert capsys.readouterr().out == ""


def test_gaps_in_the_codebook_are_an_error(tmp_path):
    book = tmp_path / "codebook"
    book.mkdir()
    (book / "instruction_2.txt").write_text(SHORT + "\n")
    with pytest.raises(GroupingError, match="1..n"):
        decide(book, write_train(tmp_path, "GQA", ["Q?\n" + SHORT]))


# Released CIA scripts: ScienceQA 1; TextVQA opens 2; ImageNet opens 3; GQA, VizWiz 2; Grounding opens 4; VQAv2,
# OCR-VQA 2. Evaluation maps every task to the checkpoint of its group.
GROUP_TABLE = {"ScienceQA": (1, True), "TextVQA": (2, True), "ImageNet": (3, True), "GQA": (2, False),
               "VizWiz": (2, False), "Grounding": (4, True), "VQAv2": (2, False), "OCRVQA": (2, False)}


@pytest.fixture(scope="module")
def mini_coin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mini_coin")
    generate(root, seed=0, train_per_task=12, test_per_task=6, pretrain_size=0)
    return root / "Instructions"


def eval_files(instructions: Path, task: str) -> list[Path]:
    return [instructions / task / f"{split}.json" for split in coin_tasks.task(task).question_splits]


def test_mini_coin_in_coin_order_reproduces_the_released_group_table(mini_coin, tmp_path):
    book = tmp_path / "codebook"
    for stage, task in enumerate(TASKS):
        decision = decide(book, mini_coin / task / "train.json")
        assert (decision.group, decision.new) == GROUP_TABLE[task], task
        assert decision.new or decision.similarity == pytest.approx(1.0)
        commit(book, mini_coin / task / "train.json", decision.group)
        for seen in TASKS[: stage + 1]:  # every test file seen so far routes to its task's group
            for path in eval_files(mini_coin, seen):
                assert decide(book, path).group == GROUP_TABLE[seen][0], (task, path)
    assert sorted(p.name for p in book.iterdir()) == [f"instruction_{k}.txt" for k in (1, 2, 3, 4)]


def test_released_imagenet_test_rule_falls_back_to_the_newest_group(mini_coin, tmp_path):
    book = tmp_path / "codebook"
    for task in TASKS:
        commit(book, mini_coin / task / "train.json", GROUP_TABLE[task][0])
    released = decide(book, mini_coin / "ImageNet" / "test.json", released_imagenet_test_rule=True)
    assert released.group == 4 and released.similarity == pytest.approx(0.7765, abs=1e-3)  # Grounding's group


def test_cli_module_does_not_import_deepspeed():
    code = "import sys, llaca_plugin.grouping; print('deepspeed' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.stdout.split() == ["False"]
