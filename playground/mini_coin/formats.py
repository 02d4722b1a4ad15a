"""CoIN's file formats for mini-CoIN (docs/coin_formats.md): question ids, image paths in the real CoIN folders,
training and eval records, and the annotation files the real scorers read."""
from __future__ import annotations

import json
from pathlib import Path

from llava.coin import tasks as coin_tasks
from playground.mini_coin.tasks import Example

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
INTEGER_IDS = {"TextVQA", "Grounding", "VQAv2"}


def numeric_id(task: str, split: str, index: int) -> int:
    """Unique over tasks and splits: task digit (its place in CoIN's order, from 1), split digit, then six digits
    of index."""
    return (coin_tasks.names().index(task) + 1) * 10_000_000 + SPLIT_CODES[split] * 1_000_000 + index


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
