"""DeepSpeed configs as users have them: an `optimizer` and/or `scheduler` block (upstream's zero3_offload.json:
ZeRO-3, optimizer and parameters offloaded to CPU, DeepSpeed's CPU Adam, WarmupLR) trains with and without
--llaca. DeepSpeed builds its optimizer from our param groups, so the projector keeps its own learning rate.

The upstream file makes DeepSpeed compile its CPU Adam op once per machine (about a minute, cached in
~/.cache/torch_extensions); the other tests use `torch_adam`, which needs no build."""
from __future__ import annotations

import glob
import json

import pytest
import torch

from conftest import PYTHON, run, train_args

LR, PROJECTOR_LR = 2e-3, 2e-4


def optimizer_groups(checkpoint) -> list[dict]:
    """lr and weight decay of each param group in a DeepSpeed checkpoint's optimizer state (rank 0)."""
    path = glob.glob(str(checkpoint / "global_step*" / "*optim_states.pt"))[0]
    state = torch.load(path, map_location="cpu", weights_only=False)["optimizer_state_dict"]
    state = state.get("base_optimizer_state") or state.get("optimizer_state_dict")    # ZeRO-1/2, ZeRO-3
    return [{"lr": g["lr"], "weight_decay": g["weight_decay"]} for g in state["param_groups"]]


def train(tiny, data, out, config, *extra):
    return run([PYTHON, "-m", "llava.train.train",
                *train_args(tiny, data, out, "--deepspeed", str(config), "--max_steps", "4", "--save_strategy",
                            "steps", "--save_steps", "3", "--weight_decay", "0.01", *extra)])


@pytest.fixture(scope="module")
def own_blocks(tmp_path_factory):
    """zero2.json plus an optimizer block (torch's AdamW: nothing to compile) and a WarmupDecayLR block."""
    config = json.loads(open("scripts/zero2.json").read())
    config["optimizer"] = {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto",
                                                       "weight_decay": "auto", "torch_adam": True}}
    config["scheduler"] = {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto",
                                                               "warmup_num_steps": "auto", "total_num_steps": "auto"}}
    path = tmp_path_factory.mktemp("ds") / "zero2_blocks.json"
    path.write_text(json.dumps(config))
    return path


def test_optimizer_and_scheduler_blocks_keep_the_param_groups(tiny, colour_data, own_blocks, tmp_path):
    proc = train(tiny, colour_data, tmp_path / "run", own_blocks, "--llaca", "True")
    groups = optimizer_groups(tmp_path / "run" / "checkpoint-3")
    lrs = sorted({g["lr"] for g in groups})
    assert len(lrs) == 2 and lrs[1] / lrs[0] == pytest.approx(LR / PROJECTOR_LR)       # projector at a tenth
    assert {g["weight_decay"] for g in groups} == {0.0, 0.01}                          # biases/norms without decay
    assert "scheduler block (WarmupDecayLR) replaces --lr_scheduler_type cosine" in proc.stderr
    assert (tmp_path / "run" / "llaca_state.pt").is_file() and (tmp_path / "run" / "llaca_drift.json").is_file()


@pytest.mark.parametrize("scheduler, groups_kept", [
    ({"type": "WarmupCosineLR", "params": {"total_num_steps": 4, "warmup_num_steps": 1}}, True),
    ({"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 2}}, False),
])
def test_other_schedulers_keep_the_groups_or_say_they_do_not(tiny, colour_data, own_blocks, tmp_path, scheduler,
                                                              groups_kept):
    config = json.loads(own_blocks.read_text())
    config["scheduler"] = scheduler
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = train(tiny, colour_data, tmp_path / "run", path)
    lrs = {g["lr"] for g in optimizer_groups(tmp_path / "run" / "checkpoint-3")}
    assert len(lrs) == (2 if groups_kept else 1)
    assert ("--mm_projector_lr 0.0002 is not applied" in proc.stderr) == (not groups_kept)


@pytest.mark.parametrize("llaca", ["True", "False"])
def test_upstream_zero3_offload_config(tiny, colour_data, tmp_path, llaca):
    out = tmp_path / "run"
    train(tiny, colour_data, out, "scripts/zero3_offload.json", "--llaca", llaca)
    lrs = sorted({g["lr"] for g in optimizer_groups(out / "checkpoint-3")})
    assert lrs[1] / lrs[0] == pytest.approx(LR / PROJECTOR_LR)
    assert (out / "adapter_model.safetensors").is_file() and (out / "non_lora_trainables.bin").is_file()
    if llaca == "True":
        state = torch.load(out / "llaca_state.pt", weights_only=False)
        assert state["steps"] == 4 and state["counts"]["skipped"] == 0
        drift = json.loads((out / "llaca_drift.json").read_text())
        assert drift["moved"] > 0 and drift["followed"] > 0
