"""A tiny colour-naming dataset (solid-colour images; "What colour is it?" -> red/green/blue) in LLaVA and CoIN
formats, and an upstream-style LoRA command line for the tiny models: what the tests, the GPU smoke check and
quick experiments train on. A model that learns it answers the test file correctly; chance is 33 %."""
from __future__ import annotations

import json
from pathlib import Path

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
QUESTION = "What colour is it?\nAnswer the question using a single word or phrase."


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
