"""The CoIN chain scripts run exactly as the all-bash scripts they replaced (scripts/CoIN/common.sh of commit
BASH_COMMIT): the same train_mem.py command line for every chain and task, the same output tree (DONE, group.json,
the codebook copies), the same routing of a grouped chain's cells, and the same evaluation (inference command
lines, scores, summary.json, routing.json).

Both implementations run side by side without training or a model: a stand-in `deepspeed` records its arguments
and writes the files a finished task leaves, a stand-in inference module writes answers. The bash scripts run
from a scratch copy of that commit's scripts/CoIN/, whose repository root (in the train_mem.py path and the
default DS_CONFIG) is replaced by this repository's before comparing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_command
from playground.mini_coin import generate as mc
from test_coin_chain import ALL_TASKS, FAKE_DEEPSPEED, published_layout

REPO = Path(__file__).resolve().parents[1]
BASH_COMMIT = "3e3354f01d557808c65aa28193ef9ca44ee30748"  # the last commit with the chain's logic in common.sh
NOT_COMPARED = ("finished=", "log=", '"decided": ')  # times and log names (date and process id)

FAKE_PYTHON = r"""#!/usr/bin/env bash
# The real interpreter, except for the inference modules (recorded; answers from fake_inference.py) and the
# zero-shot model builder (recorded; writes a config.json).
if [[ "${1:-}" == -m && "${2:-}" == llava.eval.CoIN.model_* ]]; then
    printf 'CUDA_VISIBLE_DEVICES=%s %s\n' "${CUDA_VISIBLE_DEVICES:-}" "$*" >> "$FAKE_EVAL_LOG"
    shift 2
    exec "$REAL_PYTHON" "$FAKE_INFERENCE" "$@"
fi
if [[ "${1:-}" == -m && "${2:-}" == llava.model.zero_shot ]]; then
    printf '%s\n' "$*" >> "$FAKE_EVAL_LOG"
    out="${@: -1}"; mkdir -p "$out"; echo '{}' > "$out/config.json"; exit 0
fi
exec "$REAL_PYTHON" "$@"
"""

FAKE_INFERENCE = r"""
import json, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
path = args["--question-file"]
questions = json.load(open(path)) if path.endswith(".json") else [json.loads(l) for l in open(path)]
chunks, index = int(args["--num-chunks"]), int(args["--chunk-idx"])
with open(args["--answers-file"], "w") as f:
    for position, q in list(enumerate(questions))[index::chunks]:  # two questions in three answered right
        text = str(q.get("answer", "A")) if position % 3 else "no idea"
        f.write(json.dumps({"question_id": q["question_id"], "prompt": q.get("text", ""), "text": text}) + "\n")
"""


def bash_scripts(root: Path) -> Path:
    """A scratch repository root holding BASH_COMMIT's scripts/CoIN/ and links to this repository's code."""
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", BASH_COMMIT],
                                                     capture_output=True).returncode != 0:
        pytest.skip(f"needs git and commit {BASH_COMMIT[:7]} (the bash implementation) in this checkout")
    root.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BASH_COMMIT, "scripts/CoIN", "scripts/zero2.json"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    for package in ("llava", "llaca_plugin", "playground"):
        (root / package).symlink_to(REPO / package)
    return root


class Side:
    """One implementation (bash or python) running in its own working directory with stand-in programs."""

    def __init__(self, name: str, repo: Path, work: Path, tools: Path, data: Path | None):
        self.name, self.repo, self.work = name, repo, work
        self.calls, self.eval_calls = work / "calls.txt", work / "eval_calls.txt"
        work.mkdir()
        published_layout(work)
        self.env = {"PATH": os.environ["PATH"], "HOME": str(work), "DEEPSPEED": str(tools / "fake_deepspeed"),
                    "FAKE_LOG": str(self.calls), "PYTHON": str(tools / "fake_python"),
                    "REAL_PYTHON": sys.executable, "FAKE_INFERENCE": str(tools / "fake_inference.py"),
                    "FAKE_EVAL_LOG": str(self.eval_calls), "OMP_NUM_THREADS": "1"}
        if data is not None:
            self.env.update(DATA_ROOT=str(data), IMAGE_ROOT=str(data / "cl_dataset"))

    def run(self, script: str, *args: str, check: bool = True, **settings) -> subprocess.CompletedProcess:
        env = dict(self.env, **{k: str(v) for k, v in settings.items()})
        return run_command(["bash", self.repo / "scripts" / "CoIN" / script, *args], env=env, cwd=self.work,
                           timeout=900, check=check)

    def commands(self) -> list[str]:
        lines = self.calls.read_text().splitlines() if self.calls.exists() else []
        return [line.replace(str(self.repo), "<repo>") for line in lines]

    def eval_commands(self) -> list[str]:
        lines = self.eval_calls.read_text().splitlines() if self.eval_calls.exists() else []
        return sorted(line.replace(str(self.repo), "<repo>") for line in lines)  # chunks run in parallel

    def tree(self, *roots: str) -> dict[str, str]:
        """Every file under the roots (logs/ excepted: their names hold a date and a process id) with its
        content, the lines holding times and log names left out."""
        found = {}
        for root in roots:
            for path in sorted((self.work / root).rglob("*")):
                relative = str(path.relative_to(self.work))
                if path.is_file() and "/logs/" not in relative and not path.suffix == ".png":
                    text = path.read_text(errors="replace").replace(str(self.repo), "<repo>")
                    found[relative] = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith(NOT_COMPARED))
        return found


@pytest.fixture(scope="module")
def sides(tmp_path_factory) -> tuple[Side, Side]:
    root = tmp_path_factory.mktemp("equivalence")
    tools = root / "tools"
    tools.mkdir()
    for name, text in (("fake_deepspeed", FAKE_DEEPSPEED), ("fake_python", FAKE_PYTHON)):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    (tools / "fake_inference.py").write_text(FAKE_INFERENCE)
    data = root / "data"
    mc.generate(data, seed=0, train_per_task=2, test_per_task=4, pretrain_size=0)
    return (Side("bash", bash_scripts(root / "bash_repo"), root / "bash", tools, data),
            Side("python", REPO, root / "python", tools, data))


def run_both(sides, script: str, *args: str, **settings) -> None:
    for side in sides:
        side.run(script, *args, **settings)


def assert_same(sides, *roots: str) -> None:
    bash, python = sides
    assert python.commands() == bash.commands()
    assert python.eval_commands() == bash.eval_commands()
    if roots:
        assert python.tree(*roots) == bash.tree(*roots)


def test_every_chain_with_the_published_defaults(sides):
    """LLaCA, LoRA and FixedEMA over the eight tasks and the multitask run, from the published layout."""
    for chain in ("LLaCA", "LoRA", "FixedEMA"):
        run_both(sides, f"Train_{chain}/Train_all.sh", DATA_ROOT="./playground", IMAGE_ROOT="./cl_dataset")
    run_both(sides, "Train_Multitask/Train_all.sh", DATA_ROOT="./playground", IMAGE_ROOT="./cl_dataset")
    assert len(sides[1].commands()) == 3 * len(ALL_TASKS) + 1
    assert_same(sides, "checkpoints")


def test_settings_reach_the_command_line(sides):
    """Every setting the command line takes, changed; a one-task script; a chain of three tasks."""
    settings = dict(TASKS="GQA VizWiz Grounding", METHOD="Mine", NUM_GPUS=2, MASTER_PORT=1234, MAX_STEPS=5,
                    SAVE_STEPS=7, LR="1e-4", MM_PROJECTOR_LR="3e-5", LORA_R=8, LORA_ALPHA=16,
                    LORA_TARGETS="q_proj,v_proj",
                    EPOCHS=2, BATCH_SIZES="1 2 3 4 5 6 7 8", GRAD_ACCUM=4, MODEL_MAX_LENGTH=512, BF16="False",
                    TF32="False", NUM_WORKERS=0, DS_CONFIG="./playground/ds.json", OUTPUT_ROOT="./out dir",
                    EXTRA_TRAIN_ARGS="--llaca_variant paper  --seed 7", KEEP_CHECKPOINTS=0)
    for side in sides:
        (side.work / "playground" / "ds.json").write_text("{}")
        (side.work / "out dir" / "Mine" / "GQA" / "checkpoint-1").mkdir(parents=True)  # KEEP_CHECKPOINTS=0 removes it
    run_both(sides, "Train_FixedEMA/4_GQA.sh", **settings)
    run_both(sides, "Train_LLaCA/Train_all.sh", **dict(settings, METHOD="Other", GPUS="localhost:2,3", NUM_GPUS=""))
    assert_same(sides, "out dir")


def test_a_task_resumes_from_its_newest_complete_checkpoint(sides):
    """A task with complete checkpoints and no DONE: --resume_from_checkpoint True, resumed_from in DONE."""
    settings = dict(TASKS="ScienceQA TextVQA", METHOD="Resumed", DATA_ROOT="./playground", IMAGE_ROOT="./cl_dataset")
    run_both(sides, "Train_LoRA/Train_all.sh", **settings)
    for side in sides:
        task = side.work / "checkpoints" / "CoIN" / "Resumed" / "TextVQA"
        (task / "DONE").unlink()
        for step, complete in ((3, True), (12, True), (20, False)):
            (task / f"checkpoint-{step}").mkdir()
            if complete:
                (task / f"checkpoint-{step}" / "COMPLETE").write_text(f"{step}\n")
    run_both(sides, "Train_LoRA/Train_all.sh", **settings)
    assert "--resume_from_checkpoint True" in sides[1].commands()[-1]
    assert_same(sides, "checkpoints/CoIN/Resumed")


@pytest.mark.parametrize("variant", [
    {},
    pytest.param({"NEW_GROUP_INIT": "fresh", "GROUP_EMA": "all", "TASKS": "ScienceQA TextVQA GQA ImageNet"},
                 marks=pytest.mark.slow),
    pytest.param({"GROUP_EMA": "none", "TASKS": "TextVQA GQA Grounding", "GROUP_THRESHOLD": "0.5"},
                 marks=pytest.mark.slow),
])
def test_grouped_chain_decisions_codebooks_and_routes(sides, variant):
    """The grouped chain on mini-CoIN's instructions (the groups computed, not given), then the table of which
    checkpoint answers each cell, by either rule and with the next-task cells."""
    method = "Grouped_" + "_".join(f"{k}{v}" for k, v in variant.items() if k != "TASKS").replace(" ", "")
    settings = dict(variant, METHOD=method)
    run_both(sides, "Train_LLaCA_grouped/Train_all.sh", **settings)
    assert_same(sides, f"checkpoints/CoIN/{method}")
    bash, python = sides
    for route in ({"ROUTE": "owner", "NEXT_TASK": "1"}, {"ROUTE": "test_file"}):
        env = dict(python.env, **settings, **route)
        new = subprocess.run([sys.executable, "-m", "llava.coin.evaluation", "routes"], cwd=python.work,
                             env=dict(env, PYTHONPATH=str(REPO)), capture_output=True, text=True, check=True)
        old = subprocess.run(["bash", "-c", f"source {bash.repo}/scripts/CoIN/common.sh && coin_print_routes"],
                             cwd=bash.work, env=dict(bash.env, **settings, **route), capture_output=True, text=True,
                             check=True)
        assert new.stdout == old.stdout and new.stdout.count("\n") >= 3


def test_evaluation_matrix_rows_and_a_cell(sides):
    """A LoRA chain's matrix with the next-task cells and two chunks, the zero-shot and multitask rows, one
    cell by its own script, and a grouped chain's routed matrix: the same inference commands, scores, answers,
    summaries and routing tables."""
    tasks = "ScienceQA TextVQA ImageNet"
    chain = dict(TASKS=tasks, METHOD="EvalLoRA")
    run_both(sides, "Train_LoRA/Train_all.sh", **chain)
    run_both(sides, "Eval/eval_zero_shot.sh", TASKS=tasks)
    run_both(sides, "Eval/eval_matrix.sh", NEXT_TASK=1, CUDA_VISIBLE_DEVICES="0,1", **chain)
    run_both(sides, "Train_Multitask/Train_all.sh", TASKS=tasks, OUTPUT_ROOT="./multitask")
    run_both(sides, "Eval/eval_multitask.sh", TASKS=tasks, OUTPUT_ROOT="./multitask")
    run_both(sides, "Eval/3_eval_ImageNet.sh", "TextVQA", "./checkpoints/CoIN/EvalLoRA/TextVQA", COMPAT=1, **chain)
    grouped = dict(TASKS="ScienceQA TextVQA GQA", METHOD="EvalGrouped")
    run_both(sides, "Train_LLaCA_grouped/Train_all.sh", **grouped)
    run_both(sides, "Eval/eval_matrix.sh", **grouped)
    run_both(sides, "Eval/eval_all.sh", **grouped)
    # inference runs: the LoRA matrix's 8 cells x 2 chunks; the zero-shot builder and its 3 cells; the multitask
    # row; the one cell; the grouped matrix's 6 cells less the 2 ScienceQA cells answered by the same checkpoint
    # (copied), then nothing for eval_all (every cell of the final stage is scored with its routed checkpoint)
    assert len(sides[1].eval_commands()) == 8 * 2 + 1 + 3 + 3 + 1 + 4
    assert_same(sides, "results")


def test_the_same_errors(sides):
    """Bad settings and missing inputs stop both with status 1 and the same message."""
    cases = [("Train_LoRA/2_TextVQA.sh", {"METHOD": "Fresh"}),
             ("Train_LoRA/1_Science.sh", {"TASKS": "ScienceQA Foo"}),
             ("Train_LoRA/4_GQA.sh", {"TASKS": "ScienceQA TextVQA"}),
             ("Train_LoRA/1_Science.sh", {"BATCH_SIZES": "16 16"}),
             ("Train_LoRA/1_Science.sh", {"BATCH_SIZES": "1 2 3 4 5 6 7 0"}),
             ("Train_LoRA/1_Science.sh", {"BASE_LM": "./nowhere", "METHOD": "Fresh"}),
             ("Train_LoRA/1_Science.sh", {"DS_CONFIG": "./nowhere.json", "METHOD": "Fresh"}),
             ("Train_LLaCA_grouped/1_Science.sh", {"NEW_GROUP_INIT": "paper"}),
             ("Eval/1_eval_sqa.sh", {"METHOD": "Fresh"}),
             ("Eval/eval_matrix.sh", {"METHOD": "Fresh"}),
             ("Eval/eval_multitask.sh", {"OUTPUT_ROOT": "./nowhere"})]
    for script, settings in cases:
        bash, python = (side.run(script, check=False, **settings) for side in sides)
        assert bash.returncode == python.returncode == 1, (script, settings)
        assert python.stderr.splitlines()[-1] == bash.stderr.splitlines()[-1], (script, settings)
