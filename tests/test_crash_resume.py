"""A two-process ZeRO-2 LLaCA run killed with SIGKILL after a checkpoint, then resumed with
`--resume_from_checkpoint True`, ends with the weights, EMA and coefficient log of an uninterrupted run."""
import json
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import REPO, run, subprocess_env, train_args, write_colour_data
from test_llaca_train import saved_trainables

ARGS = ["--deepspeed", "scripts/zero2.json", "--llaca", "True", "--llaca_log_steps", "3", "--save_strategy", "steps",
        "--save_steps", "6", "--num_train_epochs", "4", "--per_device_train_batch_size", "2", "--learning_rate", "5e-3",
        "--mm_projector_lr", "5e-3", "--seed", "7"]


def launcher(port: int) -> list[str]:
    return ["deepspeed", "--num_gpus", "2", "--master_port", str(port), "llava/train/train_mem.py"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_colour_data(tmp_path_factory.mktemp("crash"), n_train=48)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, tiny, data):
    from llava.train.dist import free_port

    full = tmp_path / "full"
    run([*launcher(free_port()), *train_args(tiny, data, full, *ARGS)])

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*launcher(free_port()), *train_args(tiny, data, killed, *ARGS)], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = killed / "checkpoint-12" / "COMPLETE"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the run never wrote checkpoint-12"
    assert not (killed / "llaca_state.pt").exists(), "the run finished before the kill: nothing was interrupted"

    run([*launcher(free_port()), *train_args(tiny, data, killed, *ARGS, "--resume_from_checkpoint", "True")])

    a, b = saved_trainables(full), saved_trainables(killed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6)
    sa = torch.load(full / "llaca_state.pt", weights_only=False)
    sb = torch.load(killed / "llaca_state.pt", weights_only=False)
    assert sa["counts"] == sb["counts"] and sa["steps"] == sb["steps"]
    for name in sa["ema"]:
        torch.testing.assert_close(sb["ema"][name], sa["ema"][name], rtol=1e-5, atol=1e-6)
    log_a = [json.loads(x) for x in (full / "llaca_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (killed / "llaca_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log_b] == [x["step"] for x in log_a]
    for x, y in zip(log_a, log_b):
        for ta, tb in zip(x["tensors"], y["tensors"]):
            assert ta["name"] == tb["name"]
            for key in ("raw", "applied", "d", "G", "H"):
                if ta[key] is None:
                    assert tb[key] is None
                else:
                    assert tb[key] == pytest.approx(ta[key], rel=1e-4, abs=1e-9)
