"""Does a mini-CoIN base see what the tasks ask about? scripts/mini/pretrain.sh runs this on every base it builds.

The base is asked, in its own pre-training wording, about freshly drawn one-object scenes (never task data): "Which
shape is <colour>?", "Which colour does the <shape> have?" and "Where is the <colour> <shape>?". The scores are the
fractions of answers naming the right shape, colour, and place (row and column). Why it matters: whether the tiny
LM learns to read shapes during alignment is a coin flip between seeds, and even between thread counts on one seed
(results/mini_coin/tuning.md); a base that has not learned it names the shape of the only object in the picture at
chance (~25-40 %) and leaves every task question about a shape at chance. pretrain.sh retries the alignment with another
seed when the shape score is below its threshold (the place score is reported, not required).

    python playground/mini_base_check.py --base DIR [--count 64 --seed 0 --threads 1 --select_layer -2]  (one JSON line)
"""
from __future__ import annotations

import argparse
import json
import random
import types
from pathlib import Path

import torch

from playground.mini_coin.drawing import Painter
from playground.mini_coin.scene import place_phrase, sample_scene


def check_base(base: Path, count: int = 64, seed: int = 0, select_layer: int = -2, batch_size: int = 32) -> dict:
    """{"shape", "colour", "place": fraction right, "count": scenes per question}; greedy answers; select_layer as
    --mm_vision_select_layer (the layer the base was trained to read)."""
    from transformers import AutoTokenizer

    from llava.eval.run_vqa import build_prompt, generate_batch
    from llava.mm_utils import image_pixels
    from llava.model.builder import build_llava, load_image_processor, load_pretrained_projector

    tokenizer = AutoTokenizer.from_pretrained(base / "lm")
    model = build_llava(str(base / "lm"), str(base / "vision"), tokenizer, select_layer=select_layer)
    load_pretrained_projector(model, str(base / "mm_projector.bin"))
    model.config.image_aspect_ratio = "pad"
    model.eval()
    processor = load_image_processor(str(base / "vision"))
    size = model.config.vision_config.image_size
    painter = Painter(size, size // model.config.vision_config.patch_size)
    rng = random.Random(f"mini-base-check/{seed}")
    scenes = [sample_scene(rng, painter.grid, 1, 1)[0] for _ in range(count)]
    images = [image_pixels(painter.scene([item]), processor, "pad") for item in scenes]
    decoding = types.SimpleNamespace(temperature=0, top_p=None, num_beams=1, max_new_tokens=12)
    questions = {"shape": (lambda item: f"Which shape is {item.colour}?", lambda item: item.shape),
                 "colour": (lambda item: f"Which colour does the {item.shape} have?", lambda item: item.colour),
                 "place": (lambda item: f"Where is the {item.colour} {item.shape}?",
                           lambda item: place_phrase(item.row, item.col, painter.grid))}
    scores = {}
    for name, (ask, expected) in questions.items():
        prompts = [build_prompt(ask(item), True, "vicuna_v1") for item in scenes]
        answers = []
        for start in range(0, count, batch_size):
            answers += generate_batch(model, tokenizer, prompts[start:start + batch_size],
                                      images[start:start + batch_size], decoding)
        said = [f" {answer.lower().replace('.', ' ')} " for answer in answers]
        right = sum(f" {expected(item)} " in words for item, words in zip(scenes, said))
        scores[name] = right / count
    return {**scores, "count": count}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="a base directory: lm/, vision/, mm_projector.bin")
    parser.add_argument("--count", type=int, default=64, help="scenes per question")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--select_layer", type=int, default=-2, help="as --mm_vision_select_layer")
    args = parser.parse_args(argv)
    if args.count <= 0:
        parser.error("--count must be > 0")
    missing = [name for name in ("lm", "vision", "mm_projector.bin") if not (args.base / name).exists()]
    if missing:
        parser.error(f"{args.base} is not a base directory: missing {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    print(json.dumps(check_base(args.base, args.count, args.seed, args.select_layer)))


if __name__ == "__main__":
    main()
