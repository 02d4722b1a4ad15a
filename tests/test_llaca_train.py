"""LLaCA inside train.py: the final save holds the EMA, the plugin state is in every checkpoint, the coefficient log
is written, and a resumed run ends exactly where an unsplit run does."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from conftest import PYTHON, run, train_args

LLACA = ["--llaca", "True", "--llaca_log_steps", "2", "--save_strategy", "steps", "--save_steps", "4",
         "--num_train_epochs", "1", "--learning_rate", "5e-3", "--mm_projector_lr", "5e-3"]


def train(tiny, data, out, *extra):
    return run([PYTHON, "-m", "llava.train.train", *train_args(tiny, data, out, *LLACA, *extra)])


def saved_trainables(path):
    """name -> tensor of a LoRA directory, named as the PEFT model names its parameters."""
    out = {}
    for key, value in load_file(path / "adapter_model.safetensors").items():
        out[key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")] = value
    from llava.model.convert import upstream_to_hf_key

    for key, value in torch.load(path / "non_lora_trainables.bin").items():
        out[upstream_to_hf_key(key)] = value
    return out


@pytest.fixture(scope="module")
def unsplit(tiny, colour_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("llaca") / "run"
    train(tiny, colour_data, out)
    return out


def test_final_save_holds_the_ema_and_checkpoints_the_raw_weights(unsplit):
    state = torch.load(unsplit / "llaca_state.pt", weights_only=False)
    saved = saved_trainables(unsplit)
    assert saved.keys() == state["ema"].keys()
    for name, ema in state["ema"].items():
        torch.testing.assert_close(saved[name], ema, rtol=0, atol=0)
    raw = saved_trainables(unsplit / "checkpoint-8")  # saved by the Trainer before the swap
    assert any(not torch.equal(raw[n], state["ema"][n]) for n in raw)
    assert (unsplit / "checkpoint-4" / "llaca_state.pt").is_file() and (unsplit / "checkpoint-4" / "COMPLETE").is_file()


def test_coefficient_log(unsplit):
    lines = [json.loads(line) for line in (unsplit / "llaca_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2, 4, 6, 8]
    last = lines[-1]
    assert {"raw_median", "raw_p10", "raw_p90", "raw_min", "raw_max", "applied_median", "in_range", "fallback",
            "skipped"} <= set(last["summary"])
    tensor = last["tensors"][0]
    assert set(tensor) == {"name", "numel", "raw", "applied", "d", "G", "H"}
    counts = last["summary"]
    assert counts["in_range"] + counts["fallback"] + counts["skipped"] == 7 * len(last["tensors"])  # 8 steps, 1st creates
    history = json.loads((unsplit / "trainer_state.json").read_text())["log_history"]
    assert any("llaca/raw_median" in entry for entry in history)
    # the coefficient log does not take the place of the loss log (--logging_steps 1: every step has its loss)
    assert sorted(entry["step"] for entry in history if "loss" in entry) == list(range(1, 9))


def test_resume_equals_the_unsplit_run(unsplit, tiny, colour_data, tmp_path):
    resumed = tmp_path / "run"
    resumed.mkdir()
    shutil.copytree(unsplit / "checkpoint-4", resumed / "checkpoint-4")
    lines = (unsplit / "llaca_log.jsonl").read_text().splitlines(keepends=True)
    (resumed / "llaca_log.jsonl").write_text("".join(lines[:4]) + lines[4][:20])  # killed at step 6, mid-line
    train(tiny, colour_data, resumed, "--resume_from_checkpoint", "True")
    a, b = saved_trainables(unsplit), saved_trainables(resumed)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-6, atol=1e-7)
    sa = torch.load(unsplit / "llaca_state.pt", weights_only=False)
    sb = torch.load(resumed / "llaca_state.pt", weights_only=False)
    assert sa["counts"] == sb["counts"] and sa["steps"] == sb["steps"]
    for key in ("ema", "prev_grad"):
        for name in sa[key]:
            torch.testing.assert_close(sb[key][name], sa[key][name], rtol=1e-6, atol=1e-7)
    log_a = [json.loads(x) for x in (unsplit / "llaca_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (resumed / "llaca_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log_b] == [x["step"] for x in log_a]
    nan = float("nan")
    for x, y in zip(log_a, log_b):
        ya = {k: nan if v is None else v for k, v in y["summary"].items()}
        xa = {k: nan if v is None else v for k, v in x["summary"].items()}
        assert xa == pytest.approx(ya, rel=1e-5, nan_ok=True)


def test_resume_from_a_checkpoint_without_plugin_state_is_refused(unsplit, tiny, colour_data, tmp_path):
    resumed = tmp_path / "run"
    shutil.copytree(unsplit / "checkpoint-4", resumed / "checkpoint-4")
    (resumed / "checkpoint-4" / "llaca_state.pt").unlink()
    proc = run([PYTHON, "-m", "llava.train.train", *train_args(tiny, colour_data, resumed, *LLACA,
                                                                 "--resume_from_checkpoint", "True")], check=False)
    assert proc.returncode != 0 and "llaca_state.pt: missing" in proc.stderr


def test_incomplete_checkpoint_is_not_resumed(unsplit, tiny, colour_data, tmp_path):
    resumed = tmp_path / "run"
    shutil.copytree(unsplit / "checkpoint-4", resumed / "checkpoint-4")
    (resumed / "checkpoint-4" / "COMPLETE").unlink()
    proc = run([PYTHON, "-m", "llava.train.train", *train_args(tiny, colour_data, resumed, *LLACA,
                                                                 "--resume_from_checkpoint", str(resumed / "checkpoint-4"))],
               check=False)
    assert proc.returncode != 0 and "not a complete checkpoint" in proc.stderr


def test_resume_from_the_last_checkpoint_trains_nothing_more(unsplit, tiny, colour_data, tmp_path):
    """--max_steps 4 inside an 8-step epoch, resumed from checkpoint-4: no fifth step; the EMA of step 4 is saved."""
    resumed = tmp_path / "run"
    shutil.copytree(unsplit / "checkpoint-4", resumed / "checkpoint-4")
    train(tiny, colour_data, resumed, "--max_steps", "4", "--resume_from_checkpoint", "True")
    assert json.loads((resumed / "trainer_state.json").read_text())["global_step"] == 4
    ema = torch.load(unsplit / "checkpoint-4" / "llaca_state.pt", weights_only=False)["ema"]
    saved = saved_trainables(resumed)
    for name, value in ema.items():
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)


def test_drift_is_written_before_the_swap(unsplit):
    """llaca_drift.json: how far the task moved the weights from where it started, how much of that the EMA
    followed (the saved weights are the EMA: their distance from the start over the raw weights')."""
    drift = json.loads((unsplit / "llaca_drift.json").read_text())
    assert drift["steps"] == 8 and drift["ema_unchanged"] is None
    assert drift["moved"] > 0 and 0 < drift["followed"] < 1
    state = torch.load(unsplit / "llaca_state.pt", weights_only=False)
    raw = saved_trainables(unsplit / "checkpoint-8")
    start = state["theta0"]
    moved = sum(float((raw[n] - start[n]).abs().sum()) for n in raw)
    followed = sum(float((state["ema"][n] - start[n]).abs().sum()) for n in raw)
    assert drift["moved_l1"] == pytest.approx(moved, rel=1e-5)
    assert drift["followed"] == pytest.approx(followed / moved, rel=1e-5)


def test_released_arithmetic_through_train_py(tiny, colour_data, tmp_path):
    out = tmp_path / "released"
    train(tiny, colour_data, out, "--llaca_arithmetic", "released")
    state = torch.load(out / "llaca_state.pt", weights_only=False)
    assert state["config"]["arithmetic"] == "released" and state["config"]["ema_dtype"] == "bfloat16"
    assert all(e.dtype == torch.bfloat16 for e in state["ema"].values())
    drift = json.loads((out / "llaca_drift.json").read_text())
    assert 0 <= drift["ema_unchanged"] <= 1
    saved = saved_trainables(out)
    for name, ema in state["ema"].items():              # the bf16 EMA, swapped in, saved exactly
        torch.testing.assert_close(saved[name], ema.float(), rtol=0, atol=0)
