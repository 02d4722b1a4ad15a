"""Writing mini-CoIN: its settings (MiniCoinConfig), the per-task instruction files with their images and
annotations, the multitask union, the pre-training set and the metadata file. Every (task, split) and the
pre-training set draw from their own random stream seeded with (seed, name)."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from llava.coin import tasks as coin_tasks
from playground.mini_coin.drawing import Painter
from playground.mini_coin.formats import (INTEGER_IDS, Annotations, eval_record, image_relpath, numeric_id,
                                          train_record, write_json)
from playground.mini_coin.pretraining import PRETRAIN_MAKERS, pretrain_choice
from playground.mini_coin.tasks import (INSTRUCTION_LINES, SHARED_SOURCES, SHORT_ANSWER_TASKS, TASK_MAKERS, Example,
                                        task_prompt)
from playground.mini_coin.vocabulary import (BOOK_AUTHORS, BOOK_GENRES, BOOK_TITLES, COLOUR_NAMES, OBJECTS, SHAPES,
                                             SIGN_WORDS)


@dataclass(frozen=True)
class MiniCoinConfig:
    """output_dir: root of the dataset; counts are records per task and split (val and test get test_per_task
    each; train gets train_counts[task] where given, else train_per_task); shared[task] = {source: fraction}: that
    share of a short-answer task's training records asks a source task's questions in the task's own wording
    (sources: the other short-answer tasks and ImageNet, whose question is asked the short-answer way; test files
    stay the task's own); pretrain_choices: the share of the pre-training records that are
    multiple-choice questions answered with a letter (`pretraining.pretrain_choice`); image_size in pixels; grid: cells per side (a cell = one patch when
    patch = image_size / grid)."""

    output_dir: Path
    seed: int = 0
    train_per_task: int = 1000
    test_per_task: int = 200
    train_counts: dict[str, int] = field(default_factory=dict)
    shared: dict[str, dict[str, float]] = field(default_factory=dict)
    tasks: tuple[str, ...] = tuple(coin_tasks.names())
    pretrain_size: int = 20000
    pretrain_choices: float = 0.0
    image_size: int = 96
    grid: int = 3

    def __post_init__(self) -> None:
        every = tuple(coin_tasks.names())
        unknown = [task for task in self.tasks if task not in every]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {every}, got {self.tasks}")
        object.__setattr__(self, "tasks", tuple(task for task in every if task in self.tasks))
        for name in ("train_per_task", "test_per_task", "pretrain_size"):
            if not 0 <= getattr(self, name) < 1_000_000:
                raise ValueError(f"{name} must be in [0, 1e6)")
        for task, count in self.train_counts.items():
            if task not in every or not 0 <= count < 1_000_000:
                raise ValueError(f"train_counts: {task}={count} needs a task of {every} and a count in [0, 1e6)")
        for task, sources in self.shared.items():
            if task not in SHORT_ANSWER_TASKS or not set(sources) <= set(SHARED_SOURCES) - {task}:
                raise ValueError(f"shared: {task}={sources} needs a short-answer task ({', '.join(SHORT_ANSWER_TASKS)})"
                                 f" and sources among {', '.join(SHARED_SOURCES)} other than itself")
            if not all(0 < f < 1 for f in sources.values()) or sum(sources.values()) >= 1:
                raise ValueError(f"shared: {task}={sources} needs fractions in (0, 1) that sum to less than 1")
        if not 0 <= self.pretrain_choices < 1:
            raise ValueError(f"pretrain_choices must be a fraction in [0, 1), got {self.pretrain_choices}")
        if self.grid < 2 or self.image_size < 16 * self.grid:
            raise ValueError("need grid >= 2 and image_size >= 16 * grid")


class ImageWriter:
    """Saves PNGs under a root folder (creating each folder once)."""

    def __init__(self, root: Path):
        self.root, self.made = root, set()

    def save(self, relpath: str, image: Image.Image) -> None:
        path = self.root / relpath
        if path.parent not in self.made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(path.parent)
        image.save(path, format="PNG", compress_level=1)


def write_task(config: MiniCoinConfig, task: str, painter: Painter, images: ImageWriter,
               notes: Annotations) -> dict[str, list[dict]]:
    """Write Instructions/<task>/<split>.json for train and each question file CoIN ships for the task (the
    registry's `question_splits`); return the records."""
    written = {}
    for split in ("train",) + coin_tasks.task(task).question_splits:
        rng = random.Random(f"mini-coin/{config.seed}/{task}/{split}")
        count = config.train_counts.get(task, config.train_per_task) if split == "train" else config.test_per_task
        records = []
        mixer = SharedSkills(config, task, split)
        for index in range(count):
            example = mixer.example(rng, painter)
            number = numeric_id(task, split, index)
            ident = number if task in INTEGER_IDS else str(number)
            relpath = image_relpath(task, split, number, example)
            images.save(relpath, example.image)
            notes.add(task, split, ident, relpath, example)
            records.append(train_record(ident, relpath, example) if split == "train"
                           else eval_record(task, ident, relpath, example))
        write_json(config.output_dir / "Instructions" / task / f"{split}.json", records)
        written[split] = records
    return written


class SharedSkills:
    """Which maker draws each record of (task, split): the task's own, or for training records of a task with
    `config.shared` entries a source task's, drawn from a stream of its own so the task's own stream is unchanged
    when nothing is shared; a source's question is then asked in the task's wording (`task_prompt`)."""

    def __init__(self, config: MiniCoinConfig, task: str, split: str):
        self.task = task
        self.sources = config.shared.get(task, {}) if split == "train" else {}
        self.pick = random.Random(f"mini-coin/{config.seed}/{task}/{split}/shared")

    def example(self, rng: random.Random, painter: Painter) -> Example:
        if self.sources:
            draw, total = self.pick.random(), 0.0
            for source, fraction in self.sources.items():
                total += fraction
                if draw < total:
                    example = TASK_MAKERS[source](rng, painter)
                    example.prompt = task_prompt(self.task, example.question)
                    return example
        return TASK_MAKERS[self.task](rng, painter)


def write_pretrain(config: MiniCoinConfig, painter: Painter, images: ImageWriter) -> None:
    """Pretrain/pretrain.json: single-turn LLaVA conversations, images under cl_dataset/Pretrain/."""
    rng = random.Random(f"mini-coin/{config.seed}/Pretrain")
    makers, weights = list(PRETRAIN_MAKERS), list(PRETRAIN_MAKERS.values())
    # multiple choice replaces a share of the records, decided by a stream of its own (none: the bytes of before)
    choices = random.Random(f"mini-coin/{config.seed}/Pretrain/choices")
    records = []
    for index in range(config.pretrain_size):
        chosen = pretrain_choice if config.pretrain_choices and choices.random() < config.pretrain_choices \
            else rng.choices(makers, weights=weights)[0]
        image, question, answer = chosen(rng, painter)
        relpath = f"Pretrain/{index:06d}.png"
        images.save(relpath, image)
        records.append({
            "id": f"pretrain_{index:06d}",
            "image": relpath,
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}],
        })
    write_json(config.output_dir / "Pretrain" / "pretrain.json", records)


def generate(output_dir: str | Path, seed: int = 0, **options) -> dict:
    """Write mini-CoIN under output_dir (options: the other MiniCoinConfig fields); return the metadata."""
    config = MiniCoinConfig(output_dir=Path(output_dir), seed=seed, **options)
    painter = Painter(config.image_size, config.grid)
    images, notes = ImageWriter(config.output_dir / "cl_dataset"), Annotations()
    counts, multitask = {}, []
    for task in config.tasks:
        written = write_task(config, task, painter, images, notes)
        counts[task] = {split: len(records) for split, records in written.items()}
        multitask += written["train"]
    random.Random(f"mini-coin/{config.seed}/Multitask").shuffle(multitask)
    write_json(config.output_dir / "Instructions" / "Multitask" / "train.json", multitask)
    notes.write(config.output_dir / "cl_dataset", config.tasks)
    write_pretrain(config, painter, images)
    meta = {
        "generator": "playground/make_mini_coin.py",
        # `shared` and `pretrain_choices` only when used: data written before these options existed keeps its bytes
        # (and its cache keys)
        "args": {key: value for key, value in asdict(config).items()
                 if key != "output_dir" and not (key in ("shared", "pretrain_choices") and not value)},
        "counts": {**counts, "Multitask": {"train": len(multitask)}, "Pretrain": {"train": config.pretrain_size}},
        "instruction_lines": {task: INSTRUCTION_LINES[task] for task in config.tasks},
        "vocabulary": {
            "colours": list(COLOUR_NAMES), "shapes": list(SHAPES), "objects": list(OBJECTS),
            "sign_words": list(SIGN_WORDS), "book_titles": list(BOOK_TITLES), "book_authors": list(BOOK_AUTHORS),
            "book_genres": BOOK_GENRES,
        },
    }
    write_json(config.output_dir / "mini_coin_meta.json", meta)
    return meta
