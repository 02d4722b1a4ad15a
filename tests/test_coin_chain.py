"""The CoIN shell scripts end to end, the way users run them: `scripts/CoIN/Train_<METHOD>/Train_all.sh` and
`scripts/CoIN/Eval/eval_matrix.sh` on a 3-task mini-CoIN (ScienceQA, TextVQA, ImageNet) with the tiny test
model, on CPU, one DeepSpeed process, two optimizer steps per task.

One chain per method is trained and evaluated once per module and shared by the assertions: the task
directories (upstream layout + DONE written last), every matrix cell's score.json, summary.json and the PNGs;
then reruns (every finished task and cell is skipped, nothing is rewritten) and the resume of a task that has a
complete checkpoint but no DONE marker. The published defaults (launcher line, protocol flags, batch sizes,
chain order) are checked without training, through a stand-in `deepspeed` that records its arguments.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_command, subprocess_env
from llava.coin import tasks as coin_tasks
from llava.train.dist import free_port

REPO = Path(__file__).resolve().parents[1]
COIN = REPO / "scripts" / "CoIN"
TASKS = ["ScienceQA", "TextVQA", "ImageNet"]
ALL_TASKS = coin_tasks.names()
TRAIN_SCRIPTS = ["1_Science.sh", "2_TextVQA.sh", "3_ImageNet.sh", "4_GQA.sh", "5_VizWiz.sh", "6_Grounding.sh",
                 "7_vqav2.sh", "8_OCRVQA.sh"]
EVAL_SCRIPTS = ["1_eval_sqa.sh", "2_eval_textqa.sh", "3_eval_ImageNet.sh", "4_eval_gqa.sh", "5_eval_vizwiz.sh",
                "6_eval_grounding.sh", "7_eval_vqav2.sh", "8_eval_ocrvqa.sh"]
UPSTREAM_FILES = ["adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json"]
BIN = Path(sys.executable).parent
LOSS_LINE = re.compile(r"\{'loss': ")

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not (BIN / "deepspeed").exists(),
                                reason="needs bash and the deepspeed launcher in the test interpreter's bin/")


def bash(script: Path, *args: str, env: dict, cwd: Path = REPO, check: bool = True,
         timeout: int = 900) -> subprocess.CompletedProcess:
    return run_command(["bash", script, *args], env=env, cwd=cwd, timeout=timeout, check=check)


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def loss_lines(text: str) -> int:
    return len(LOSS_LINE.findall(text))


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny) -> dict:
    """The mini-CoIN data and the environment every script of this module runs with."""
    root = tmp_path_factory.mktemp("coin_chain")
    data = root / "data"
    subprocess.run([sys.executable, str(REPO / "playground" / "make_mini_coin.py"), "--output_dir", str(data),
                    "--seed", "0", "--train_per_task", "4", "--test_per_task", "3", "--pretrain_size", "0",
                    "--tasks", *TASKS], cwd=REPO, check=True, capture_output=True, env=subprocess_env())
    env = subprocess_env(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHON=sys.executable, DEEPSPEED=BIN / "deepspeed",
        BASE_LM=tiny / "lm", VISION_TOWER=tiny / "vision", PRETRAIN_PROJECTOR=tiny / "mm_projector.bin",
        DATA_ROOT=data, IMAGE_ROOT=data / "cl_dataset", TASKS=" ".join(TASKS),
        OUTPUT_ROOT=root / "checkpoints", RESULT_ROOT=root / "results",
        NUM_GPUS=1, MASTER_PORT=free_port(), BF16="False", MAX_STEPS=2, SAVE_STEPS=1, LORA_R=4, LORA_ALPHA=8,
        BATCH_SIZES="2 2 2 2 2 2 2 2", NUM_WORKERS=0, EVAL_BATCH_SIZE=16, MAX_NEW_TOKENS=8)
    return {"root": root, "env": env, "ckpt": root / "checkpoints", "results": root / "results"}


def train_and_evaluate(world: dict, method: str, tasks: list[str], next_task: bool) -> dict:
    env = dict(world["env"], NEXT_TASK="1" if next_task else "0", METHOD=method, TASKS=" ".join(tasks))
    started = time.time()
    train = bash(COIN / f"Train_{method}" / "Train_all.sh", env=env)
    matrix = bash(COIN / "Eval" / "eval_matrix.sh", env=env)
    return {"env": env, "tasks": tasks, "train": train, "matrix": matrix, "seconds": time.time() - started,
            "method_dir": world["ckpt"] / method, "results": world["results"] / method}


@pytest.fixture(scope="module")
def lora(world) -> dict:
    """The sequential-LoRA chain over the three tasks and its matrix with the next-task cells."""
    return train_and_evaluate(world, "LoRA", TASKS, next_task=True)


@pytest.fixture(scope="module")
def llaca(world) -> dict:
    """The LLaCA chain over the first two tasks (the EMA'd weights carried from one task to the next)."""
    if importlib.util.find_spec("llava.train.llaca") is None:
        pytest.skip("llava/train/llaca.py (the --llaca training integration) is not there yet")
    return train_and_evaluate(world, "LLaCA", TASKS[:2], next_task=False)


# ------------------------------------------------------------------------------------- the LoRA chain

def check_task_dirs(chain: dict, extra_files: tuple[str, ...] = ()) -> None:
    method_dir, tasks = chain["method_dir"], chain["tasks"]
    for k, task in enumerate(tasks):
        out = method_dir / task
        for name in UPSTREAM_FILES + list(extra_files) + ["DONE"]:
            assert (out / name).is_file(), f"{out} lacks {name}"
        done = (out / "DONE").stat().st_mtime_ns
        newer = [p.name for p in out.iterdir() if p.is_file() and p.stat().st_mtime_ns > done]
        assert not newer, f"{out}: {newer} written after DONE"
        assert (out / "checkpoint-2" / "COMPLETE").is_file()
        marker = (out / "DONE").read_text()
        expected_init = ("pretrain_mm_mlp_adapter " + chain["env"]["PRETRAIN_PROJECTOR"] if k == 0
                         else f"previous_task_model_path {method_dir / tasks[k - 1]}")
        assert f"init={expected_init}\n" in marker
        state = json.loads((out / "trainer_state.json").read_text())
        assert state["global_step"] == 2


def test_lora_chain_task_dirs(lora):
    check_task_dirs(lora)
    # the launcher line each task ran with (first line of its log)
    logs = sorted((lora["method_dir"] / "logs").glob("*.log"))
    assert [p.name.split(".")[0] for p in logs] == sorted(TASKS)
    for log in logs:
        command = log.read_text().splitlines()[0]
        assert "deepspeed --num_gpus 1 --master_port" in command
        assert str(REPO / "llava" / "train" / "train_mem.py") in command
        assert "--llaca False" in command and "--lora_r 4" in command and "--bf16 False" in command


def test_lora_matrix_cells_scored(lora):
    results = lora["results"]
    cells = [(j, i) for j in range(3) for i in range(j + 1)] + [(0, 1), (1, 2)]  # + next-task cells
    for j, i in cells:
        score = json.loads((results / TASKS[j] / TASKS[i] / "score.json").read_text())
        assert score["task"] == TASKS[i] and score["stage"] == TASKS[j]
        assert score["checkpoint"] == str(lora["method_dir"] / TASKS[j])
        assert score["n"] == 3 and 0 <= score["accuracy"] <= 100
        assert (results / TASKS[j] / TASKS[i] / "merge.jsonl").is_file()
        assert (results / TASKS[j] / TASKS[i] / "1_0.jsonl").is_file()
    assert not (results / "ScienceQA" / "ImageNet").exists()  # only j+1, never j+2


def test_lora_summary_and_figures(lora):
    summary = json.loads((lora["results"] / "summary.json").read_text())
    assert summary["tasks"] == TASKS
    matrix = summary["matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    for j in range(3):
        for i in range(3):
            assert (matrix[j][i] is None) == (i > j), (j, i, matrix)
    assert summary["next"][0] is None and None not in summary["next"][1:]
    assert summary["zero_shot"] is None and summary["fwt"] is None  # no zero-shot row in this chain's results
    for figure in ("avg", "new", "forgetting", "bwt", "maa"):
        assert summary[figure] is not None, figure
    for name in ("matrix.png", "curves.png"):
        assert (lora["results"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (lora["results"] / "summary.md").read_text().startswith("# Accuracy matrix")


def test_rerun_train_all_skips_every_finished_task(lora):
    method_dir = lora["method_dir"]
    before = mtimes(method_dir)
    started = time.time()
    proc = bash(COIN / "Train_LoRA" / "Train_all.sh", env=lora["env"])
    assert mtimes(method_dir) == before  # no DONE, weight or log file touched or added
    assert proc.stdout.count("DONE marker present, skipping") == 3
    assert "deepspeed" not in proc.stdout + proc.stderr
    assert time.time() - started < 20


def test_rerun_eval_matrix_redoes_nothing(lora):
    results = lora["results"].parent
    before = mtimes(results)
    proc = bash(COIN / "Eval" / "eval_matrix.sh", env=lora["env"])
    assert mtimes(results) == before
    assert proc.stdout.count("score.json up to date, skipping") == 8
    assert "summary.json is up to date" in proc.stdout


def test_interrupted_task_resumes_from_its_last_complete_checkpoint(lora):
    """ImageNet as if killed after step 1: checkpoint-1 complete, no checkpoint-2, no final weights, no DONE."""
    method_dir = lora["method_dir"]
    out = method_dir / "ImageNet"
    first_state = json.loads((out / "trainer_state.json").read_text())
    shutil.rmtree(out / "checkpoint-2")
    for name in UPSTREAM_FILES + ["DONE", "trainer_state.json"]:
        (out / name).unlink()
    finished = {t: (method_dir / t / "DONE").stat().st_mtime_ns for t in TASKS[:2]}
    logs_before = set((method_dir / "logs").iterdir())

    proc = bash(COIN / "Train_LoRA" / "Train_all.sh", env=lora["env"])

    assert {t: (method_dir / t / "DONE").stat().st_mtime_ns for t in TASKS[:2]} == finished
    new_logs = set((method_dir / "logs").iterdir()) - logs_before
    assert [p.name.split(".")[0] for p in new_logs] == ["ImageNet"]
    log = new_logs.pop().read_text()
    assert f"resuming from {out / 'checkpoint-1'}" in proc.stdout
    assert "--resume_from_checkpoint True" in log.splitlines()[0]
    assert loss_lines(log) == 1  # only step 2 trained; a restart would log steps 1 and 2
    for name in UPSTREAM_FILES + ["DONE"]:
        assert (out / name).is_file()
    assert f"resumed_from={out / 'checkpoint-1'}\n" in (out / "DONE").read_text()
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    first_loss = [h["loss"] for h in first_state["log_history"] if h.get("step") == 1 and "loss" in h]
    resumed_loss = [h["loss"] for h in state["log_history"] if h.get("step") == 1 and "loss" in h]
    assert resumed_loss == first_loss  # step 1 comes from the checkpoint's history


# ------------------------------------------------------------------------------------ the LLaCA chain

def test_llaca_chain_and_matrix(llaca):
    check_task_dirs(llaca, extra_files=("llaca_state.pt",))
    for log in (llaca["method_dir"] / "logs").glob("*.log"):
        assert "--llaca True" in log.read_text().splitlines()[0]
    for j, stage in enumerate(TASKS[:2]):
        for task in TASKS[:j + 1]:
            score = json.loads((llaca["results"] / stage / task / "score.json").read_text())
            assert score["checkpoint"] == str(llaca["method_dir"] / stage)
    summary = json.loads((llaca["results"] / "summary.json").read_text())
    assert summary["tasks"] == TASKS[:2]
    assert [[v is None for v in row] for row in summary["matrix"]] == [[False, True], [False, False]]
    assert (llaca["results"] / "matrix.png").is_file() and (llaca["results"] / "curves.png").is_file()


@pytest.mark.slow
def test_zero_shot_multitask_and_fixed_ema(world, lora):
    """The one-row baselines and the fixed-EMA chain (its first task), and the zero-shot row in the matrix."""
    if importlib.util.find_spec("llava.train.llaca") is None:
        pytest.skip("llava/train/llaca.py (the --llaca training integration) is not there yet")
    env = dict(lora["env"])
    bash(COIN / "Eval" / "eval_zero_shot.sh", env=env)
    zero_model = world["ckpt"] / "Zero_shot"
    assert (zero_model / "config.json").is_file() and (zero_model / "mm_projector.bin").is_file()
    for task in TASKS:
        score = json.loads((world["results"] / "Zero_shot" / task / "score.json").read_text())
        assert score["stage"] == "Zero_shot" and score["checkpoint"] == str(zero_model)
    bash(COIN / "Eval" / "eval_matrix.sh", env=env)  # the summary now has the zero-shot row
    summary = json.loads((lora["results"] / "summary.json").read_text())
    assert None not in summary["zero_shot"] and summary["fwt"] is not None

    env = {k: v for k, v in env.items() if k != "METHOD"}  # each chain's own folder name
    bash(COIN / "Train_Multitask" / "Train_all.sh", env=dict(env, MULTITASK_BATCH_SIZE="2"))
    assert (world["ckpt"] / "Multitask" / "Multitask" / "DONE").is_file()
    bash(COIN / "Eval" / "eval_multitask.sh", env=env)
    for task in TASKS:
        score = json.loads((world["results"] / "Multitask" / task / "score.json").read_text())
        assert score["checkpoint"] == str(world["ckpt"] / "Multitask" / "Multitask")

    bash(COIN / "Train_FixedEMA" / "1_Science.sh", env=env)
    out = world["ckpt"] / "FixedEMA" / "ScienceQA"
    assert (out / "DONE").is_file() and (out / "llaca_state.pt").is_file()
    log = next((world["ckpt"] / "FixedEMA" / "logs").glob("ScienceQA.*.log")).read_text()
    assert "--llaca True --llaca_mode fixed" in log.splitlines()[0] and "'mode': 'fixed'" in log


@pytest.mark.slow
def test_every_eval_script_scores_its_task(tmp_path, tiny):
    """All eight eval scripts (zero-shot model, mini-CoIN of the eight tasks), and a two-chunk run whose merge
    keeps the question order (CoIN's ImageNet scorer pairs answers by position)."""
    data = tmp_path / "data"
    subprocess.run([sys.executable, str(REPO / "playground" / "make_mini_coin.py"), "--output_dir", str(data),
                    "--seed", "1", "--train_per_task", "1", "--test_per_task", "2", "--pretrain_size", "0"],
                   cwd=REPO, check=True, capture_output=True, env=subprocess_env())
    env = subprocess_env(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHON=sys.executable,
        BASE_LM=tiny / "lm", VISION_TOWER=tiny / "vision", PRETRAIN_PROJECTOR=tiny / "mm_projector.bin",
        DATA_ROOT=data, IMAGE_ROOT=data / "cl_dataset", OUTPUT_ROOT=tmp_path / "checkpoints",
        RESULT_ROOT=tmp_path / "results", EVAL_BATCH_SIZE=16, MAX_NEW_TOKENS=8)
    bash(COIN / "Eval" / "eval_zero_shot.sh", env=env)
    zero_model = tmp_path / "checkpoints" / "Zero_shot"
    for task in ALL_TASKS:
        cell = tmp_path / "results" / "Zero_shot" / task
        score = json.loads((cell / "score.json").read_text())
        assert score["task"] == task and score["n"] == 2 and score["checkpoint"] == str(zero_model)
        assert len((cell / "merge.jsonl").read_text().splitlines()) == 2
    env = dict(env, CUDA_VISIBLE_DEVICES="0,1", COMPAT="1", RESULT_ROOT=str(tmp_path / "compat"))
    bash(COIN / "Eval" / "3_eval_ImageNet.sh", "Zero_shot", str(zero_model), env=env)
    cell = tmp_path / "compat" / "Zero_shot" / "ImageNet"
    assert (cell / "2_0.jsonl").is_file() and (cell / "2_1.jsonl").is_file()
    questions = json.loads((data / "Instructions" / "ImageNet" / "test.json").read_text())
    merged = [json.loads(line)["question_id"] for line in (cell / "merge.jsonl").read_text().splitlines()]
    assert merged == [q["question_id"] for q in questions]
    assert json.loads((cell / "score.json").read_text())["n"] == 2


# ------------------------------------------------------------- defaults and errors (no training needed)

FAKE_DEEPSPEED = r"""#!/usr/bin/env bash
# Records its arguments and writes what a finished LoRA task leaves, like the real launcher would.
printf '%s\n' "$*" >> "$FAKE_LOG"
out=""; prev=""
for a in "$@"; do
    if [[ "$prev" == --output_dir ]]; then out="$a"; fi
    prev="$a"
done
mkdir -p "$out"
for f in adapter_config.json adapter_model.safetensors non_lora_trainables.bin config.json llaca_state.pt; do
    echo x > "$out/$f"
done
"""


def published_layout(root: Path) -> None:
    """The default relative paths, under `root` (the directory the scripts run from)."""
    for d in ("checkpoints/Vicuna/vicuna-7b-v1.5", "checkpoints/openai/clip-vit-large-patch14-336", "cl_dataset"):
        (root / d).mkdir(parents=True)
    projector = root / "checkpoints/Instruction/Only_Pretrain_1.5_7b/llava-vicuna-2-7b-chat-pretrain/mm_projector.bin"
    projector.parent.mkdir(parents=True)
    projector.write_bytes(b"x")
    for task in ALL_TASKS + ["Multitask"]:
        (root / "playground/Instructions" / task).mkdir(parents=True)
        (root / "playground/Instructions" / task / "train.json").write_text("[]")


def clean_env(tmp_path: Path, **extra) -> dict:
    fake = tmp_path / "fake_deepspeed"
    fake.write_text(FAKE_DEEPSPEED)
    fake.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "DEEPSPEED": str(fake),
           "FAKE_LOG": str(tmp_path / "calls.txt")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def test_published_defaults_of_the_llaca_chain(tmp_path):
    published_layout(tmp_path)
    bash(COIN / "Train_LLaCA" / "Train_all.sh", env=clean_env(tmp_path), cwd=tmp_path)
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert len(calls) == 8
    for k, (call, task, batch) in enumerate(zip(calls, ALL_TASKS, [16, 16, 20, 8, 16, 8, 10, 12])):
        assert call.startswith(f"--include localhost:0-7 --master_port 29600 {REPO}/llava/train/train_mem.py "
                               f"--deepspeed {REPO}/scripts/zero2.json ")
        for flags in ("--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5",
                      "--model_name_or_path ./checkpoints/Vicuna/vicuna-7b-v1.5",
                      "--version v1", f"--data_path ./playground/Instructions/{task}/train.json",
                      "--image_folder ./cl_dataset --vision_tower ./checkpoints/openai/clip-vit-large-patch14-336",
                      "--mm_projector_type mlp2x_gelu --mm_vision_select_layer -2",
                      "--image_aspect_ratio pad --group_by_modality_length True --bf16 True",
                      f"--output_dir ./checkpoints/CoIN/LLaCA/{task} --num_train_epochs 1",
                      f"--per_device_train_batch_size {batch} ", "--gradient_accumulation_steps 1",
                      "--learning_rate 2e-4 --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine",
                      "--tf32 True --model_max_length 2048 --gradient_checkpointing True",
                      "--save_strategy epoch", "--llaca True"):
            assert flags in call, (task, flags, call)
        assert "--max_steps" not in call and "--resume_from_checkpoint" not in call
        if k == 0:
            assert "--pretrain_mm_mlp_adapter ./checkpoints/Instruction/Only_Pretrain_1.5_7b/" in call
            assert "--previous_task_model_path" not in call
        else:
            assert f"--previous_task_model_path ./checkpoints/CoIN/LLaCA/{ALL_TASKS[k - 1]} " in call
        assert (tmp_path / "checkpoints/CoIN/LLaCA" / task / "DONE").is_file()


def test_chain_flags_fixed_ema_lora_multitask_and_overrides(tmp_path):
    published_layout(tmp_path)
    env = clean_env(tmp_path, TASKS="GQA VizWiz", NUM_GPUS=2, MAX_STEPS=5, LR="1e-4", BATCH_SIZES="1 2 3 4 5 6 7 8",
                    EXTRA_TRAIN_ARGS="--llaca_variant paper --seed 7", LORA_TARGETS="q_proj,v_proj")
    bash(COIN / "Train_FixedEMA" / "Train_all.sh", env=env, cwd=tmp_path)
    bash(COIN / "Train_LoRA" / "4_GQA.sh", env=env, cwd=tmp_path)
    bash(COIN / "Train_Multitask" / "Train_all.sh", env=env, cwd=tmp_path)
    gqa, vizwiz, lora_gqa, multitask = (tmp_path / "calls.txt").read_text().splitlines()
    assert gqa.startswith("--num_gpus 2 --master_port 29600 ")
    assert "--pretrain_mm_mlp_adapter" in gqa and "--per_device_train_batch_size 4 " in gqa
    assert "--previous_task_model_path ./checkpoints/CoIN/FixedEMA/GQA " in vizwiz
    assert "--per_device_train_batch_size 5 " in vizwiz
    for call in (gqa, vizwiz):
        assert "--llaca True --llaca_mode fixed" in call
        assert call.endswith("--llaca_variant paper --seed 7")
        assert "--max_steps 5" in call and "--learning_rate 1e-4" in call and "--lora_targets q_proj,v_proj" in call
    assert "--llaca False" in lora_gqa and "--output_dir ./checkpoints/CoIN/LoRA/GQA " in lora_gqa
    assert "--data_path ./playground/Instructions/Multitask/train.json" in multitask
    assert "--output_dir ./checkpoints/CoIN/Multitask/Multitask " in multitask
    assert "--per_device_train_batch_size 16 " in multitask and "--llaca False" in multitask


@pytest.mark.parametrize("script, extra, message", [
    ("Train_LoRA/2_TextVQA.sh", {}, "TextVQA starts from ScienceQA, which has not finished"),
    ("Train_LoRA/1_Science.sh", {"TASKS": "ScienceQA Foo"}, "unknown task 'Foo'"),
    ("Train_LoRA/4_GQA.sh", {"TASKS": "ScienceQA TextVQA"}, "task GQA is not in TASKS"),
    ("Train_LoRA/1_Science.sh", {"BATCH_SIZES": "16 16"}, "BATCH_SIZES must hold 8 values"),
    ("Train_LoRA/1_Science.sh", {"BASE_LM": "./nowhere"}, "base language model (BASE_LM) not found: ./nowhere"),
    ("Train_LoRA/1_Science.sh", {"DATA_ROOT": "./nowhere"}, "training data of ScienceQA not found"),
    ("Eval/1_eval_sqa.sh", {}, "model directory (MODELPATH) not found: ./checkpoints/CoIN/LLaCA/OCRVQA"),
    ("Eval/eval_matrix.sh", {"METHOD": "LoRA"}, "no finished stage in ./checkpoints/CoIN/LoRA"),
    ("Eval/eval_multitask.sh", {}, "multitask model not finished"),
])
def test_clear_errors(tmp_path, script, extra, message):
    published_layout(tmp_path)
    proc = bash(COIN / script, env=clean_env(tmp_path, **extra), cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_run_chain_rejects_an_unknown_chain(tmp_path):
    proc = bash(COIN / "run_chain.sh", "Foo", env=clean_env(tmp_path), cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no chain 'Foo'" in proc.stderr


def test_script_names_and_layout():
    """CoIN's script names; each per-task training script shows its train_mem.py command with its flags; the
    chain and eval scripts stay thin (their logic is llava/coin/, tested directly in test_coin_logic.py)."""
    for chain in ("Train_LLaCA", "Train_LoRA", "Train_FixedEMA", "Train_LLaCA_grouped"):
        assert sorted(p.name for p in (COIN / chain).iterdir()) == sorted(TRAIN_SCRIPTS + ["Train_all.sh"])
    assert [p.name for p in (COIN / "Train_Multitask").iterdir()] == ["Train_all.sh"]
    assert sorted(p.name for p in (COIN / "Eval").iterdir()) == sorted(
        EVAL_SCRIPTS + ["eval_all.sh", "eval_matrix.sh", "eval_zero_shot.sh", "eval_multitask.sh"])
    commands = [COIN / chain / name for chain in ("Train_LLaCA", "Train_LoRA", "Train_FixedEMA", "Train_LLaCA_grouped")
                for name in TRAIN_SCRIPTS] + [COIN / "Train_Multitask" / "Train_all.sh"]
    logic = []  # lines with a condition, loop or function: only run_chain.sh's two conditions
    for script in COIN.rglob("*.sh"):
        text = script.read_text()
        code = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert "<<" not in text and " - " not in text, f"{script}: no heredocs, no `python -`"
        logic += [line for line in code if {"if", "for", "while", "case", "function", "||"} & set(line.split())
                  or "()" in line]
        if script.parent == COIN and script.name != "run_chain.sh":  # sourced by the others
            assert not text.startswith("#!") and len(code) <= 4, script
        elif script in commands:
            assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text, script
            assert ' "$COIN_ROOT/llava/train/train_mem.py" \\\n    --deepspeed "$DS_CONFIG" \\\n' in text, script
            assert len(code) == 39 and sum(line.startswith("    --") for line in code) == 33, script
        else:
            assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text, script
            assert len(code) <= 7, f"{script}: chain and eval scripts stay thin"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script
    assert len(logic) == 2, logic
