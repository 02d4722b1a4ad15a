"""The README's first command, shrunk to a few steps: `bash scripts/demo.sh` sets up, builds the mini base
(scripts/mini/pretrain.sh), runs sequential LoRA and LLaCA through the CoIN chain scripts (scripts/mini/run.sh),
writes the report and prints the two methods' Avg / New / Forgetting. A second run reuses the cached base and the
finished chains."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import REPO, run, subprocess_env

TASKS = ["ScienceQA", "ImageNet"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = dict(DEMO_TASKS=" ".join(TASKS), DEMO_DATA_ARGS="--train_per_task 12 --test_per_task 6",
               PRETRAIN_ALIGN_STEPS=2, PRETRAIN_STEPS=2, PRETRAIN_SIZE=64, DATA_DIR=root / "pretrain_data",
               VISION_STEPS=2, BASE_TRIES=2,
               MINI_CACHE=root / "cache", RUNS=root / "runs", DEMO_OUT=root / "report", MAX_STEPS=2,
               EVAL_BATCH_SIZE=6, MAX_NEW_TOKENS=4)
    first = run(["bash", "scripts/demo.sh"], timeout=1200, **env)
    return root, env, first


def test_demo_prints_both_methods_and_writes_the_report(demo):
    root, _, first = demo
    lines = first.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:4] == ["method", "Avg", "New", "Forgetting"])
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[header + 1:header + 3]}
    assert set(rows) == {"LoRA", "LLaCA"}
    noise = lines[header + 3]
    assert noise.startswith("One seed: differences under") and "results/mini_coin/report.md" in noise
    report = json.loads((root / "report" / "report.json").read_text())
    (run_dir,) = (root / "runs").glob("seed0-*")  # keyed by the data
    for method, (avg, new, forgetting) in rows.items():
        summary = json.loads((run_dir / "results" / method / "summary.json").read_text())
        assert len(summary["matrix"]) == len(TASKS)
        assert avg == pytest.approx(summary["avg"], abs=0.05)
        assert new == pytest.approx(summary["new"], abs=0.05)
        assert forgetting == pytest.approx(summary["forgetting"], abs=0.05)
        assert report["table"][method]["seeds"] == 1
    for name in ("report.md", "figures.png", "forgetting_curves.png", "coefficients.png"):
        assert (root / "report" / name).stat().st_size > 0
    assert (run_dir / "checkpoints" / "LLaCA" / "ImageNet" / "llaca_log.jsonl").is_file()
    assert "[demo] report:" in first.stdout


def test_the_base_is_checked_and_a_blind_one_retried_then_kept_with_a_warning(demo):
    """Two steps per phase give a base that names no shape: pretrain.sh retries with the next seed, then keeps the
    best try and says so; pretrain_settings.json records both checks."""
    root, _, first = demo
    out = first.stderr  # run.sh shows pretrain.sh's log on stderr
    assert "vision: playground/mini_vision_pretrain.py, 2 steps" in out
    assert "alignment (try 1 of 2, seed 0)" in out and "alignment (try 2 of 2, seed 1)" in out
    assert "WARNING: none of 2 tries passed the base check (0.9); keeping try" in out and "answered worse" in out
    (base,) = (root / "cache").glob("base-*")
    settings = json.loads((base / "pretrain_settings.json").read_text())
    assert len(settings["base_checks"]) == 2 and settings["training_seed"] in (0, 1)
    assert all(0 <= check["shape"] <= 1 and check["count"] == 64 for check in settings["base_checks"])


def test_demo_rerun_reuses_the_base_and_the_chains(demo):
    root, env, first = demo
    (run_dir,) = (root / "runs").glob("seed0-*")
    summary = run_dir / "results" / "LoRA" / "summary.json"
    before = summary.stat().st_mtime_ns
    # As a user keeps it: `bash scripts/demo.sh >> demo.log 2>&1`; nothing inside may reopen and truncate that log.
    log_file = root / "demo.log"
    log_file.write_text("earlier output\n")
    with open(log_file, "a") as out:
        rerun = subprocess.run(["bash", "scripts/demo.sh"], cwd=REPO, env=subprocess_env(**env), stdout=out,
                               stderr=subprocess.STDOUT, timeout=600)
    output = log_file.read_text()
    assert rerun.returncode == 0, output[-6000:]
    assert output.startswith("earlier output\n") and "[demo] mini-CoIN on" in output
    assert "reusing the cached base" in output
    for method in ("LoRA", "LLaCA"):
        log = (run_dir / "logs" / f"{method}.log").read_text()
        first_run, second_run = log.split(f"scripts/mini/run.sh: seed 0 {method} ===")[1:]  # appended, not replaced
        assert f"eval {TASKS[-1]} @ {TASKS[-1]}: Accuracy" in first_run
        for task in TASKS:
            assert f"{method}/{task}: DONE marker present, skipping" in second_run
        assert log.count("score.json up to date, skipping") == 3  # the lower triangle of 2 tasks
    assert summary.stat().st_mtime_ns == before
    assert Path(root / "report" / "report.md").is_file()


def test_runs_of_another_base_are_not_reused(demo):
    root, env, _ = demo
    (base,) = (root / "cache").glob("base-*")
    other = root / "other_base"
    shutil.copytree(base, other)
    projector = torch.load(other / "mm_projector.bin", weights_only=True)
    torch.save({name: weights + 1.0 for name, weights in projector.items()}, other / "mm_projector.bin")
    (run_dir,) = (root / "runs").glob("seed0-*")
    recorded = (run_dir / "BASE").read_text().strip()
    args = ["bash", "scripts/mini/run.sh", "--seeds", "1", "--methods", "LoRA", "--runs", str(root / "runs"),
            "--no-report"]
    same = dict(env, MINI_TASKS=env["DEMO_TASKS"], MINI_DATA_ARGS=env["DEMO_DATA_ARGS"])
    refused = run(args, check=False, timeout=300, **same, MINI_BASE=other)
    assert refused.returncode != 0
    assert f"{run_dir}/BASE records '{recorded}' where this run has" in refused.stderr
    assert "(another base, or other settings)" in refused.stderr
    assert "--runs DIR" in refused.stderr
    # The same weights at another path are the same base: its finished chains are reused.
    (other / "mm_projector.bin").write_bytes((base / "mm_projector.bin").read_bytes())
    reused = run(args, timeout=300, **same, MINI_BASE=other)
    assert "LoRA/ImageNet: DONE marker present, skipping" in (run_dir / "logs" / "LoRA.log").read_text()
    assert (run_dir / "BASE").read_text().strip() == recorded and "done: seed 0 LoRA" in reused.stdout


def test_another_multitask_budget_keeps_the_chains_and_refuses_the_multitask_row(demo):
    """RUN_DIR/SETTINGS records the chains' settings, RUN_DIR/MULTITASK the multitask row's: a run with another
    MULTITASK_EPOCHS reuses the finished chains and refuses only a multitask row made with the recorded budget."""
    root, env, _ = demo
    (run_dir,) = (root / "runs").glob("seed0-*")
    recorded = "9 epoch(s) of the union, batch 16; --gradient_checkpointing False --llaca_log_steps 5"
    (run_dir / "MULTITASK").write_text(recorded + "\n")
    same = dict(env, MINI_TASKS=env["DEMO_TASKS"], MINI_DATA_ARGS=env["DEMO_DATA_ARGS"], MULTITASK_EPOCHS=4)
    args = ["bash", "scripts/mini/run.sh", "--seeds", "1", "--runs", str(root / "runs"), "--no-report", "--methods"]
    try:
        reused = run(args + ["LoRA"], timeout=300, **same)
        assert "done: seed 0 LoRA" in reused.stdout
        assert "LoRA/ImageNet: DONE marker present, skipping" in (run_dir / "logs" / "LoRA.log").read_text()
        refused = run(args + ["LoRA Multitask"], check=False, timeout=300, **same)
        assert refused.returncode != 0 and "start: seed 0" not in refused.stdout
        assert f"{run_dir}/MULTITASK records '{recorded}' where this run has '4 epoch(s) of the union" in refused.stderr
        assert f"remove {run_dir}/MULTITASK, {run_dir}/checkpoints/Multitask and" in refused.stderr
    finally:
        (run_dir / "MULTITASK").unlink()


def test_a_report_carries_the_rows_these_runs_lack_from_an_earlier_one(demo):
    # `scripts/mini/run.sh --report-only --carry EARLIER.json`: the runs hold LoRA; FixedEMA comes from the earlier
    # report, marked †.
    root, env, _ = demo
    earlier = json.loads((root / "report" / "report.json").read_text())
    earlier["table"]["FixedEMA"] = {**earlier["table"]["LoRA"], "forgetting": [12.5, 0.0, 1]}
    (root / "earlier.json").write_text(json.dumps(earlier))
    same = dict(env, MINI_TASKS=env["DEMO_TASKS"], MINI_DATA_ARGS=env["DEMO_DATA_ARGS"])
    out = root / "carried"
    done = run(["bash", "scripts/mini/run.sh", "--seeds", "1", "--methods", "LoRA FixedEMA", "--runs",
                str(root / "runs"), "--out", str(out), "--report-only", "--carry", str(root / "earlier.json")],
               timeout=300, **same)
    assert f"carried from {root / 'earlier.json'}: FixedEMA" in done.stdout
    text = (out / "report.md").read_text()
    assert "| FixedEMA † |" in text and "| LoRA |" in text and "12.5" in text
