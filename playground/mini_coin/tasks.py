"""The eight CoIN tasks in miniature: their instruction wording (CoIN's original "Instructions" type, as in
LLaVA-1.5's task prompts), and one maker per task that draws an image and asks its kind of question with its
answer format (TASK_MAKERS). Their names, order and question files are the registry's (llava/coin/tasks.py)."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Callable

from PIL import Image

from playground.mini_coin.drawing import BLANKS, Painter
from playground.mini_coin.scene import SceneObject, article, sample_book, sample_row_pair, sample_scene
from playground.mini_coin.vocabulary import BOOK_GENRES, COLOUR_NAMES, NUMBER_WORDS, OBJECTS, SHAPES, SIGN_WORDS

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

LETTERS = "ABCDE"
SQA_COLOUR_CHOICES = COLOUR_NAMES[:4]
SQA_COUNT_CHOICES = NUMBER_WORDS[1:5]


@dataclass
class Example:
    """One task item: prompt = question line(s) + instruction line(s) (no "<image>"); question = the bare
    question for annotation files; extra = task-specific ground truth."""

    image: Image.Image
    question: str
    prompt: str
    answer: str
    extra: dict = field(default_factory=dict)


def cell_bbox_text(row: int, col: int, grid: int) -> str:
    """CoIN box string of a whole cell: "[x1, y1, x2, y2]", 2 decimals, normalised to the (square) image."""
    coords = (col / grid, row / grid, (col + 1) / grid, (row + 1) / grid)
    return "[" + ", ".join(f"{value:.2f}" for value in coords) + "]"


def annotator_answers(rng: random.Random, answer: str, alternatives: list[str]) -> list[str]:
    """Ten annotator answers: the answer at least eight times, the rest drawn from alternatives."""
    answers = [answer] * 10
    for position in rng.sample(range(10), rng.choice((0, 0, 1, 2))):
        answers[position] = rng.choice(alternatives)
    return answers


# The short-answer tasks: one line of instruction after the question (VizWiz: two), one word or phrase as the answer.
# Real VQA datasets share skills across these (VQAv2 and VizWiz hold reading and colour questions, OCR-VQA reads
# like TextVQA); `--shared` lets one task's training set hold another's questions, asked in its own wording.
SHORT_ANSWER_TASKS = ("TextVQA", "GQA", "VizWiz", "VQAv2", "OCRVQA")
# What a short-answer task's training set may share: the others' questions, and ImageNet's (naming the object in a
# picture, as VQAv2 asks "What animal is this?"; ImageNet's question already ends with the short-answer line).
SHARED_SOURCES = SHORT_ANSWER_TASKS + ("ImageNet",)


def task_prompt(task: str, question: str) -> str:
    """A short-answer task's prompt for `question`: its instruction lines after the question."""
    return "\n".join([question, *INSTRUCTION_LINES[task]])


def short_prompt(question: str) -> str:
    return f"{question}\n{SHORT_ANSWER}"


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
