"""The CoIN chain's logic (llava/coin/), called directly: the task registry, the settings, a training task's plan
and run (skip, start, resume, outputs, DONE), the grouped chain's decisions, and the evaluation (freshness, the
matrix's cells, chunks, merge, scoring, the summary). The scripts that call it: test_coin_chain.py,
test_coin_grouped.py; that they run as the bash scripts did: test_coin_chain_equivalence.py."""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import run
from llava.coin import cells, evaluation, groups, layout, tasks, training
from llava.coin.console import ChainError
from llava.coin.settings import Settings, SettingsError, from_env
from llava.eval import matrix
from playground.mini_coin.generate import generate
from playground.mini_coin.tasks import SHORT_ANSWER

REPO = Path(__file__).resolve().parents[1]
COIN = REPO / "scripts" / "CoIN"

FAKE_TRAINER = r"""
import os, sys
args = sys.argv[1:]
out = args[args.index("--output_dir") + 1]
os.makedirs(out, exist_ok=True)
print("training", out)
if os.environ.get("FAKE_FAIL"):
    sys.exit(3)
names = ["adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json"]
if "--llaca" in args and args[args.index("--llaca") + 1] == "True" and not os.environ.get("FAKE_NO_STATE"):
    names.append("llaca_state.pt")
for name in names:
    open(os.path.join(out, name), "w").write("x")
"""


def messages() -> tuple[list[str], callable]:
    logged: list[str] = []
    return logged, logged.append


# --------------------------------------------------------------------------------------------- registry

def test_registry_is_coins_order_names_and_files():
    assert tasks.names() == ["ScienceQA", "TextVQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA"]
    assert [t.eval_split for t in tasks.TASKS] == ["test", "val", "test", "test", "val", "test", "val", "test"]
    for task in tasks.TASKS:
        for chain in ("LLaCA", "LoRA", "FixedEMA", "LLaCA_grouped"):
            assert (COIN / f"Train_{chain}" / task.train_script).is_file()
        assert (COIN / "Eval" / task.eval_script).is_file()
        for module in (task.inference, task.scorer):
            assert importlib.util.find_spec(f"llava.eval.CoIN.{module}") is not None, module
    assert tasks.task("ImageNet").scorer == "eval_imagenet"


def test_task_lists_are_checked():
    assert [t.name for t in tasks.parse_task_list(" GQA  ScienceQA ")] == ["GQA", "ScienceQA"]
    for text, message in (("  ", "TASKS is empty"), ("GQA Foo", "unknown task 'Foo' (CoIN tasks: ScienceQA"),
                          ("GQA GQA", "TASKS names GQA twice: GQA GQA")):
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            tasks.parse_task_list(text)


def test_the_matrix_orders_tasks_by_the_registry(tmp_path):
    for stage, task in (("ScienceQA", "ScienceQA"), ("TextVQA", "ScienceQA"), ("TextVQA", "TextVQA")):
        (tmp_path / stage / task).mkdir(parents=True, exist_ok=True)
    assert matrix.chain_tasks(tmp_path, None) == (["ScienceQA", "TextVQA"], 2)


# --------------------------------------------------------------------------------------------- settings

def test_unset_or_empty_settings_are_the_published_protocol():
    s = from_env({"LR": "", "COIN_ROOT": "/repo"}, chain="FixedEMA")
    assert (s.lr, s.mm_projector_lr, s.lora_r, s.lora_alpha, s.epochs, s.bf16, s.tf32) == \
        ("2e-4", "2e-5", "128", "256", "1", "True", "True")
    assert s.batch_sizes == (16, 16, 20, 8, 16, 8, 10, 12) and s.task_names == tuple(tasks.names())
    assert (s.gpus, s.num_gpus, s.master_port, s.ds_config) == \
        ("localhost:0-7", "", "29600", "/repo/scripts/zero2.json")
    assert (s.method, s.output_root, s.result_root, s.zero_shot_model) == \
        ("FixedEMA", "./checkpoints/CoIN", "./results/CoIN", "./checkpoints/CoIN/Zero_shot")
    assert from_env({}).method == "LLaCA"  # the eval scripts' default
    compat = from_env({"COMPAT": "1", "OUTPUT_ROOT": "/out", "METHOD": "Mine"}, chain="LoRA")
    assert (compat.result_root, compat.zero_shot_model, compat.method) == \
        ("./results/CoIN_compat", "/out/Zero_shot", "Mine")
    assert from_env({"EXTRA_TRAIN_ARGS": " --seed 7\t--x 'y z'"}).extra_train_args == ("--seed", "7", "--x", "'y", "z'")
    assert from_env({"TASKS": "GQA VizWiz", "BATCH_SIZES": "1 2 3 4 5 6 7 8"}).batch_size(tasks.task("VizWiz")) == 5


@pytest.mark.parametrize("env, message", [
    ({"TASKS": "GQA Foo", "BATCH_SIZES": "1"}, "unknown task 'Foo'"),  # TASKS is checked first
    ({"BATCH_SIZES": "16 16"}, "BATCH_SIZES must hold 8 values"),
    ({"BATCH_SIZES": "1 2 3 4 5 6 7 08"}, "BATCH_SIZES: '08' is not a positive integer"),
    ({"FORCE": "yes"}, "FORCE must be 0 or 1, got 'yes'"),
    ({"KEEP_CHECKPOINTS": "2"}, "KEEP_CHECKPOINTS must be 0 or 1"),
    ({"NEW_GROUP_INIT": "paper"}, "NEW_GROUP_INIT must be previous or fresh, got 'paper'"),
    ({"GROUP_EMA": "some"}, "GROUP_EMA must be reused, all or none"),
    ({"ROUTE": "test"}, "ROUTE must be owner or test_file"),
])
def test_unusable_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        from_env(env)


# ------------------------------------------------------------------------------------------- a task's plan

@pytest.fixture
def inputs(tmp_path) -> Settings:
    """The published layout under tmp_path, as absolute paths: every input a training task checks."""
    for d in ("lm", "vision", "images"):
        (tmp_path / d).mkdir()
    for name in tasks.names() + [tasks.MULTITASK]:
        (tmp_path / "data" / "Instructions" / name).mkdir(parents=True)
        (tmp_path / "data" / "Instructions" / name / "train.json").write_text("[]")
    (tmp_path / "projector.bin").write_text("x")
    (tmp_path / "zero2.json").write_text("{}")
    return Settings(base_lm=str(tmp_path / "lm"), vision_tower=str(tmp_path / "vision"),
                    pretrain_projector=str(tmp_path / "projector.bin"), data_root=str(tmp_path / "data"),
                    image_root=str(tmp_path / "images"), ds_config=str(tmp_path / "zero2.json"),
                    output_root=str(tmp_path / "out"), method="LoRA", tasks=tuple(tasks.parse_task_list("GQA VizWiz")))


def mark_done(s: Settings, name: str) -> None:
    os.makedirs(layout.task_dir(s, name), exist_ok=True)
    Path(layout.task_dir(s, name), "DONE").write_text("task=x\n")


def test_first_task_starts_from_the_projector_the_next_from_its_predecessor(inputs):
    s = inputs
    first = training.plan_task(s, "LoRA", "GQA", decide=False, log=print)
    assert (first.init_flag, first.init_path, first.batch, first.resume) == \
        ("pretrain_mm_mlp_adapter", s.pretrain_projector, "8", None)
    assert (first.output_dir, first.data) == (f"{s.output_root}/LoRA/GQA", f"{s.data_root}/Instructions/GQA/train.json")
    with pytest.raises(ChainError, match="VizWiz starts from GQA, which has not finished .*/LoRA/GQA/DONE missing"):
        training.plan_task(s, "LoRA", "VizWiz", decide=False, log=print)
    mark_done(s, "GQA")
    second = training.plan_task(s, "LoRA", "VizWiz", decide=False, log=print)
    assert (second.init_flag, second.init_path, second.previous) == \
        ("previous_task_model_path", layout.task_dir(s, "GQA"), "GQA")
    logged, log = messages()
    assert training.plan_task(s, "LoRA", "GQA", decide=False, log=log) is None
    assert logged == [f"LoRA/GQA: DONE marker present, skipping (delete {s.output_root}/LoRA/GQA to train it again)"]


@pytest.mark.parametrize("change, message", [
    ({"tasks": "ScienceQA"}, "task GQA is not in TASKS (ScienceQA); the chain's order comes from TASKS"),
    ({"pretrain_projector": "/nowhere.bin"}, "pretrain projector (PRETRAIN_PROJECTOR) not found: /nowhere.bin "
                                             "(LLaVA-1.5's pretrain-only mm_projector.bin)"),
    ({"instruction_type": "Other"}, "/data/Other/GQA/train.json (DATA_ROOT="),
    ({"image_root": "/nowhere"}, "image folder (IMAGE_ROOT) not found: /nowhere (the CoIN images, cl_dataset)"),
    ({"base_lm": "/nowhere"}, "base language model (BASE_LM) not found: /nowhere"),
    ({"vision_tower": "/nowhere"}, "vision tower (VISION_TOWER) not found: /nowhere"),
    ({"ds_config": "/nowhere.json"}, "DeepSpeed config (DS_CONFIG) not found: /nowhere.json"),
])
def test_a_task_that_cannot_start_says_why(inputs, change, message):
    if "tasks" in change:
        change = {"tasks": tuple(tasks.parse_task_list(change["tasks"]))}
    with pytest.raises(ChainError) as error:
        training.plan_task(replace(inputs, **change), "LoRA", "GQA", decide=False, log=print)
    assert message in str(error.value)


def test_an_unfinished_task_resumes_from_its_newest_complete_checkpoint(inputs):
    out = Path(layout.task_dir(inputs, "GQA"))
    for step, complete in ((5, True), (40, True), (100, False)):
        (out / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (out / f"checkpoint-{step}" / "COMPLETE").write_text(f"{step}\n")
    plan = training.plan_task(inputs, "LoRA", "GQA", decide=False, log=print)
    assert plan.resume == f"{out}/checkpoint-40"


def test_the_chain_loads_neither_torch_nor_transformers():
    """Each per-task script runs the chain's logic twice: it shares the checkpoint rule with the trainer
    (llava.train.checkpoints) without the trainer's imports."""
    code = ("import sys, llava.coin.training, llava.coin.evaluation; "
            "print([m for m in ('torch', 'transformers') if m in sys.modules])")
    assert run([sys.executable, "-c", code]).stdout.strip() == "[]"


def test_the_plan_as_shell_variables(inputs):
    s = replace(inputs, num_gpus="2", save_steps="50", lora_targets="q_proj,v_proj",
                extra_train_args=("--seed", "7", "--note", "it's"))
    plan = replace(training.plan_task(s, "LoRA", "GQA", decide=False, log=print), resume="x/checkpoint-3")
    code = training.shell_code(s, plan, ["[CoIN 12:00:00] a message"])
    shown = subprocess.run(["bash", "-c", code + 'printf "<%s>" "$INIT_FLAG" "$TASK_BATCH" "$SAVE_STRATEGY" '
                            '"${GPU_FLAGS[@]}" "${SAVE_STEPS_FLAG[@]}" "${MAX_STEPS_FLAG[@]}" "${LORA_TARGETS_FLAG[@]}" '
                            '"${RESUME_FLAG[@]}" "${EXTRA_TRAIN_FLAGS[@]}"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == ("[CoIN 12:00:00] a message\n<--pretrain_mm_mlp_adapter><8><steps><--num_gpus><2><--save_steps><50>"
                     "<--lora_targets><q_proj,v_proj><--resume_from_checkpoint><True><--seed><7><--note><it's>")
    default = training.shell_code(inputs, training.plan_task(inputs, "LoRA", "GQA", decide=False, log=print), [])
    shown = subprocess.run(["bash", "-c", default + 'printf "<%s>" "$SAVE_STRATEGY" "${GPU_FLAGS[@]}" '
                            '"${RESUME_FLAG[@]}"'], capture_output=True, text=True, check=True).stdout
    assert shown == "<epoch><--include><localhost:0-7>"


def test_the_multitask_run_is_one_task_from_the_projector(inputs):
    s = replace(inputs, method="Multitask", multitask_batch_size="12")
    plan = training.plan_task(s, "Multitask", "Multitask", decide=False, log=print)
    assert (plan.output_dir, plan.batch, plan.init_flag) == (f"{s.output_root}/Multitask/Multitask", "12",
                                                             "pretrain_mm_mlp_adapter")
    assert plan.data.endswith("/Instructions/Multitask/train.json")
    with pytest.raises(ChainError, match="the Multitask chain has one task"):
        training.plan_task(s, "Multitask", "GQA", decide=False, log=print)


# ------------------------------------------------------------------------------------------- a task's run

@pytest.fixture
def trainer(tmp_path) -> list[str]:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return [sys.executable, str(script)]


def command(s: Settings, trainer: list[str], task: str, *flags: str) -> list[str]:
    return [*trainer, "--output_dir", layout.task_dir(s, task), *flags]


def test_a_run_logs_its_command_checks_its_outputs_and_writes_done_last(inputs, trainer, capfd):
    s = replace(inputs, keep_checkpoints=False)
    Path(layout.task_dir(s, "GQA"), "checkpoint-7").mkdir(parents=True)
    launch = command(s, trainer, "GQA", "--llaca", "True")
    logged, log = messages()
    training.run_task(s, "LoRA", "GQA", launch, log)
    out = Path(layout.task_dir(s, "GQA"))
    logs = list(Path(layout.logs_dir(s)).iterdir())
    assert len(logs) == 1 and logs[0].name.startswith("GQA.")
    assert logs[0].read_text().splitlines() == [shlex.join(launch), f"training {out}"]
    assert f"training {out}" in capfd.readouterr().out  # the run's output goes through
    assert logged == [f"LoRA/GQA: training from pretrain_mm_mlp_adapter {s.pretrain_projector}",
                      f"LoRA/GQA: batch 8 per device, log {logs[0]}", f"LoRA/GQA: done -> {out}"]
    marker = (out / "DONE").read_text().splitlines()
    assert marker[:3] == ["task=GQA", "method=LoRA", f"init=pretrain_mm_mlp_adapter {s.pretrain_projector}"]
    assert marker[3].startswith("finished=20") and marker[4] == f"log={logs[0]}"
    assert not (out / "checkpoint-7").exists()  # KEEP_CHECKPOINTS=0
    assert all(p.stat().st_mtime_ns <= (out / "DONE").stat().st_mtime_ns for p in out.iterdir())
    training.run_task(s, "LoRA", "GQA", launch, log)  # DONE: nothing runs
    assert logged[-1].startswith("LoRA/GQA: DONE marker present, skipping")
    assert len(list(Path(layout.logs_dir(s)).iterdir())) == 1


@pytest.mark.parametrize("flags, env, message", [
    (("--llaca", "True"), {"FAKE_NO_STATE": "1"},
     "training exited 0 but .*/GQA lacks llaca_state.pt; not marking it DONE"),
    (("--llaca", "False", "--dema", "True"), {}, "lacks llaca_state.pt"),  # --dema, the alias, wins
    ((), {"FAKE_FAIL": "1"}, r"LoRA/GQA: training failed \(log: .*\). Rerun the same script to continue"),
])
def test_a_run_without_its_outputs_is_not_done(inputs, trainer, monkeypatch, flags, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ChainError, match=message):
        training.run_task(inputs, "LoRA", "GQA", command(inputs, trainer, "GQA", *flags), print)
    assert not layout.is_done(layout.task_dir(inputs, "GQA"))


def test_a_run_writing_elsewhere_is_refused(inputs, trainer):
    with pytest.raises(ChainError, match="the command's --output_dir is /elsewhere, not the task's folder"):
        training.run_task(inputs, "LoRA", "GQA", [*trainer, "--output_dir", "/elsewhere"], print)


def test_flag_values_as_the_trainer_reads_them():
    assert training.flag_value(["--a", "1", "--b", "--a=2"], "--a") == "2"
    assert training.flag_value(["--llaca", "--seed", "1"], "--llaca") == "True"
    assert training.flag_value(["--llaca"], "--llaca") == "True" and training.flag_value([], "--llaca") is None
    assert training.llaca_on(["--llaca", "true"]) and not training.llaca_on(["--llaca", "True", "--dema", "no"])
    assert not training.llaca_on(["--llaca_mode", "fixed"])


def test_the_chain_runs_each_tasks_script_in_order_and_stops_at_a_failure(inputs, tmp_path, capfd):
    chain = tmp_path / "chain"
    chain.mkdir()
    for task in tasks.TASKS:
        status = 4 if task.name == "VizWiz" else 0
        (chain / task.train_script).write_text(f"echo ran {task.name}; exit {status}\n")
    s = replace(inputs, tasks=tuple(tasks.parse_task_list("GQA ScienceQA VizWiz OCRVQA")))
    assert training.run_chain(s, str(chain), print) == 4
    assert [line for line in capfd.readouterr().out.splitlines() if line.startswith("ran")] == \
        ["ran GQA", "ran ScienceQA", "ran VizWiz"]


# ------------------------------------------------------------------------------------------ grouped chain

@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("mini")
    generate(data, seed=0, train_per_task=2, test_per_task=3, pretrain_size=0,
                tasks=("ScienceQA", "TextVQA", "ImageNet", "GQA"))
    return data


def test_the_grouped_plan_decides_each_group_and_commits_after_training(inputs, mini, trainer):
    s = replace(inputs, method="G", data_root=str(mini), image_root=str(mini / "cl_dataset"),
                tasks=tuple(tasks.parse_task_list("ScienceQA TextVQA GQA")))
    expected = {"ScienceQA": (1, True, None, False, 1), "TextVQA": (2, True, "ScienceQA", False, 2),
                "GQA": (2, False, "TextVQA", True, 2)}  # group, new, starts from, --llaca, groups in the codebook
    for name, (group, new, start, llaca, known) in expected.items():
        logged, log = messages()
        plan = training.plan_task(s, "LLaCA_grouped", name, decide=True, log=log)
        record = json.loads(Path(groups.group_file(s, name)).read_text())
        assert (record["group"], record["new"], record["init_task"], record["llaca"]) == (group, new, start, llaca)
        assert (plan.group.group, plan.group.llaca) == (group, llaca)
        assert plan.init_path == (layout.task_dir(s, start) if start else s.pretrain_projector)
        assert logged[-1].startswith(f"G/{name}: group {group} ({'new' if new else 'reused'}), from ")
        training.run_task(s, "LLaCA_grouped", name, command(s, trainer, name, "--llaca", str(llaca)), print)
        assert f"group={group} new={new} llaca={llaca}" in Path(layout.task_dir(s, name), "DONE").read_text()
        copy = Path(groups.codebook_copy(s, name))
        assert sorted(p.name for p in copy.iterdir()) == [f"instruction_{k}.txt" for k in range(1, known + 1)]
    assert Path(groups.codebook_copy(s, "GQA"), "instruction_2.txt").read_text() == SHORT_ANSWER + "\n"
    # a retrained stage: the working codebook is reset to the copy of the stage before it
    Path(layout.live_codebook(s), "instruction_9.txt").write_text("stray\n")
    logged, log = messages()
    groups.sync_codebook(s, "TextVQA", log)
    assert logged == [f"G: codebook {layout.live_codebook(s)} reset to the copy of stage TextVQA"]
    assert sorted(os.listdir(layout.live_codebook(s))) == ["instruction_1.txt", "instruction_2.txt"]


# -------------------------------------------------------------------------------------------- evaluation

def test_a_result_is_fresh_when_newer_than_its_models_done_marker(tmp_path):
    model, result = tmp_path / "model", tmp_path / "score.json"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result.write_text(json.dumps({"checkpoint": str(model)}))
    assert cells.is_fresh(str(result), str(model))  # no DONE: compared with config.json
    os.utime(model / "config.json", ns=(result.stat().st_mtime_ns + 10**9,) * 2)
    assert not cells.is_fresh(str(result), str(model))
    (model / "DONE").write_text("")
    os.utime(model / "DONE", ns=(result.stat().st_mtime_ns - 10**9,) * 2)
    assert cells.is_fresh(str(result), str(model)) and cells.is_scored(str(tmp_path), str(model))
    assert not cells.is_scored(str(tmp_path), str(tmp_path))  # made from another model
    result.write_text("{broken")
    assert not cells.is_scored(str(tmp_path), str(model))


def test_one_chunk_per_device_entry():
    assert evaluation.devices(Settings()) == ["0"]
    assert evaluation.devices(Settings(cuda_visible_devices="0,1,")) == ["0", "1"]
    assert evaluation.devices(Settings(cuda_visible_devices="2,,3")) == ["2", "", "3"]


def test_the_matrix_cells_of_the_finished_stages(inputs):
    s = replace(inputs, tasks=tuple(tasks.parse_task_list("ScienceQA TextVQA ImageNet GQA")))
    with pytest.raises(ChainError, match=r"no finished stage in .*/LoRA \(no ScienceQA/DONE\); train the chain first"):
        cells.matrix_cells(s, print)
    for name in ("ScienceQA", "TextVQA", "GQA"):
        mark_done(s, name)
    logged, log = messages()
    found = cells.matrix_cells(replace(s, next_task=True), log)
    assert [(c.stage, c.task) for c in found] == [("ScienceQA", "ScienceQA"), ("ScienceQA", "TextVQA"),
                                                  ("TextVQA", "ScienceQA"), ("TextVQA", "TextVQA"),
                                                  ("TextVQA", "ImageNet")]
    assert all(c.model == layout.task_dir(s, c.stage) and c.route == "" for c in found)
    assert logged == ["matrix: warning: GQA is DONE but the earlier stage ImageNet is not; stages after ImageNet are "
                      "left out", "matrix LoRA: 2 of 4 stages done (ScienceQA TextVQA)"]


FAKE_PYTHON = """#!/usr/bin/env bash
if [[ "$2" == llava.eval.CoIN.model_* ]]; then
    shift 2
    if [[ "$CUDA_VISIBLE_DEVICES" == "${FAKE_BROKEN_CHUNK:-none}" ]]; then echo "out of memory"; exit 1; fi
    exec "$REAL_PYTHON" -c '
import json, sys
a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
qs = json.load(open(a["--question-file"]))[int(a["--chunk-idx"])::int(a["--num-chunks"])]
with open(a["--answers-file"], "w") as f:
    for q in qs:
        f.write(json.dumps({"question_id": q["question_id"], "prompt": "", "text": q["answer"]}) + "\\n")
' "$@"
fi
exec "$REAL_PYTHON" "$@"
"""


@pytest.fixture
def evaluated(tmp_path, mini, monkeypatch) -> Settings:
    """ImageNet's cell at stage ScienceQA of a finished 'model', with a stand-in inference that answers right."""
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    monkeypatch.setenv("REAL_PYTHON", sys.executable)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    s = Settings(python=str(fake), data_root=str(mini), image_root=str(mini / "cl_dataset"), base_lm=str(tmp_path),
                 output_root=str(tmp_path / "out"), result_root=str(tmp_path / "results"), method="LoRA",
                 cuda_visible_devices="0,1", tasks=tuple(tasks.parse_task_list("ScienceQA ImageNet")))
    mark_done(s, "ScienceQA")
    Path(layout.task_dir(s, "ScienceQA"), "config.json").write_text("{}")
    return s


def test_a_cell_is_generated_in_chunks_merged_in_order_scored_and_then_skipped(evaluated):
    s = evaluated
    logged, log = messages()
    evaluation.evaluate_cell(s, "ImageNet", "ScienceQA", "", log)
    cell = Path(layout.cell_dir(s, "ScienceQA", "ImageNet"))
    score = json.loads((cell / "score.json").read_text())
    assert (score["accuracy"], score["n"], score["checkpoint"]) == (100.0, 3, layout.task_dir(s, "ScienceQA"))
    merged = [json.loads(line)["question_id"] for line in (cell / "merge.jsonl").read_text().splitlines()]
    questions = json.loads(Path(layout.eval_file(s, tasks.task("ImageNet"))).read_text())
    assert merged == [q["question_id"] for q in questions[0::2]] + [q["question_id"] for q in questions[1::2]]
    assert logged[-1] == f"eval ImageNet @ ScienceQA: Accuracy: 100.00% -> {cell}/score.json"
    evaluation.evaluate_cell(s, "ImageNet", "ScienceQA", "", log)
    assert logged[-1] == f"eval ImageNet @ ScienceQA: score.json up to date, skipping ({cell})"
    target = Path(layout.cell_dir(s, "ImageNet", "ImageNet"))
    cells.copy_answers(s, str(cell), str(target), layout.task_dir(s, "ScienceQA"), log)
    assert sorted(p.name for p in target.iterdir()) == ["2_0.jsonl", "2_1.jsonl"]


def test_a_failed_chunk_shows_its_log_and_scores_nothing(evaluated, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_BROKEN_CHUNK", "1")
    with pytest.raises(ChainError, match="eval ImageNet @ ScienceQA: generation failed"):
        evaluation.evaluate_cell(evaluated, "ImageNet", "ScienceQA", "", print)
    err = capsys.readouterr().err
    assert "[CoIN] chunk 1 of ImageNet @ ScienceQA failed; last lines of " in err and "out of memory" in err
    assert not Path(layout.cell_dir(evaluated, "ScienceQA", "ImageNet"), "score.json").exists()


def test_a_model_still_training_is_not_evaluated(evaluated):
    model = Path(layout.task_dir(evaluated, "ScienceQA"))
    (model / "DONE").unlink()
    (model / "adapter_config.json").write_text("{}")
    with pytest.raises(ChainError, match="has no DONE marker: its training has not finished"):
        evaluation.evaluate_cell(evaluated, "ImageNet", "ScienceQA", "", print)


def test_the_summary_is_rewritten_only_when_a_score_is_newer(tmp_path):
    s = Settings(result_root=str(tmp_path), method="LoRA", tasks=tuple(tasks.parse_task_list("ScienceQA")))
    cell = Path(layout.cell_dir(s, "ScienceQA", "ScienceQA"))
    cell.mkdir(parents=True)
    (cell / "score.json").write_text(json.dumps({"task": "ScienceQA", "accuracy": 50.0, "checkpoint": "m"}))
    logged, log = messages()
    cells.summarize(s, layout.results_dir(s), log)
    summary = Path(layout.results_dir(s), "summary.json")
    assert json.loads(summary.read_text())["avg"] == 50.0
    cells.summarize(s, layout.results_dir(s), log)
    assert logged[-1] == f"matrix: {summary} is up to date"
    os.utime(cell / "score.json", ns=(summary.stat().st_mtime_ns + 10**9,) * 2)
    cells.summarize(s, layout.results_dir(s), log)
    assert logged[-1].startswith("matrix: wrote ")
