"""Drawing mini-CoIN's images with PIL: shapes with dark outlines, eight object drawings, fitted text, and the
Painter that lays them out on a grid x grid layout of cells (one vision-tower patch per cell)."""
from __future__ import annotations

import random
from functools import lru_cache
from typing import Callable

from PIL import Image, ImageDraw, ImageFont

from playground.mini_coin.scene import Book, SceneObject
from playground.mini_coin.vocabulary import COLOURS

WHITE, DARK, BROWN = (255, 255, 255), (35, 35, 35), (115, 70, 30)
LIGHT_BACKGROUNDS = ((255, 255, 255), (236, 236, 226), (224, 234, 246), (246, 230, 230))
BLANKS = {"black": (0, 0, 0), "dark grey": (60, 60, 60), "grey": (128, 128, 128), "white": (255, 255, 255)}

Box = tuple[float, float, float, float]


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
