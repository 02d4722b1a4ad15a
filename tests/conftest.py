"""Shared fixtures: a tiny model built offline, a small colour-naming dataset in LLaVA and CoIN formats, and a
runner for training / eval commands in subprocesses (the way users run them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
QUESTION = "What colour is it?\nAnswer the question using a single word or phrase."


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd: list[str], timeout: int = 600, check: bool = True, **env) -> subprocess.CompletedProcess:
    """Run a command from the repository root; on failure show its output tail."""
    proc = subprocess.run(cmd, cwd=REPO, env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """`python -m llava.model.tiny --size test` output: lm/, vision/, mm_projector.bin."""
    from llava.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), size="test", seed=0)


def write_colour_data(root: Path, n_train: int = 32, n_test: int = 12) -> Path:
    """root/train.json (LLaVA conversations), root/test.json (CoIN question list), root/img/*.png."""
    from PIL import Image

    (root / "img").mkdir(parents=True, exist_ok=True)
    names = list(COLOURS)
    train, test = [], []
    for i in range(n_train + n_test):
        colour = names[i % len(names)]
        Image.new("RGB", (40 + i % 5, 30), COLOURS[colour]).save(root / "img" / f"{i}.png")
        if i < n_train:
            train.append({"id": f"r{i}", "image": f"img/{i}.png", "conversations": [
                {"from": "human", "value": "<image>\n" + QUESTION}, {"from": "gpt", "value": colour}]})
        else:
            test.append({"question_id": i, "image": f"img/{i}.png", "text": QUESTION, "answer": colour})
    (root / "train.json").write_text(json.dumps(train))
    (root / "test.json").write_text(json.dumps(test))
    return root


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory) -> Path:
    return write_colour_data(tmp_path_factory.mktemp("colour"))


def train_args(tiny: Path, data: Path, output_dir: Path, *extra: str) -> list[str]:
    """An upstream-style LoRA command line for the tiny model (the CoIN scripts' flags, small sizes)."""
    return [
        "--model_name_or_path", str(tiny / "lm"), "--vision_tower", str(tiny / "vision"),
        "--pretrain_mm_mlp_adapter", str(tiny / "mm_projector.bin"), "--mm_projector_type", "mlp2x_gelu",
        "--mm_vision_select_layer", "-2", "--mm_use_im_start_end", "False", "--mm_use_im_patch_token", "False",
        "--version", "v1", "--data_path", str(data / "train.json"), "--image_folder", str(data),
        "--image_aspect_ratio", "pad", "--group_by_modality_length", "True",
        "--lora_enable", "True", "--lora_r", "8", "--lora_alpha", "16", "--mm_projector_lr", "2e-4",
        "--output_dir", str(output_dir), "--num_train_epochs", "1", "--per_device_train_batch_size", "4",
        "--evaluation_strategy", "no", "--save_strategy", "no", "--learning_rate", "2e-3", "--weight_decay", "0.",
        "--warmup_ratio", "0.03", "--lr_scheduler_type", "cosine", "--logging_steps", "1", "--tf32", "True",
        "--model_max_length", "2048", "--dataloader_num_workers", "0", "--lazy_preprocess", "True",
        "--report_to", "none", *extra,
    ]


PYTHON = sys.executable
