"""Synthetic mini-CoIN in the real CoIN file formats (docs/coin_formats.md), small enough for CPU runs.

    python playground/make_mini_coin.py --output_dir DIR --seed N [--train_per_task 1000] [--test_per_task 200]
        [--train_counts GQA=3000 ...] [--tasks ScienceQA TextVQA ...] [--pretrain_size 20000] [--image_size 96] [--grid 3]

Eight tasks in CoIN order, each with its real counterpart's kind of question, instruction wording and answer
format, drawn with PIL on square images whose grid x grid cells line up with the vision tower's patches (96 px,
grid 3, patch 32 by default). Also a pre-training set (captions and generic question-answer pairs in full
sentences, in no task's instruction or answer format) so that a tiny base model follows instructions about the
images. Every (task, split) and the pre-training set draw from their own random stream seeded with
(seed, name): a task's data does not depend on which other tasks are generated, and the same arguments give the
same bytes. Output layout:

    DIR/Instructions/<Task>/train.json, test.json (+ val.json for TextVQA, VizWiz, VQAv2)
    DIR/Instructions/Multitask/train.json          union of the generated training sets, shuffled
    DIR/cl_dataset/...                             images (PNG) and the scorers' annotation files
    DIR/Pretrain/pretrain.json                     images under DIR/cl_dataset/Pretrain/
    DIR/mini_coin_meta.json                        arguments, counts, instruction lines, vocabularies
"""
from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFont

# The version of what this generator writes for given arguments: cached data, bases and benchmark runs are keyed
# by it and the arguments (not by this file's text). Bump it with any change to the output; a test pins the
# output's digest, so a change that forgets the bump fails.
FORMAT_VERSION = 1
TASKS = ("ScienceQA", "TextVQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA")
EVAL_SPLITS = {"TextVQA": ("val", "test"), "VizWiz": ("val", "test"), "VQAv2": ("val", "test")}
DEFAULT_EVAL_SPLITS = ("test",)

# Instruction wording of CoIN's original ("Instructions") type, as in LLaVA-1.5's task prompts.
SQA_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SHORT_ANSWER = "Answer the question using a single word or phrase."
IMAGENET_QUESTION = "What is the object in the image?"
VIZWIZ_UNANSWERABLE = "When the provided information is insufficient, respond with 'Unanswerable'."
GROUNDING_INSTRUCTION = "Please provide the bounding box coordinate of the region this sentence describes"
INSTRUCTION_LINES = {
    "ScienceQA": [SQA_INSTRUCTION],
    "TextVQA": [SHORT_ANSWER],
    "ImageNet": [IMAGENET_QUESTION, SHORT_ANSWER],
    "GQA": [SHORT_ANSWER],
    "VizWiz": [VIZWIZ_UNANSWERABLE, SHORT_ANSWER],
    "Grounding": [GROUNDING_INSTRUCTION + ": <expression>"],
    "VQAv2": [SHORT_ANSWER],
    "OCRVQA": [SHORT_ANSWER],
}

# Vocabularies: few, visually distinct values (a tiny model must learn every task jointly).
COLOURS = {
    "red": (215, 38, 38),
    "green": (34, 160, 60),
    "blue": (36, 84, 220),
    "yellow": (240, 200, 20),
    "purple": (140, 60, 190),
    "orange": (245, 130, 20),
}
COLOUR_NAMES = tuple(COLOURS)
SHAPES = ("circle", "square", "triangle", "cross")
OBJECTS = ("house", "tree", "car", "fish", "cup", "boat", "lamp", "flower")
# Words to read are three letters, drawn one letter per grid cell (one patch each), each word with its own first
# letter: reading is then recognising big letters in known patches, which a tiny tower learns in minutes.
# Signs, titles and surnames share their first letters (a small alphabet to learn).
SIGN_WORDS = ("bus", "zoo", "gym", "spa", "inn", "pub", "atm", "hot")
BOOK_TITLES = ("BOX", "ZEN", "GEM", "SKY", "INK", "PIE")
BOOK_AUTHORS = ("Ann Bay", "Bo Zhu", "Max Gil", "Eve Sun", "Ian Ito", "Sue Poe")  # the cover shows the surname
BOOK_GENRES = {
    "cup": "Cookbooks, Food & Wine",
    "tree": "Travel",
    "car": "Engineering & Transportation",
    "fish": "Science & Math",
}
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
LETTERS = "ABCDE"
SQA_COLOUR_CHOICES = COLOUR_NAMES[:4]
SQA_COUNT_CHOICES = NUMBER_WORDS[1:5]

WHITE, DARK, BROWN = (255, 255, 255), (35, 35, 35), (115, 70, 30)
LIGHT_BACKGROUNDS = ((255, 255, 255), (236, 236, 226), (224, 234, 246), (246, 230, 230))
BLANKS = {"black": (0, 0, 0), "dark grey": (60, 60, 60), "grey": (128, 128, 128), "white": (255, 255, 255)}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
INTEGER_IDS = {"TextVQA", "Grounding", "VQAv2"}

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MiniCoinConfig:
    """output_dir: root of the dataset; counts are records per task and split (val and test get test_per_task
    each; train gets train_counts[task] where given, else train_per_task); image_size in pixels; grid: cells per
    side (a cell = one patch when patch = image_size / grid)."""

    output_dir: Path
    seed: int = 0
    train_per_task: int = 1000
    test_per_task: int = 200
    train_counts: dict[str, int] = field(default_factory=dict)
    tasks: tuple[str, ...] = TASKS
    pretrain_size: int = 20000
    image_size: int = 96
    grid: int = 3

    def __post_init__(self) -> None:
        unknown = [task for task in self.tasks if task not in TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASKS}, got {self.tasks}")
        object.__setattr__(self, "tasks", tuple(task for task in TASKS if task in self.tasks))
        for name in ("train_per_task", "test_per_task", "pretrain_size"):
            if not 0 <= getattr(self, name) < 1_000_000:
                raise ValueError(f"{name} must be in [0, 1e6)")
        for task, count in self.train_counts.items():
            if task not in TASKS or not 0 <= count < 1_000_000:
                raise ValueError(f"train_counts: {task}={count} needs a task of {TASKS} and a count in [0, 1e6)")
        if self.grid < 2 or self.image_size < 16 * self.grid:
            raise ValueError("need grid >= 2 and image_size >= 16 * grid")


@dataclass(frozen=True)
class SceneObject:
    """A shape of one colour filling grid cell (row, col)."""

    shape: str
    colour: str
    row: int
    col: int


@dataclass(frozen=True)
class Book:
    """A book cover: title (upper case on the cover), author, genre icon (a key of BOOK_GENRES), cover colour."""

    title: str
    author: str
    icon: str
    colour: str


@dataclass
class Example:
    """One task item: prompt = question line(s) + instruction line(s) (no "<image>"); question = the bare
    question for annotation files; extra = task-specific ground truth."""

    image: Image.Image
    question: str
    prompt: str
    answer: str
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- drawing


def _at(box: Box, fx: float, fy: float) -> tuple[float, float]:
    """The point at fractions (fx, fy) of box."""
    x0, y0, x1, y1 = box
    return x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)


def _sub(box: Box, fx0: float, fy0: float, fx1: float, fy1: float) -> Box:
    """The sub-box between fractions (fx0, fy0) and (fx1, fy1) of box."""
    return (*_at(box, fx0, fy0), *_at(box, fx1, fy1))


CROSS = [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 2), (0, 2), (0, 1), (1, 1)]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple, outline: tuple | None = DARK) -> None:
    """Fill box with one of SHAPES, with a dark outline: the outline draws the shape the same way whatever its
    colour, so that a tiny vision tower tells shapes apart within one patch."""
    width = min(4, max(2, round((box[2] - box[0]) / 8))) if outline else 0
    if shape == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif shape == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif shape == "triangle":
        draw.polygon([_at(box, 0.5, 0.0), _at(box, 1.0, 1.0), _at(box, 0.0, 1.0)], fill=fill, outline=outline,
                     width=width)
    else:
        draw.polygon([_at(box, x / 3, y / 3) for x, y in CROSS], fill=fill, outline=outline, width=width)


def _house(draw, box, colour):
    draw.rectangle(_sub(box, 0.2, 0.45, 0.8, 0.95), fill=colour)
    draw.polygon([_at(box, 0.08, 0.47), _at(box, 0.5, 0.08), _at(box, 0.92, 0.47)], fill=DARK)
    draw.rectangle(_sub(box, 0.43, 0.68, 0.57, 0.95), fill=DARK)


def _tree(draw, box, colour):
    draw.rectangle(_sub(box, 0.42, 0.55, 0.58, 0.95), fill=BROWN)
    draw.ellipse(_sub(box, 0.15, 0.05, 0.85, 0.65), fill=colour)


def _car(draw, box, colour):
    draw.rectangle(_sub(box, 0.05, 0.45, 0.95, 0.75), fill=colour)
    draw.rectangle(_sub(box, 0.25, 0.22, 0.72, 0.47), fill=colour)
    draw.ellipse(_sub(box, 0.14, 0.64, 0.36, 0.88), fill=DARK)
    draw.ellipse(_sub(box, 0.64, 0.64, 0.86, 0.88), fill=DARK)


def _fish(draw, box, colour):
    draw.ellipse(_sub(box, 0.08, 0.3, 0.7, 0.7), fill=colour)
    draw.polygon([_at(box, 0.62, 0.5), _at(box, 0.95, 0.22), _at(box, 0.95, 0.78)], fill=colour)
    draw.ellipse(_sub(box, 0.2, 0.4, 0.3, 0.5), fill=DARK)


def _cup(draw, box, colour):
    width = max(2, round((box[2] - box[0]) / 9))
    draw.ellipse(_sub(box, 0.55, 0.32, 0.9, 0.68), outline=colour, width=width)
    draw.polygon([_at(box, 0.15, 0.2), _at(box, 0.7, 0.2), _at(box, 0.63, 0.92), _at(box, 0.22, 0.92)], fill=colour)


def _boat(draw, box, colour):
    draw.polygon([_at(box, 0.03, 0.62), _at(box, 0.97, 0.62), _at(box, 0.8, 0.9), _at(box, 0.2, 0.9)], fill=colour)
    draw.polygon([_at(box, 0.5, 0.06), _at(box, 0.5, 0.58), _at(box, 0.88, 0.58)], fill=DARK)
    draw.polygon([_at(box, 0.46, 0.16), _at(box, 0.46, 0.58), _at(box, 0.18, 0.58)], fill=DARK)


def _lamp(draw, box, colour):
    draw.polygon([_at(box, 0.3, 0.06), _at(box, 0.7, 0.06), _at(box, 0.88, 0.45), _at(box, 0.12, 0.45)], fill=colour)
    draw.rectangle(_sub(box, 0.45, 0.45, 0.55, 0.86), fill=DARK)
    draw.rectangle(_sub(box, 0.25, 0.86, 0.75, 0.95), fill=DARK)


def _flower(draw, box, colour):
    draw.rectangle(_sub(box, 0.46, 0.5, 0.54, 0.96), fill=DARK)
    for fx, fy in ((0.5, 0.15), (0.5, 0.55), (0.3, 0.35), (0.7, 0.35)):
        draw.ellipse(_sub(box, fx - 0.17, fy - 0.17, fx + 0.17, fy + 0.17), fill=colour)
    draw.ellipse(_sub(box, 0.4, 0.25, 0.6, 0.45), fill=DARK)


DRAWINGS: dict[str, Callable] = {
    "house": _house, "tree": _tree, "car": _car, "fish": _fish,
    "cup": _cup, "boat": _boat, "lamp": _lamp, "flower": _flower,
}


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=None)
def _fitted_font(text: str, max_width: int, max_height: int) -> ImageFont.FreeTypeFont:
    """The largest default font (at most max_height px) whose rendering of text is at most max_width wide."""
    size = max_height
    while size > 6:
        left, _, right, _ = _font(size).getbbox(text)
        if right - left <= max_width:
            break
        size -= 1
    return _font(size)


class Painter:
    """Draws size x size RGB images on a grid x grid layout of cells."""

    def __init__(self, size: int, grid: int):
        self.size, self.grid = size, grid

    def canvas(self, background: tuple = WHITE) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("RGB", (self.size, self.size), background)
        return image, ImageDraw.Draw(image)

    def cell_box(self, row: int, col: int, inset: float = 0.12) -> Box:
        """Pixel box of a cell, shrunk by inset (fraction of the cell) on every side."""
        x0, x1 = col * self.size // self.grid, (col + 1) * self.size // self.grid
        y0, y1 = row * self.size // self.grid, (row + 1) * self.size // self.grid
        pad = inset * (x1 - x0)
        return x0 + pad, y0 + pad, x1 - 1 - pad, y1 - 1 - pad

    def jittered_box(self, rng: random.Random, low: float = 0.72, high: float = 0.92) -> Box:
        """A random square box covering low..high of the image side."""
        side = round(rng.uniform(low, high) * self.size)
        x0, y0 = rng.randint(0, self.size - side), rng.randint(0, self.size - side)
        return x0, y0, x0 + side - 1, y0 + side - 1

    def text(self, draw: ImageDraw.ImageDraw, text: str, box: Box, fill: tuple) -> None:
        """Write text centred in box with the largest font that fits."""
        x0, y0, x1, y1 = box
        font = _fitted_font(text, int(x1 - x0), int(y1 - y0))
        left, top, right, bottom = font.getbbox(text)
        x = (x0 + x1 - (right - left)) / 2 - left
        y = (y0 + y1 - (bottom - top)) / 2 - top
        draw.text((x, y), text, font=font, fill=fill)

    def row_text(self, draw: ImageDraw.ImageDraw, text: str, row: int, fill: tuple) -> None:
        """Write text along one row of cells: one character per cell when it has `grid` characters, else centred
        across the row."""
        if len(text) == self.grid:
            for col, char in enumerate(text):
                self.text(draw, char, self.cell_box(row, col, inset=0.0), fill)
        else:
            top, bottom = row * self.size / self.grid, (row + 1) * self.size / self.grid
            self.text(draw, text, (0.06 * self.size, top + 3, 0.94 * self.size, bottom - 3), fill)

    def scene(self, objects: list[SceneObject]) -> Image.Image:
        """Objects on a grid whose cells are tinted from light to darker grey in reading order, so that where a
        cell is can be seen in it (a tiny tower does not learn positions from its position embeddings in minutes)."""
        image, draw = self.canvas()
        cells = self.grid * self.grid
        for index in range(cells):
            row, col = divmod(index, self.grid)
            grey = round(252 - 88 * index / max(1, cells - 1))
            draw.rectangle(self.cell_box(row, col, inset=0.0), fill=(grey, grey, grey))
        for item in objects:
            draw_shape(draw, item.shape, self.cell_box(item.row, item.col, inset=0.06), COLOURS[item.colour])
        return image

    def big_shape(self, shape: str, colour: str, rng: random.Random) -> Image.Image:
        image, draw = self.canvas()
        draw_shape(draw, shape, self.jittered_box(rng, 0.75, 0.9), COLOURS[colour])
        return image

    def drawing(self, label: str, colour: str, rng: random.Random) -> Image.Image:
        image, draw = self.canvas(rng.choice(LIGHT_BACKGROUNDS))
        DRAWINGS[label](draw, self.jittered_box(rng, 0.84, 0.96), COLOURS[colour])
        return image

    def sign(self, word: str, colour: str, rng: random.Random) -> Image.Image:
        """A coloured sign board across the middle of the image; the word in large dark capitals on its white
        plate, which fills the middle row of cells (one letter per patch, dark on white like the book covers)."""
        image, draw = self.canvas(rng.choice(LIGHT_BACKGROUNDS))
        cell = self.size / self.grid
        top = (self.grid // 2) * cell
        draw.rectangle((0, top - 0.4 * cell, self.size - 1, top + 1.4 * cell - 1), fill=COLOURS[colour])
        draw.rectangle((0.02 * self.size, top + 1, 0.98 * self.size - 1, top + cell - 2), fill=WHITE)
        self.row_text(draw, word.upper(), self.grid // 2, DARK)
        return image

    def book(self, book: Book) -> Image.Image:
        """Cover in three rows of cells: the title on a white band (top row), the genre icon (centre cell), the
        author's surname on a white band (bottom row)."""
        image, draw = self.canvas(COLOURS[book.colour])
        cell, last = self.size / self.grid, self.grid - 1
        for row in (0, last):
            draw.rectangle((0.02 * self.size, row * cell + 1, 0.98 * self.size - 1, (row + 1) * cell - 2), fill=WHITE)
        self.row_text(draw, book.title, 0, DARK)
        self.row_text(draw, book.author.split()[-1].upper(), last, DARK)
        centre = self.cell_box(self.grid // 2, self.grid // 2, inset=0.0)
        draw.rectangle(centre, fill=WHITE)
        DRAWINGS[book.icon](draw, _sub(centre, 0.06, 0.06, 0.94, 0.94), DARK)
        return image

    def blank(self, colour: str) -> Image.Image:
        return self.canvas(BLANKS[colour])[0]

    def noise(self, rng: random.Random) -> Image.Image:
        return Image.frombytes("RGB", (self.size, self.size), rng.randbytes(self.size * self.size * 3))


# ----------------------------------------------------------------------------------------------- helpers


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def place_phrase(row: int, col: int, grid: int) -> str:
    """Where a cell is, as a phrase: "at the top left", "in the center" (grid 3) or "in row 1, column 2"."""
    if grid != 3:
        return f"in row {row + 1}, column {col + 1}"
    if (row, col) == (1, 1):
        return "in the center"
    return f"at the {('top', 'middle', 'bottom')[row]} {('left', 'center', 'right')[col]}"


def cell_bbox_text(row: int, col: int, grid: int) -> str:
    """CoIN box string of a whole cell: "[x1, y1, x2, y2]", 2 decimals, normalised to the (square) image."""
    coords = (col / grid, row / grid, (col + 1) / grid, (row + 1) / grid)
    return "[" + ", ".join(f"{value:.2f}" for value in coords) + "]"


def sample_scene(rng: random.Random, grid: int, low: int, high: int) -> list[SceneObject]:
    """low..high objects in distinct cells, with distinct shapes and distinct colours (so each is nameable by
    shape or colour alone); listed in reading order."""
    count = rng.randint(low, high)
    cells = sorted(rng.sample(range(grid * grid), count))
    shapes, colours = rng.sample(SHAPES, count), rng.sample(COLOUR_NAMES, count)
    return [SceneObject(s, c, cell // grid, cell % grid) for s, c, cell in zip(shapes, colours, cells)]


def sample_row_pair(rng: random.Random, grid: int) -> tuple[SceneObject, SceneObject]:
    """Two objects in one row (a clear left/right layout), left one first."""
    row = rng.randrange(grid)
    left_col, right_col = sorted(rng.sample(range(grid), 2))
    (shape_a, shape_b), (colour_a, colour_b) = rng.sample(SHAPES, 2), rng.sample(COLOUR_NAMES, 2)
    return SceneObject(shape_a, colour_a, row, left_col), SceneObject(shape_b, colour_b, row, right_col)


def annotator_answers(rng: random.Random, answer: str, alternatives: list[str]) -> list[str]:
    """Ten annotator answers: the answer at least eight times, the rest drawn from alternatives."""
    answers = [answer] * 10
    for position in rng.sample(range(10), rng.choice((0, 0, 1, 2))):
        answers[position] = rng.choice(alternatives)
    return answers


def short_prompt(question: str) -> str:
    return f"{question}\n{SHORT_ANSWER}"


# ----------------------------------------------------------------------------------------------- tasks


def make_scienceqa(rng: random.Random, painter: Painter) -> Example:
    """Multiple choice about one shape (its shape or colour) or a scene (count), with a fixed option order per
    question kind; the answer is the option letter."""
    kind = rng.choice(("shape", "colour", "count"))
    if kind == "count":
        objects = sample_scene(rng, painter.grid, 1, 4)
        image, choices, correct = painter.scene(objects), SQA_COUNT_CHOICES, NUMBER_WORDS[len(objects)]
        question, context = "How many shapes are in the picture?", "Count every shape in the picture."
    else:
        choices = SHAPES if kind == "shape" else SQA_COLOUR_CHOICES
        shape = rng.choice(SHAPES)
        colour = rng.choice(SQA_COLOUR_CHOICES if kind == "colour" else COLOUR_NAMES)
        image, correct = painter.big_shape(shape, colour, rng), shape if kind == "shape" else colour
        if kind == "shape":
            question, context = "Which shape is shown in the picture?", "The picture shows a single shape."
        else:
            question, context = "What color is the shape in the picture?", "Look at the shape in the picture."
    index = choices.index(correct)
    options = [f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices)]
    prompt = "\n".join([question, f"Context: {context}", *options, SQA_INSTRUCTION])
    extra = {"choices": list(choices), "answer_index": index, "hint": context, "skill": kind}
    return Example(image, question, prompt, LETTERS[index], extra)


TEXTVQA_QUESTIONS = ("What does the sign say?", "What word is written on the sign?", "What is written here?")


def make_textvqa(rng: random.Random, painter: Painter) -> Example:
    """Read the word on a sign; lower-case answer, ten annotator answers."""
    word, colour = rng.choice(SIGN_WORDS), rng.choice(COLOUR_NAMES)
    question = rng.choice(TEXTVQA_QUESTIONS)
    answers = annotator_answers(rng, word, [f"{word} sign", rng.choice(SIGN_WORDS)])
    return Example(painter.sign(word, colour, rng), question, short_prompt(question), word, {"answers": answers})


def make_imagenet(rng: random.Random, painter: Painter) -> Example:
    """Classify a drawing; the answer is its class name."""
    label, colour = rng.choice(OBJECTS), rng.choice(COLOUR_NAMES)
    prompt = f"{IMAGENET_QUESTION}\n{SHORT_ANSWER}"
    return Example(painter.drawing(label, colour, rng), IMAGENET_QUESTION, prompt, label, {"label": label})


def _gqa_relation(rng: random.Random, left: SceneObject, right: SceneObject) -> tuple[str, str, str, tuple]:
    """Colour of the object beside a named one."""
    if rng.random() < 0.5:
        named, other, side = right, left, "left"
    else:
        named, other, side = left, right, "right"
    name = f"{named.colour} {named.shape}"
    question = f"What color is the object to the {side} of the {name}?"
    full = f"The object to the {side} of the {name} is {other.colour}."
    return question, other.colour, full, ("query", "rel", "relS")


def _gqa_position(rng: random.Random, left: SceneObject, right: SceneObject) -> tuple[str, str, str, tuple]:
    """Whether a named object is left or right of the other."""
    subject, reference = (left, right) if rng.random() < 0.5 else (right, left)
    answer = "left" if subject is left else "right"
    a, b = f"{subject.colour} {subject.shape}", f"{reference.colour} {reference.shape}"
    question = f"Is the {a} to the left or to the right of the {b}?"
    return question, answer, f"The {a} is to the {answer} of the {b}.", ("choose", "rel", "positionChoose")


def _gqa_shape(rng: random.Random, left: SceneObject, right: SceneObject) -> tuple[str, str, str, tuple]:
    """Shape of the object of a named colour."""
    target = rng.choice((left, right))
    question = f"What shape is the {target.colour} object?"
    return question, target.shape, f"The {target.colour} object is a {target.shape}.", ("query", "attr", "shapeQuery")


def _gqa_exist(rng: random.Random, left: SceneObject, right: SceneObject) -> tuple[str, str, str, tuple]:
    """Is there a <colour> <shape>? Yes: one of the two; no: a colour the picture lacks."""
    target = rng.choice((left, right))
    colour, shape = target.colour, target.shape
    if rng.random() < 0.5:
        colour = rng.choice([c for c in COLOUR_NAMES if c not in (left.colour, right.colour)])
        shape = rng.choice(SHAPES)
    answer = "yes" if colour == target.colour else "no"
    full = f"{'Yes, there is' if answer == 'yes' else 'No, there is no'} {colour} {shape}."
    return f"Is there {article(colour)} {colour} {shape}?", answer, full, ("verify", "obj", "existAttrC")


GQA_QUESTIONS = {_gqa_relation: 0.35, _gqa_position: 0.25, _gqa_shape: 0.2, _gqa_exist: 0.2}


def make_gqa(rng: random.Random, painter: Painter) -> Example:
    """Scene questions about two objects side by side, each named by colour and shape: the colour of the object
    left or right of a named one, whether one is left or right of the other, the shape of the object of a colour,
    and existence (yes/no). Tuning (results/mini_coin/tuning.md): with 2-4 objects the tiny model stayed near
    42 %; questions that name an object by its shape alone ("What color is the square?") stayed at chance,
    because the tiny model does not find an object by its shape."""
    left, right = sample_row_pair(rng, painter.grid)
    maker = rng.choices(list(GQA_QUESTIONS), weights=list(GQA_QUESTIONS.values()))[0]
    question, answer, full, types = maker(rng, left, right)
    extra = {"fullAnswer": full, "types": dict(zip(("structural", "semantic", "detailed"), types))}
    return Example(painter.scene([left, right]), question, short_prompt(question), answer, extra)


VIZWIZ_COLOUR_QUESTIONS = ("What color is this?", "What is the color of this?", "Can you tell me what color this is?")
VIZWIZ_OBJECT_QUESTIONS = ("What is this?", "What is this item?", "Can you tell me what this is?")


def make_vizwiz(rng: random.Random, painter: Painter) -> Example:
    """"What colour / what is this" about one big item, or "unanswerable" for blank and noise images."""
    kind = rng.choices(("colour", "object", "unanswerable"), weights=(45, 30, 25))[0]
    if kind == "unanswerable":
        question = rng.choice(VIZWIZ_COLOUR_QUESTIONS + VIZWIZ_OBJECT_QUESTIONS)
        image = painter.noise(rng) if rng.random() < 0.4 else painter.blank(rng.choice(tuple(BLANKS)))
        answer, alternatives = "unanswerable", ["unsuitable", "blurry"]
    else:
        label, colour = rng.choice(OBJECTS), rng.choice(COLOUR_NAMES)
        if kind == "colour" and rng.random() < 0.5:
            image = painter.big_shape(rng.choice(SHAPES), colour, rng)
        else:
            image = painter.drawing(label, colour, rng)
        if kind == "colour":
            question, answer, alternatives = rng.choice(VIZWIZ_COLOUR_QUESTIONS), colour, ["unanswerable"]
        else:
            question, answer, alternatives = rng.choice(VIZWIZ_OBJECT_QUESTIONS), label, [f"{label} picture"]
    prompt = f"{question}\n{VIZWIZ_UNANSWERABLE}\n{SHORT_ANSWER}"
    return Example(image, question, prompt, answer, {"answers": annotator_answers(rng, answer, alternatives)})


def make_grounding(rng: random.Random, painter: Painter) -> Example:
    """Referring expression -> box of the whole grid cell holding the object (one of grid^2 box strings). One
    object per scene: with two to four, the tiny model stayed at 18-25 % even trained on grounding alone. (The
    object filling one image quadrant, four boxes, did no better after 190 steps alone.)"""
    objects = sample_scene(rng, painter.grid, 1, 1)
    target = rng.choice(objects)
    expression = rng.choice(
        (f"the {target.colour} {target.shape}", f"the {target.shape}", f"the {target.colour} object")
    )
    box = cell_bbox_text(target.row, target.col, painter.grid)
    prompt = f"{GROUNDING_INSTRUCTION}: {expression}"
    return Example(painter.scene(objects), expression, prompt, box, {"size": [painter.size, painter.size]})


def make_vqav2(rng: random.Random, painter: Painter) -> Example:
    """Scene questions about one to three objects answered with a digit (count), yes/no (existence) or a colour."""
    objects = sample_scene(rng, painter.grid, 1, 3)
    target = rng.choice(objects)
    kind = rng.choices(("count", "exist", "color"), weights=(40, 35, 25))[0]
    if kind == "count":
        question = rng.choice(("How many shapes are there?", "How many objects are in the picture?"))
        answer, alternatives = str(len(objects)), [str(len(objects) + 1)]
    elif kind == "color":
        question, answer, alternatives = f"What color is the {target.shape}?", target.colour, ["white"]
    else:
        missing_shapes = [shape for shape in SHAPES if shape not in {item.shape for item in objects}]
        missing_colours = [colour for colour in COLOUR_NAMES if colour not in {item.colour for item in objects}]
        if rng.random() < 0.5:
            question, answer = f"Is there {article(target.shape)} {target.shape}?", "yes"
        elif missing_shapes:
            shape = rng.choice(missing_shapes)
            question, answer = f"Is there {article(shape)} {shape}?", "no"
        else:
            question, answer = f"Is there {article(missing_colours[0])} {missing_colours[0]} object?", "no"
        alternatives = ["no" if answer == "yes" else "yes"]
    extra = {"answers": annotator_answers(rng, answer, alternatives)}
    return Example(painter.scene(objects), question, short_prompt(question), answer, extra)


def sample_book(rng: random.Random) -> Book:
    return Book(rng.choice(BOOK_TITLES), rng.choice(BOOK_AUTHORS), rng.choice(tuple(BOOK_GENRES)),
                rng.choice(COLOUR_NAMES))


def make_ocrvqa(rng: random.Random, painter: Painter) -> Example:
    """Book covers: title (Title Case), genre, or "Is this book related to <genre>?" (Yes/No). (Questions about
    the author, whose full name the cover only hints at by its surname, were not learned by the tiny model.)"""
    book = sample_book(rng)
    genre = BOOK_GENRES[book.icon]
    kind = rng.choices(("title", "genre", "is_genre"), weights=(40, 35, 25))[0]
    if kind == "title":
        question, answer = "What is the title of this book?", book.title.title()
    elif kind == "genre":
        question, answer = rng.choice(("What type of book is this?", "What is the genre of this book?")), genre
    else:
        others = [other for other in BOOK_GENRES.values() if other != genre]
        asked = genre if rng.random() < 0.5 else rng.choice(others)
        question, answer = f"Is this book related to {asked}?", "Yes" if asked == genre else "No"
    return Example(painter.book(book), question, short_prompt(question), answer, {"book": asdict(book)})


TASK_MAKERS: dict[str, Callable[[random.Random, Painter], Example]] = {
    "ScienceQA": make_scienceqa, "TextVQA": make_textvqa, "ImageNet": make_imagenet, "GQA": make_gqa,
    "VizWiz": make_vizwiz, "Grounding": make_grounding, "VQAv2": make_vqav2, "OCRVQA": make_ocrvqa,
}


# ----------------------------------------------------------------------------------------------- pre-training

CAPTION_PROMPTS = (
    "Describe the image briefly.",
    "Give a short description of this picture.",
    "Write a caption for the image.",
    "Summarize the picture in one sentence.",
    "What does this image show?",
)
QA = tuple[str, str]


def describe_objects(objects: list[SceneObject], grid: int, rng: random.Random | None = None) -> str:
    """A caption naming every object with its place; with rng, in random order (not reading order), so that the
    place of each named object has to be found in the image by its colour and shape."""
    if rng is not None:
        objects = rng.sample(objects, len(objects))
    parts = [f"{article(o.colour)} {o.colour} {o.shape} {place_phrase(o.row, o.col, grid)}" for o in objects]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    noun = "shape" if len(objects) == 1 else "shapes"
    return f"A grid picture with {NUMBER_WORDS[len(objects)]} {noun}: {listed}."


def _scene_questions(rng: random.Random, objects: list[SceneObject], grid: int) -> list[QA]:
    target = rng.choice(objects)
    where = place_phrase(target.row, target.col, grid)
    name = f"{target.colour} {target.shape}"
    cell = rng.randrange(grid * grid)
    occupant = [o for o in objects if o.row * grid + o.col == cell]
    cell_phrase = place_phrase(cell // grid, cell % grid, grid)
    here = (f"{article(occupant[0].colour).capitalize()} {occupant[0].colour} {occupant[0].shape} is {cell_phrase}."
            if occupant else f"Nothing is {cell_phrase}.")
    colour, shape = rng.choice(COLOUR_NAMES), rng.choice(SHAPES)
    found = [o for o in objects if (o.colour, o.shape) == (colour, shape)]
    exists = (f"Yes, there is {article(colour)} {colour} {shape} {place_phrase(found[0].row, found[0].col, grid)}."
              if found else f"No, there is no {colour} {shape} in the picture.")
    count = len(objects)
    return [
        (f"Where is the {name}?", f"The {name} is {where}."),
        (f"Which colour does the {target.shape} have?", f"The {target.shape} is {target.colour}."),
        (f"Which shape is {target.colour}?", f"The {target.colour} shape is {article(target.shape)} {target.shape}."),
        ("Count the shapes in this picture.",
         f"There {'is' if count == 1 else 'are'} {NUMBER_WORDS[count]} shape{'' if count == 1 else 's'}."),
        (f"What is {cell_phrase}?", here),
        (f"Can you see {article(colour)} {colour} {shape} here?", exists),
    ]


def pretrain_scene(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    objects = sample_scene(rng, painter.grid, 1, 4)
    if rng.random() < 0.4:
        return painter.scene(objects), rng.choice(CAPTION_PROMPTS), describe_objects(objects, painter.grid, rng)
    return painter.scene(objects), *rng.choice(_scene_questions(rng, objects, painter.grid))


def pretrain_row_pair(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    left, right = sample_row_pair(rng, painter.grid)
    left_name, right_name = f"{left.colour} {left.shape}", f"{right.colour} {right.shape}"
    qas = [
        (f"What is to the left of the {right_name}?",
         f"{article(left.colour).capitalize()} {left_name} is to the left of the {right_name}."),
        (f"What is to the right of the {left_name}?",
         f"{article(right.colour).capitalize()} {right_name} is to the right of the {left_name}."),
        (rng.choice(CAPTION_PROMPTS), describe_objects([left, right], painter.grid, rng)),
    ]
    return painter.scene([left, right]), *rng.choice(qas)


def pretrain_big_shape(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    shape, colour = rng.choice(SHAPES), rng.choice(COLOUR_NAMES)
    qas = [
        (rng.choice(CAPTION_PROMPTS), f"A big {colour} {shape} on a white background."),
        (rng.choice(("What colour is this shape?", "Which color is this?")), f"It is {colour}."),
        ("Name the shape in the picture.", f"It is {article(shape)} {shape}."),
    ]
    return painter.big_shape(shape, colour, rng), *rng.choice(qas)


def pretrain_sign(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    word, colour = rng.choice(SIGN_WORDS), rng.choice(COLOUR_NAMES)
    qas = [
        (rng.choice(CAPTION_PROMPTS), f'{article(colour).capitalize()} {colour} sign with the word "{word.upper()}".'),
        ("Read the sign.", f'The sign says "{word.upper()}".'),
        ("Which word can you read here?", f'The word is "{word}".'),
        ("What colour is the sign?", f"The sign is {colour}."),
    ]
    return painter.sign(word, colour, rng), *rng.choice(qas)


def pretrain_drawing(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    label, colour = rng.choice(OBJECTS), rng.choice(COLOUR_NAMES)
    qas = [
        (rng.choice(CAPTION_PROMPTS), f"A drawing of {article(colour)} {colour} {label}."),
        ("What is drawn here?", f"This is a drawing of {article(label)} {label}."),
        ("What colour is the drawing?", f"The {label} is {colour}."),
    ]
    return painter.drawing(label, colour, rng), *rng.choice(qas)


def pretrain_book(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    book = sample_book(rng)
    title, genre = book.title.title(), BOOK_GENRES[book.icon]
    qas = [
        (rng.choice(CAPTION_PROMPTS),
         f'{article(book.colour).capitalize()} {book.colour} book cover titled "{book.title}" by {book.author}, '
         f"with {article(book.icon)} {book.icon} on it."),
        ("Read the title of this book.", f'The title is "{title}".'),
        ("Whose name is on the cover?", f"The name on the cover is {book.author}."),
        ("What kind of book does this look like?",
         f"The {book.icon} on the cover marks a book in the {genre} category."),
    ]
    return painter.book(book), *rng.choice(qas)


def pretrain_blank(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    question = rng.choice(CAPTION_PROMPTS + ("What can you see in this image?",))
    if rng.random() < 0.4:
        return painter.noise(rng), question, "Only random noise; nothing can be recognised."
    colour = rng.choice(tuple(BLANKS))
    return painter.blank(colour), question, f"The image is plain {colour}; there is nothing to see."


PRETRAIN_MAKERS = {  # maker: weight (percent of the pre-training set)
    pretrain_scene: 40, pretrain_row_pair: 10, pretrain_big_shape: 6, pretrain_sign: 14,
    pretrain_drawing: 6, pretrain_book: 20, pretrain_blank: 4,
}


# ----------------------------------------------------------------------------------------------- writing


def numeric_id(task: str, split: str, index: int) -> int:
    """Unique over tasks and splits: task digit, split digit, then six digits of index."""
    return (TASKS.index(task) + 1) * 10_000_000 + SPLIT_CODES[split] * 1_000_000 + index


def image_relpath(task: str, split: str, number: int, example: Example) -> str:
    """Image path under cl_dataset/, in the real CoIN folders (Grounding and VQAv2 use COCO2014)."""
    if task == "ScienceQA":
        return f"ScienceQA/images/{split}/{number}/image.png"
    if task == "TextVQA":
        return f"TextVQA/{'test' if split == 'test' else 'train'}_images/{number:016x}.png"
    if task == "ImageNet":
        return f"ImageNet_withlabel/{split}/{example.extra['label']}/{number}.png"
    if task == "GQA":
        return f"GQA/images/{gqa_image_id(split, number)}.png"
    if task == "VizWiz":
        return f"VizWiz/{split}/VizWiz_{split}_{number:08d}.png"
    if task == "OCRVQA":
        return f"OCR-VQA/images/{number:010d}.png"
    coco_split = {"train": "train2014", "val": "val2014", "test": "test2015"}["train" if task == "Grounding" else split]
    return f"COCO2014/{coco_split}/COCO_{coco_split}_{number:012d}.png"


def gqa_image_id(split: str, number: int) -> str:
    return f"n{number}" if split == "test" else str(number)


def train_record(ident: str | int, relpath: str, example: Example) -> dict:
    return {
        "id": ident,
        "image": relpath,
        "conversations": [
            {"from": "human", "value": f"<image>\n{example.prompt}"},
            {"from": "gpt", "value": example.answer},
        ],
    }


def eval_record(task: str, ident: str | int, relpath: str, example: Example) -> dict:
    record = {"question_id": ident, "image": relpath, "text": example.prompt}
    if task == "Grounding":
        record.update(answer_bbox=example.answer, size=example.extra["size"])
    else:
        record["answer"] = example.answer
    if task in ("VizWiz", "VQAv2"):
        record["answers"] = example.extra["answers"]
    return record


class Annotations:
    """The annotation files the real scorers read: ScienceQA problems.json + pid_splits.json,
    TextVQA_0.5.1_val.json, GQA testdev_balanced_questions.json."""

    def __init__(self) -> None:
        self.sqa_problems: dict[str, dict] = {}
        self.sqa_splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
        self.textvqa_val: list[dict] = []
        self.gqa_testdev: dict[str, dict] = {}

    def add(self, task: str, split: str, ident: str | int, relpath: str, example: Example) -> None:
        if task == "ScienceQA":
            self.sqa_problems[ident] = {
                "question": example.question, "choices": example.extra["choices"],
                "answer": example.extra["answer_index"], "hint": example.extra["hint"], "image": "image.png",
                "task": "closed choice", "grade": "grade1", "subject": "natural science",
                "topic": "mini-coin", "category": "Shapes", "skill": example.extra["skill"],
                "lecture": "", "solution": "", "split": split,
            }
            self.sqa_splits[split].append(ident)
        elif task == "TextVQA" and split == "val":
            self.textvqa_val.append({
                "question_id": ident, "image_id": Path(relpath).stem, "question": example.question,
                "answers": example.extra["answers"],
            })
        elif task == "GQA" and split == "test":
            types = example.extra["types"]
            self.gqa_testdev[ident] = {
                "question": example.question, "answer": example.answer, "fullAnswer": example.extra["fullAnswer"],
                "imageId": Path(relpath).stem, "isBalanced": True, "types": types,
                "semantic": [{"operation": "select", "argument": "object", "dependencies": []},
                             {"operation": types["detailed"], "argument": example.answer, "dependencies": [0]}],
                "groups": {"global": None, "local": types["detailed"]},
                "entailed": [], "equivalent": [ident],
                "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
            }

    def write(self, cl_dataset: Path, tasks: tuple[str, ...]) -> None:
        if "ScienceQA" in tasks:
            write_json(cl_dataset / "ScienceQA" / "problems.json", self.sqa_problems)
            write_json(cl_dataset / "ScienceQA" / "pid_splits.json", self.sqa_splits)
        if "TextVQA" in tasks:
            textvqa = {"dataset_name": "textvqa", "dataset_type": "val", "dataset_version": "0.5.1",
                       "data": self.textvqa_val}
            write_json(cl_dataset / "TextVQA" / "TextVQA_0.5.1_val.json", textvqa)
        if "GQA" in tasks:
            write_json(cl_dataset / "GQA" / "testdev_balanced_questions.json", self.gqa_testdev)


def write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")


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
    """Write Instructions/<task>/<split>.json for train and the task's eval splits; return the records."""
    written = {}
    for split in ("train",) + EVAL_SPLITS.get(task, DEFAULT_EVAL_SPLITS):
        rng = random.Random(f"mini-coin/{config.seed}/{task}/{split}")
        count = config.train_counts.get(task, config.train_per_task) if split == "train" else config.test_per_task
        records = []
        for index in range(count):
            example = TASK_MAKERS[task](rng, painter)
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


def write_pretrain(config: MiniCoinConfig, painter: Painter, images: ImageWriter) -> None:
    """Pretrain/pretrain.json: single-turn LLaVA conversations, images under cl_dataset/Pretrain/."""
    rng = random.Random(f"mini-coin/{config.seed}/Pretrain")
    makers, weights = list(PRETRAIN_MAKERS), list(PRETRAIN_MAKERS.values())
    records = []
    for index in range(config.pretrain_size):
        image, question, answer = rng.choices(makers, weights=weights)[0](rng, painter)
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
        "args": {key: value for key, value in asdict(config).items() if key != "output_dir"},
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


def parse_count(item: str) -> tuple[str, int]:
    """'GQA=3000' -> ("GQA", 3000)."""
    task, _, count = item.partition("=")
    if not count.isdigit():
        raise ValueError(f"--train_counts takes TASK=N items, got {item!r}")
    return task, int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Generate the synthetic mini-CoIN dataset.")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train_per_task", type=int, default=1000)
    parser.add_argument("--test_per_task", type=int, default=200, help="records per eval file (val and test)")
    parser.add_argument("--train_counts", nargs="*", default=[], metavar="TASK=N",
                        help="training records of these tasks instead of --train_per_task, e.g. GQA=3000")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--pretrain_size", type=int, default=20000)
    parser.add_argument("--image_size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--grid", type=int, default=3, help="cells per image side (one patch each)")
    args = vars(parser.parse_args(argv))
    started = time.perf_counter()
    try:
        train_counts = dict(parse_count(item) for item in args.pop("train_counts"))
        meta = generate(args.pop("output_dir"), tasks=tuple(args.pop("tasks")), train_counts=train_counts, **args)
    except ValueError as err:
        parser.error(str(err))
    images = sum(sum(splits.values()) for task, splits in meta["counts"].items() if task != "Multitask")
    print(json.dumps({"images": images, "seconds": round(time.perf_counter() - started, 1), **meta["counts"]}))


if __name__ == "__main__":
    main()
