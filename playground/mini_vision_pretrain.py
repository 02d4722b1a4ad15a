"""The vision phase of the mini-CoIN base (scripts/mini/pretrain.sh step 2b, VISION_STEPS > 0): teach the untrained
tower to tell shapes (and letters) apart before any captioning, the stand-in for CLIP's own pre-training.

Why: captioning alone leaves the tower nearly blind to shape. Measured on the base built without this phase
(results/mini_coin/tuning.md): its tower separates two colours of one cell by ~31 units and two shapes of one colour
by ~4, its projector output carries shape in 0.3 % of its variance, and the base names the shape of the only object
in a scene at chance (25 %), so the tasks that ask about a named shape in a scene (GQA, VQAv2's "Is there a
cross?") stay near chance even jointly trained. With this phase and the tower frozen in alignment, bases read shapes
on some seeds and not on others (tuning.md), so scripts/mini/pretrain.sh checks each base and retries.

What: random mini-CoIN images from the generator's painter (playground/mini_coin/drawing.py), one label per cell of
the patch grid (3x3 for mini): scenes (1-4 objects) label every cell's shape (4 + empty) and colour (6 + empty);
signs and book covers (half of each batch, when their words have one letter per cell) label every cell's letter (or
none); every patch is also labelled with its own place (cell index), at a lower weight (--place_weight): without it
the tower's output holds no position at all (a linear probe finds the cell 12 % of the time) and the bases cannot
tell columns apart, at full weight position takes half of the features' variance and crowds out shape (tuning.md).
Linear heads on the patch features of layer `--select_layer` (the layer the LLaVA projector reads) are trained with
cross-entropy, then thrown away; the tower is written back in place (config, weights, image processor), ready for
scripts/mini/pretrain.sh's alignment phase (which keeps it frozen by default: ALIGN_TOWER=False).

    python playground/mini_vision_pretrain.py --vision_tower DIR --steps 300 [--batch_size 64 --lr 1e-3 --seed 0]
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from playground.mini_coin.drawing import Painter
from playground.mini_coin.scene import sample_book, sample_scene
from playground.mini_coin.vocabulary import BOOK_AUTHORS, BOOK_TITLES, COLOUR_NAMES, SHAPES, SIGN_WORDS

IGNORE = -100  # a label the loss skips (cross_entropy's ignore_index)


@dataclass(frozen=True)
class VisionPretrainConfig:
    """vision_tower: a CLIPVisionModel directory, rewritten in place; steps of batch_size images at lr (AdamW,
    cosine decay); select_layer indexes the tower's hidden states like --mm_vision_select_layer; place_weight scales
    the loss of the head that tells each patch where it is. The scenes' grid is the tower's patch grid
    (image_size / patch_size cells per side: one patch per cell)."""

    vision_tower: Path
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    select_layer: int = -2
    place_weight: float = 0.3


WORDS = tuple(word.upper() for word in SIGN_WORDS + BOOK_TITLES) + tuple(a.split()[-1].upper() for a in BOOK_AUTHORS)
LETTERS = sorted({char for word in WORDS for char in word})


def reads_per_cell(grid: int) -> bool:
    """Signs and covers carry one letter per cell only when their words are `grid` letters long."""
    return all(len(word) == grid for word in WORDS)


def labelled_batch(rng: random.Random, painter: Painter, count: int) -> tuple[list, dict[str, torch.Tensor]]:
    """count images and their per-cell labels {"shape", "colour", "letter", "place"}, each [count, grid*grid] in
    reading order: shape index (len(SHAPES) = empty), colour index (len(COLOUR_NAMES) = empty), letter index
    (len(LETTERS) = none), the cell's own index (where it is); IGNORE where a label does not apply (shapes on a
    sign, letters are 'none' in a scene)."""
    grid = painter.grid
    cells = grid * grid
    labels = {name: torch.full((count, cells), IGNORE) for name in ("shape", "colour", "letter")}
    labels["place"] = torch.arange(cells).repeat(count, 1)
    images, texts = [], reads_per_cell(grid)
    for i in range(count):
        if texts and rng.random() < 0.5:
            images.append(_text_image(rng, painter, labels["letter"][i]))
            continue
        labels["shape"][i], labels["colour"][i], labels["letter"][i] = len(SHAPES), len(COLOUR_NAMES), len(LETTERS)
        objects = sample_scene(rng, grid, 1, 4)
        images.append(painter.scene(objects))
        for item in objects:
            cell = item.row * grid + item.col
            labels["shape"][i, cell] = SHAPES.index(item.shape)
            labels["colour"][i, cell] = COLOUR_NAMES.index(item.colour)
    return images, labels


def _text_image(rng: random.Random, painter: Painter, letters: torch.Tensor):
    """A sign (its word across the middle row) or a book cover (title on the top row, surname on the bottom row);
    fills `letters` [grid*grid] in place."""
    grid = painter.grid
    letters[:] = len(LETTERS)
    if rng.random() < 0.5:
        word = rng.choice(SIGN_WORDS)
        rows = {grid // 2: word.upper()}
        image = painter.sign(word, rng.choice(COLOUR_NAMES), rng)
    else:
        book = sample_book(rng)
        rows = {0: book.title, grid - 1: book.author.split()[-1].upper()}
        image = painter.book(book)
    for row, text in rows.items():
        for col, char in enumerate(text):
            letters[row * grid + col] = LETTERS.index(char)
    return image


def to_pixels(images: list, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] normalised like the CLIP image processor (images already at the tower's size)."""
    stacked = torch.from_numpy(np.stack([np.asarray(image, dtype=np.float32) for image in images]))
    return (stacked.permute(0, 3, 1, 2) / 255.0 - mean) / std


def pretrain_tower(config: VisionPretrainConfig) -> dict:
    """Train the tower in config.vision_tower on per-cell labels; returns each head's mean accuracy over its last
    20 batches {"shape", "colour", "place"[, "letter"]} (the images are fresh every step, so these are held-out
    figures)."""
    from transformers import CLIPImageProcessorPil, CLIPVisionModel

    torch.manual_seed(config.seed)
    tower = CLIPVisionModel.from_pretrained(config.vision_tower)
    processor = CLIPImageProcessorPil.from_pretrained(config.vision_tower)
    size, patch = tower.config.image_size, tower.config.patch_size
    if size % patch:
        raise ValueError(f"{config.vision_tower}: {size} px images do not split into {patch} px patches")
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    hidden = tower.config.hidden_size
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(hidden, len(SHAPES) + 1),
                                 "colour": torch.nn.Linear(hidden, len(COLOUR_NAMES) + 1),
                                 "letter": torch.nn.Linear(hidden, len(LETTERS) + 1),
                                 "place": torch.nn.Linear(hidden, (size // patch) ** 2)})
    params = list(tower.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    rng, painter = random.Random(config.seed), Painter(size, size // patch)
    tower.train()
    recent: dict[str, list[float]] = {name: [] for name in heads}
    progress = tqdm(range(config.steps), desc="vision pre-training", mininterval=5)
    for _ in progress:
        images, labels = labelled_batch(rng, painter, config.batch_size)
        states = tower(to_pixels(images, mean, std), output_hidden_states=True).hidden_states[config.select_layer]
        patches = states[:, 1:].reshape(-1, hidden)  # drop CLS: the projector reads patches only
        loss = 0.0
        for name, head in heads.items():
            target = labels[name].reshape(-1)
            scored = target != IGNORE
            if not scored.any():
                continue
            logits = head(patches[scored])
            weight = config.place_weight if name == "place" else 1.0
            loss = loss + weight * torch.nn.functional.cross_entropy(logits, target[scored])
            recent[name] = (recent[name] + [(logits.argmax(-1) == target[scored]).float().mean().item()])[-20:]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"vision pre-training: loss is {loss.item()} (lr {config.lr} too high?)")
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        shown = {name: f"{np.mean(values):.2f}" for name, values in recent.items() if values}
        progress.set_postfix(loss=f"{loss.item():.3f}", **shown, refresh=False)  # shown at tqdm's own pace
    tower.save_pretrained(config.vision_tower)
    processor.save_pretrained(config.vision_tower)
    return {name: float(np.mean(values)) for name, values in recent.items() if values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vision_tower", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=VisionPretrainConfig.steps)
    parser.add_argument("--batch_size", type=int, default=VisionPretrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=VisionPretrainConfig.lr)
    parser.add_argument("--seed", type=int, default=VisionPretrainConfig.seed)
    parser.add_argument("--select_layer", type=int, default=VisionPretrainConfig.select_layer)
    parser.add_argument("--place_weight", type=float, default=VisionPretrainConfig.place_weight,
                        help="weight of the where-is-this-patch loss (0: none)")
    config = VisionPretrainConfig(**vars(parser.parse_args(argv)))
    if config.steps <= 0 or config.batch_size <= 0:
        parser.error("--steps and --batch_size must be > 0")
    accuracy = pretrain_tower(config)
    scores = ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items())
    print(f"[mini-vision] {config.steps} steps: per-cell accuracy {scores} (last 20 batches); "
          f"tower written to {config.vision_tower}")


if __name__ == "__main__":
    main()
