"""The pre-training set's records: captions and generic question-answer pairs in full sentences, in no task's
instruction or answer format, so that a tiny base model learns to talk about the images (PRETRAIN_MAKERS: each
maker draws one image and returns (image, question, answer))."""
from __future__ import annotations

import random

from PIL import Image

from playground.mini_coin.drawing import BLANKS, Painter
from playground.mini_coin.scene import SceneObject, article, place_phrase, sample_book, sample_row_pair, sample_scene
from playground.mini_coin.tasks import SQA_INSTRUCTION
from playground.mini_coin.vocabulary import BOOK_GENRES, COLOUR_NAMES, NUMBER_WORDS, OBJECTS, SHAPES, SIGN_WORDS

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


def pretrain_choice(rng: random.Random, painter: Painter) -> tuple[Image.Image, str, str]:
    """A multiple-choice question about a sign, a drawing or a book cover (not about shapes or counts, ScienceQA's
    questions): 2-4 options in random order, answered with the option's letter, the way LLaVA's language model
    already answers multiple choice."""
    kind = rng.choice(("sign", "drawing", "colour", "genre"))
    if kind == "sign":
        word, colour = rng.choice(SIGN_WORDS), rng.choice(COLOUR_NAMES)
        image, question, correct, pool = painter.sign(word, colour, rng), "Which word is on the sign?", word, SIGN_WORDS
    elif kind in ("drawing", "colour"):
        label, colour = rng.choice(OBJECTS), rng.choice(COLOUR_NAMES)
        image = painter.drawing(label, colour, rng)
        question, correct, pool = (("What is drawn here?", label, OBJECTS) if kind == "drawing"
                                   else ("What colour is the drawing?", colour, COLOUR_NAMES))
    else:
        book = sample_book(rng)
        image, question, correct = painter.book(book), "What kind of book is this?", BOOK_GENRES[book.icon]
        pool = tuple(BOOK_GENRES.values())
    options = [correct] + rng.sample([x for x in pool if x != correct], rng.randint(1, 3))
    rng.shuffle(options)
    letters = "ABCD"
    lines = [question] + [f"{letters[i]}. {option}" for i, option in enumerate(options)] + [SQA_INSTRUCTION]
    return image, "\n".join(lines), letters[options.index(correct)]


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
