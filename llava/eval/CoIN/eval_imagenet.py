"""Correctly spelt name of `eval_ImagetNet` (CoIN's file name): `python -m llava.eval.CoIN.eval_imagenet`."""
from llava.eval.CoIN import common
from llava.eval.CoIN.eval_ImagetNet import main, score

__all__ = ["main", "score"]

if __name__ == "__main__":
    common.run(main)
