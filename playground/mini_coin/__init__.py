"""mini-CoIN, a synthetic CoIN in the real CoIN file formats (docs/coin_formats.md), small enough for CPU runs.
`playground/make_mini_coin.py` is its command line; the modules, each with one job:

    vocabulary.py   colours, shapes, objects, words and book covers the pictures and answers are made of
    scene.py        scene objects and books: how they are sampled and named in words
    drawing.py      the Painter: PIL images on a grid of cells (one vision-tower patch each)
    tasks.py        the eight tasks' instruction wording and one example maker per task (their names, order and
                    question files: the CoIN registry, llava/coin/tasks.py)
    pretraining.py  the pre-training set's captions and generic question-answer pairs
    formats.py      CoIN's ids, image paths, records and scorer annotation files
    generate.py     MiniCoinConfig and generate(): writes every file under the output folder
"""
