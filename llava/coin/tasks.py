"""The CoIN task registry: the eight tasks in CoIN's order and, per task, its scripts, files and programs.

One table serves the chain scripts (`scripts/CoIN/Train_<chain>/<train_script>`, `scripts/CoIN/Eval/<eval_script>`),
the evaluation (`llava.coin.evaluation`: which file is scored, by which inference module and scorer), the accuracy
matrix (`llava.eval.matrix`: the task order), the mini-CoIN generator (`playground/mini_coin/`: which tasks and
question files it writes) and the mini-CoIN benchmark's default task list (`python -m llava.coin.tasks` prints the
names, space-separated, for scripts/mini/settings.sh). Instruction files are
`DATA_ROOT/INSTRUCTION_TYPE/<name>/train.json` and `.../<eval_split>.json`; annotation paths are relative to
IMAGE_ROOT (docs/coin_formats.md describes every file).
"""
from __future__ import annotations

from dataclasses import dataclass

TRAIN_FILE = "train.json"
MULTITASK = "Multitask"  # the folder of the union's train.json and the name of the multitask run


@dataclass(frozen=True)
class Annotation:
    """An extra input of a scorer: `flag` IMAGE_ROOT/`path`, valid when IMAGE_ROOT/`requires` exists (a file)."""

    flag: str
    path: str
    requires: str
    what: str


@dataclass(frozen=True)
class CoinTask:
    """name: CoIN's folder name; train_script / eval_script: the file names of CoIN's scripts; eval_split: the
    question file that is scored (`test` or `val`); inference / scorer: modules of `llava.eval.CoIN`."""

    name: str
    train_script: str
    eval_script: str
    eval_split: str
    inference: str
    scorer: str
    annotations: tuple[Annotation, ...] = ()

    @property
    def eval_file(self) -> str:
        return f"{self.eval_split}.json"

    @property
    def question_splits(self) -> tuple[str, ...]:
        """The question files CoIN ships for the task (their names without .json), the scored one first: every
        task has test.json; a task scored on val.json has both."""
        return (self.eval_split,) if self.eval_split == "test" else (self.eval_split, "test")


TASKS: tuple[CoinTask, ...] = (
    CoinTask("ScienceQA", "1_Science.sh", "1_eval_sqa.sh", "test", "model_vqa_science", "eval_science_qa",
             (Annotation("--base-dir", "ScienceQA", "ScienceQA/problems.json", "ScienceQA annotations"),)),
    CoinTask("TextVQA", "2_TextVQA.sh", "2_eval_textqa.sh", "val", "model_text_vqa", "eval_textvqa",
             (Annotation("--annotation-file", "TextVQA/TextVQA_0.5.1_val.json", "TextVQA/TextVQA_0.5.1_val.json",
                         "TextVQA annotations"),)),
    CoinTask("ImageNet", "3_ImageNet.sh", "3_eval_ImageNet.sh", "test", "model_vqa_cc_instruction", "eval_imagenet"),
    CoinTask("GQA", "4_GQA.sh", "4_eval_gqa.sh", "test", "model_gqa", "eval_gqa",
             (Annotation("--annotation-file", "GQA/testdev_balanced_questions.json",
                         "GQA/testdev_balanced_questions.json", "GQA annotations"),)),
    CoinTask("VizWiz", "5_VizWiz.sh", "5_eval_vizwiz.sh", "val", "model_vizwiz", "eval_vizwiz"),
    CoinTask("Grounding", "6_Grounding.sh", "6_eval_grounding.sh", "test", "model_vqa_cc_instruction",
             "eval_grounding"),
    CoinTask("VQAv2", "7_vqav2.sh", "7_eval_vqav2.sh", "val", "model_vqa_cc_instruction", "eval_vqav2"),
    CoinTask("OCRVQA", "8_OCRVQA.sh", "8_eval_ocrvqa.sh", "test", "model_ocr_vqa", "eval_ocrvqa"),
)
BY_NAME = {t.name: t for t in TASKS}


def names() -> list[str]:
    """The task names in CoIN's order."""
    return [t.name for t in TASKS]


def task(name: str) -> CoinTask:
    """The task called `name`; ValueError naming the CoIN tasks otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown task '{name}' (CoIN tasks: {' '.join(names())})")
    return BY_NAME[name]


def parse_task_list(text: str) -> list[CoinTask]:
    """The tasks of a space-separated list (the TASKS setting), in its order: each a CoIN task, none twice."""
    listed = text.split()
    if not listed:
        raise ValueError("TASKS is empty")
    seen: set[str] = set()
    for name in listed:
        task(name)
        if name in seen:
            raise ValueError(f"TASKS names {name} twice: {text}")
        seen.add(name)
    return [BY_NAME[name] for name in listed]


if __name__ == "__main__":
    print(" ".join(names()))
