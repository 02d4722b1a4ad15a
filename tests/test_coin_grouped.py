"""The instruction-grouped CoIN chain (`scripts/CoIN/Train_LLaCA_grouped/`) and group-aware evaluation.

Without training (a stand-in `deepspeed` that records its arguments, as in test_coin_chain.py), on the eight
tasks of a tiny mini-CoIN: the groups computed from the instructions reproduce the released scripts' chain
(docs/coin_chain.md, "The released grouping": which checkpoint each task starts from, `--llaca` per
task), the NEW_GROUP_INIT and
GROUP_EMA switches, the per-stage codebook copies, a rerun repeating the stored decision, and the checkpoint
that answers every cell of the matrix. Then one real run of three tasks with the tiny test model through
Train_all.sh and eval_matrix.sh.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_command, subprocess_env
from llaca_plugin.grouping import decide
from llava.coin import tasks as coin_tasks
from playground.mini_coin.generate import generate
from playground.mini_coin.tasks import GROUNDING_INSTRUCTION, IMAGENET_QUESTION, SHORT_ANSWER, SQA_INSTRUCTION
from test_coin_chain import BIN, FAKE_DEEPSPEED, free_port, mtimes

REPO = Path(__file__).resolve().parents[1]
COIN = REPO / "scripts" / "CoIN"
CHAIN = COIN / "Train_LLaCA_grouped"
TASKS = coin_tasks.names()

# The released Train_CIA scripts (docs/coin_chain.md, "The released grouping"): group, new group?, start
# weights, --dema.
RELEASED = {
    "ScienceQA": (1, True, None, False),
    "TextVQA": (2, True, "ScienceQA", False),
    "ImageNet": (3, True, "TextVQA", False),
    "GQA": (2, False, "TextVQA", True),
    "VizWiz": (2, False, "GQA", True),
    "Grounding": (4, True, "VizWiz", False),
    "VQAv2": (2, False, "VizWiz", True),
    "OCRVQA": (2, False, "VQAv2", True),
}
# Which task's checkpoint answers each cell: stage -> one entry per task <= stage, in CoIN order.
ROUTES = {
    "ScienceQA": "ScienceQA",
    "TextVQA": "ScienceQA TextVQA",
    "ImageNet": "ScienceQA TextVQA ImageNet",
    "GQA": "ScienceQA GQA ImageNet GQA",
    "VizWiz": "ScienceQA VizWiz ImageNet VizWiz VizWiz",
    "Grounding": "ScienceQA VizWiz ImageNet VizWiz VizWiz Grounding",
    "VQAv2": "ScienceQA VQAv2 ImageNet VQAv2 VQAv2 Grounding VQAv2",
    "OCRVQA": "ScienceQA OCRVQA ImageNet OCRVQA OCRVQA Grounding OCRVQA OCRVQA",
}
# Next-task cells (stage j, task j+1), by the test-file rule against stage j's codebook: a test file matching
# no group goes to the newest one (TextVQA at stage 1 -> group 1, ImageNet at stage 2 -> group 2, Grounding
# at stage 5 -> group 3).
NEXT_ROUTES = {"ScienceQA": "ScienceQA", "TextVQA": "TextVQA", "ImageNet": "TextVQA", "GQA": "GQA",
               "VizWiz": "ImageNet", "Grounding": "VizWiz", "VQAv2": "VQAv2"}

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def bash(script: Path | str, *args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run a script file (or a bash -c command) from the repository root."""
    command = ["bash", "-c", script] if isinstance(script, str) else ["bash", script, *args]
    return run_command(command, env=env, check=check)


def flag(call: str, name: str) -> str | None:
    words = call.split()
    return words[words.index(name) + 1] if name in words else None


ROUTES_COMMAND = f"{sys.executable} -m llava.coin.evaluation routes"


def routes(env: dict, **extra) -> list[list[str]]:
    """`python -m llava.coin.evaluation routes`: one [stage, task, checkpoint, how] per cell."""
    proc = bash(ROUTES_COMMAND, env=dict(env, **extra))
    return [line.split("\t") for line in proc.stdout.splitlines()]


# ------------------------------------------------------------------------- stand-in deepspeed, 8 tasks

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("coin_grouped")
    generate(root / "data", seed=0, train_per_task=2, test_per_task=2, pretrain_size=0)
    for d in ("lm", "vision"):
        (root / d).mkdir()
    (root / "mm_projector.bin").write_bytes(b"x")
    fake = root / "fake_deepspeed"
    fake.write_text(FAKE_DEEPSPEED)
    fake.chmod(0o755)
    env = subprocess_env(PYTHON=sys.executable, DEEPSPEED=fake, FAKE_LOG=root / "calls.txt",
                         BASE_LM=root / "lm", VISION_TOWER=root / "vision",
                         PRETRAIN_PROJECTOR=root / "mm_projector.bin",
                         DATA_ROOT=root / "data", IMAGE_ROOT=root / "data" / "cl_dataset",
                         OUTPUT_ROOT=root / "checkpoints", RESULT_ROOT=root / "results")
    return {"root": root, "env": env, "calls": root / "calls.txt", "ckpt": root / "checkpoints"}


def run_chain(world: dict, method: str | None, tasks: list[str], **settings) -> dict[str, str]:
    """Train_all.sh with the stand-in launcher (METHOD unset: the chain's name); {task: its launcher arguments}."""
    before = world["calls"].read_text().splitlines() if world["calls"].exists() else []
    env = dict({k: v for k, v in world["env"].items() if k != "METHOD"}, TASKS=" ".join(tasks), **settings)
    if method is not None:
        env["METHOD"] = method
    bash(CHAIN / "Train_all.sh", env=env)
    calls = world["calls"].read_text().splitlines()[len(before):]
    assert len(calls) == len(tasks)
    return {task: call for task, call in zip(tasks, calls)}


@pytest.fixture(scope="module")
def released(world) -> dict:
    """The default grouped chain (NEW_GROUP_INIT=previous, GROUP_EMA=reused) over the eight tasks."""
    calls = run_chain(world, None, TASKS)  # METHOD defaults to the chain's name
    return {"calls": calls, "dir": world["ckpt"] / "LLaCA_grouped",
            "env": dict(world["env"], METHOD="LLaCA_grouped", TASKS=" ".join(TASKS))}


def test_groups_from_the_instructions_reproduce_the_released_chain(released, world):
    method_dir = released["dir"]
    groups_so_far = 0
    for task, (group, new, start, dema) in RELEASED.items():
        call, out = released["calls"][task], method_dir / task
        assert flag(call, "--output_dir") == str(out)
        assert flag(call, "--llaca") == str(dema), (task, call)
        if start is None:
            assert flag(call, "--pretrain_mm_mlp_adapter") == world["env"]["PRETRAIN_PROJECTOR"]
            assert "--previous_task_model_path" not in call
        else:
            assert flag(call, "--previous_task_model_path") == str(method_dir / start), (task, call)
            assert "--pretrain_mm_mlp_adapter" not in call
        decision = json.loads((out / "group.json").read_text())
        assert (decision["group"], decision["new"], decision["llaca"]) == (group, new, dema)
        assert decision["init_task"] == start and decision["similarity"] == pytest.approx(0.0 if new else 1.0, abs=0.1)
        assert f"group={group} new={new} llaca={dema}\n" in (out / "DONE").read_text()
        # group.json before training, the codebook copy before DONE
        assert (out / "group.json").stat().st_mtime_ns <= (out / "adapter_config.json").stat().st_mtime_ns
        assert (out / "codebook").stat().st_mtime_ns <= (out / "DONE").stat().st_mtime_ns
        groups_so_far = max(groups_so_far, group)
        assert sorted(p.name for p in (out / "codebook").iterdir()) == [
            f"instruction_{k}.txt" for k in range(1, groups_so_far + 1)], task
    book = method_dir / "OCRVQA" / "codebook"
    assert (book / "instruction_1.txt").read_text() == SQA_INSTRUCTION + "\n"
    assert (book / "instruction_2.txt").read_text() == SHORT_ANSWER + "\n"
    assert (book / "instruction_3.txt").read_text() == IMAGENET_QUESTION + "\n"
    assert (book / "instruction_4.txt").read_text() == GROUNDING_INSTRUCTION + "\n"
    assert (method_dir / "ImageNet" / "codebook" / "instruction_3.txt").read_text() == IMAGENET_QUESTION + "\n"
    assert not (method_dir / "GQA" / "codebook" / "instruction_4.txt").exists()
    assert {p.name: p.read_text() for p in (method_dir / "codebook").iterdir()} == \
        {p.name: p.read_text() for p in book.iterdir()}  # the chain's codebook: the last stage's


def test_every_cell_is_answered_by_its_groups_latest_checkpoint(released):
    method_dir = released["dir"]
    table = routes(released["env"], NEXT_TASK="1")
    expected = []
    for j, stage in enumerate(TASKS):
        answers = ROUTES[stage].split()
        for i, task in enumerate(TASKS[: j + 1]):
            expected.append((stage, task, answers[i]))
        if j + 1 < len(TASKS):
            expected.append((stage, TASKS[j + 1], NEXT_ROUTES[stage]))
    assert [(s, t, c) for s, t, c, _ in table] == [(s, t, str(method_dir / a)) for s, t, a in expected]
    for stage, task, _, how in table:
        owner = TASKS.index(task) <= TASKS.index(stage)
        assert how.endswith("similarity 1.0000") or not owner, how  # every seen test file matches its group
        assert (" by owner;" in how) == owner, how
    # the released rule (the test file's group) routes the seen tasks the same way on CoIN's instructions
    test_file = routes(released["env"], ROUTE="test_file")
    assert [row[:3] for row in test_file] == [(row[:3]) for row in table if TASKS.index(row[1]) <= TASKS.index(row[0])]
    assert all(" by test_file;" in row[3] for row in test_file)


def test_rerun_skips_finished_tasks_and_repeats_a_stored_decision(released, world):
    method_dir, env = released["dir"], released["env"]
    before, calls_before = mtimes(method_dir), world["calls"].read_text()
    proc = bash(CHAIN / "Train_all.sh", env=env)
    assert proc.stdout.count("DONE marker present, skipping") == 8
    assert mtimes(method_dir) == before and world["calls"].read_text() == calls_before

    # Grounding interrupted after its decision: decided now, against the committed codebook, it would reuse
    # group 4 (no earlier checkpoint) and, with other settings, start fresh with the EMA on.
    out = method_dir / "Grounding"
    (out / "DONE").unlink()
    decision, book = (out / "group.json").read_bytes(), {p.name: p.read_text() for p in (out / "codebook").iterdir()}
    now = decide(method_dir / "codebook", Path(env["DATA_ROOT"]) / "Instructions" / "Grounding" / "train.json")
    assert (now.group, now.new) == (4, False)
    grounding = CHAIN / coin_tasks.task("Grounding").train_script
    proc = bash(grounding, env=dict(env, NEW_GROUP_INIT="fresh", GROUP_EMA="all"))
    assert "repeating the group decision stored in" in proc.stdout
    assert "decided with NEW_GROUP_INIT=previous GROUP_EMA=reused" in proc.stdout
    call = world["calls"].read_text().splitlines()[-1]
    assert call == released["calls"]["Grounding"]
    assert (out / "group.json").read_bytes() == decision and (out / "DONE").is_file()
    assert {p.name: p.read_text() for p in (out / "codebook").iterdir()} == book


def test_fresh_start_for_new_groups_and_the_ema_everywhere(world):
    calls = run_chain(world, "Grouped_fresh_all", ["ScienceQA", "TextVQA"], NEW_GROUP_INIT="fresh", GROUP_EMA="all")
    for task in ("ScienceQA", "TextVQA"):  # new groups: fresh LoRA + the pretrain projector, and the EMA on
        assert flag(calls[task], "--pretrain_mm_mlp_adapter") == world["env"]["PRETRAIN_PROJECTOR"]
        assert "--previous_task_model_path" not in calls[task] and flag(calls[task], "--llaca") == "True"
    decision = json.loads((world["ckpt"] / "Grouped_fresh_all" / "TextVQA" / "group.json").read_text())
    assert (decision["group"], decision["new"], decision["init_task"]) == (2, True, None)
    assert decision["init_reason"] == "new group, NEW_GROUP_INIT=fresh"


def test_grouping_with_plain_lora(world):
    method_dir = world["ckpt"] / "Grouped_none"
    calls = run_chain(world, "Grouped_none", ["TextVQA", "GQA"], GROUP_EMA="none")
    assert json.loads((method_dir / "GQA" / "group.json").read_text())["group"] == 1  # groups are the chain's own
    assert flag(calls["GQA"], "--previous_task_model_path") == str(method_dir / "TextVQA")
    assert [flag(calls[t], "--llaca") for t in calls] == ["False", "False"]


@pytest.mark.parametrize("command, extra, message", [
    (CHAIN / "1_Science.sh", {"NEW_GROUP_INIT": "paper"}, "NEW_GROUP_INIT must be previous or fresh"),
    (CHAIN / "1_Science.sh", {"GROUP_EMA": "some"}, "GROUP_EMA must be reused, all or none"),
    (ROUTES_COMMAND, {"ROUTE": "test"}, "ROUTE must be owner or test_file"),
])
def test_bad_settings_fail_clearly(released, command, extra, message):
    proc = bash(command, env=dict(released["env"], **extra), check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr


def test_a_stage_without_codebook_copy_is_refused(world, tmp_path):
    env = dict(world["env"], OUTPUT_ROOT=str(tmp_path), METHOD="Mixed", TASKS="ScienceQA TextVQA")
    (tmp_path / "Mixed" / "ScienceQA").mkdir(parents=True)
    (tmp_path / "Mixed" / "ScienceQA" / "DONE").write_text("task=ScienceQA\n")  # e.g. a LoRA chain's stage
    proc = bash(CHAIN / "2_TextVQA.sh", env=env, check=False)
    assert proc.returncode == 1 and "codebook copy of stage ScienceQA not found" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------ a real run, tiny test model

def test_real_grouped_chain_and_routed_matrix(tmp_path, tiny):
    if not (BIN / "deepspeed").exists():
        pytest.skip("needs the deepspeed launcher in the test interpreter's bin/")
    tasks = ["ScienceQA", "TextVQA", "GQA"]
    generate(tmp_path / "data", seed=0, train_per_task=4, test_per_task=2, pretrain_size=0, tasks=tuple(tasks))
    env = subprocess_env(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHON=sys.executable, DEEPSPEED=BIN / "deepspeed",
        BASE_LM=tiny / "lm", VISION_TOWER=tiny / "vision", PRETRAIN_PROJECTOR=tiny / "mm_projector.bin",
        DATA_ROOT=tmp_path / "data", IMAGE_ROOT=tmp_path / "data" / "cl_dataset", TASKS=" ".join(tasks),
        OUTPUT_ROOT=tmp_path / "checkpoints", RESULT_ROOT=tmp_path / "results", METHOD="LLaCA_grouped",
        NUM_GPUS=1, MASTER_PORT=free_port(), BF16="False", MAX_STEPS=1, LORA_R=4, LORA_ALPHA=8,
        BATCH_SIZES="2 2 2 2 2 2 2 2", NUM_WORKERS=0, EVAL_BATCH_SIZE=16, MAX_NEW_TOKENS=4)
    bash(CHAIN / "Train_all.sh", env=env)
    method_dir, results = tmp_path / "checkpoints" / "LLaCA_grouped", tmp_path / "results" / "LLaCA_grouped"
    for task, (group, ema, start) in {"ScienceQA": (1, False, None), "TextVQA": (2, False, "ScienceQA"),
                                      "GQA": (2, True, "TextVQA")}.items():
        out = method_dir / task
        assert (out / "DONE").is_file() and (out / "codebook").is_dir()
        decision = json.loads((out / "group.json").read_text())
        assert (decision["group"], decision["llaca"], decision["init_task"]) == (group, ema, start)
        assert (out / "llaca_state.pt").is_file() == ema  # the EMA ran only where the group was reused
        command = next((method_dir / "logs").glob(f"{task}.*.log")).read_text().splitlines()[0]
        assert f"--llaca {ema}" in command

    matrix = bash(COIN / "Eval" / "eval_matrix.sh", env=env)
    assert "grouped chain" in matrix.stdout
    assert "answers of the same checkpoint copied from" in matrix.stdout  # ScienceQA's answers, not regenerated
    summary = json.loads((results / "summary.json").read_text())
    ck = {t: str(method_dir / t) for t in tasks}
    assert summary["checkpoints"] == [[ck["ScienceQA"], None, None],
                                      [ck["ScienceQA"], ck["TextVQA"], None],
                                      [ck["ScienceQA"], ck["GQA"], ck["GQA"]]]  # GQA's group answers TextVQA
    assert all(v is not None for j, row in enumerate(summary["matrix"]) for v in row[: j + 1])
    routing = json.loads((results / "routing.json").read_text())
    assert [(c["stage"], c["task"], c["group"], c["test_group"]) for c in routing["cells"]][-3:] == [
        ("GQA", "ScienceQA", 1, 1), ("GQA", "TextVQA", 2, 2), ("GQA", "GQA", 2, 2)]
    # the final-stage evaluation routes the same way: every cell is already scored with the right checkpoint
    proc = bash(COIN / "Eval" / "eval_all.sh", env=env)
    assert proc.stdout.count("score.json up to date, skipping") == 3
