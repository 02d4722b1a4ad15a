"""The words and colours mini-CoIN's pictures and answers are made of: few, visually distinct values (a tiny model
must learn every task jointly). Colours map a name to its RGB fill."""
from __future__ import annotations

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
