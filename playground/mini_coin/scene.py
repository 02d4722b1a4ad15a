"""What a mini-CoIN picture holds and how it is said: scene objects on the cell grid, book covers, how they are
sampled (each from the caller's random stream) and the phrases that name them."""
from __future__ import annotations

import random
from dataclasses import dataclass

from playground.mini_coin.vocabulary import BOOK_AUTHORS, BOOK_GENRES, BOOK_TITLES, COLOUR_NAMES, SHAPES


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


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def place_phrase(row: int, col: int, grid: int) -> str:
    """Where a cell is, as a phrase: "at the top left", "in the center" (grid 3) or "in row 1, column 2"."""
    if grid != 3:
        return f"in row {row + 1}, column {col + 1}"
    if (row, col) == (1, 1):
        return "in the center"
    return f"at the {('top', 'middle', 'bottom')[row]} {('left', 'center', 'right')[col]}"


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


def sample_book(rng: random.Random) -> Book:
    return Book(rng.choice(BOOK_TITLES), rng.choice(BOOK_AUTHORS), rng.choice(tuple(BOOK_GENRES)),
                rng.choice(COLOUR_NAMES))
