"""CoIN's file name (misspelt) of the ImageNet scorer, kept for CoIN's scripts: `python -m
llava.eval.CoIN.eval_ImagetNet` runs `llava.eval.CoIN.eval_imagenet`, where the scorer lives."""
from llava.eval.CoIN import common
from llava.eval.CoIN.eval_imagenet import main, result_text, score

__all__ = ["main", "result_text", "score"]

if __name__ == "__main__":
    common.run(main)
