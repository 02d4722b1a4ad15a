"""LLaVA conversation data: validation, tokenization with label masks, images, and batching.

Every record is checked when the dataset is built (structure, roles, image field vs `<image>` tokens, image file
present, token length, at least one label); a bad record raises `DataError` naming the file, the record index
and id, the problem and the fix. Labels are IGNORE_INDEX everywhere except the assistant replies and the
separator that closes each reply (upstream's contract), found from the character spans the conversation
template reports, so the mask is right for every separator style without re-tokenizing pieces.
"""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import Dataset

from llava import conversation as conversation_lib
from llava.constants import DEFAULT_IMAGE_TOKEN, IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import check_aspect_ratio, image_pixels, load_image, tokenize_with_offsets
from llava.utils import load_json

logger = logging.getLogger(__name__)

ROLE_HUMAN = ("human", "user")
ROLE_GPT = ("gpt", "assistant")


class DataError(ValueError):
    """A bad training record or file; the message names the file, the record and the fix."""


@dataclass
class Sample:
    """Where a record came from, for error messages and NaN reports."""

    source: str
    index: int
    record: dict

    @property
    def record_id(self) -> str:
        return str(self.record.get("id", self.index)) if isinstance(self.record, dict) else str(self.index)

    def error(self, problem: str, fix: str = "") -> DataError:
        return DataError(f"{self.source}: record {self.index} (id={self.record_id}): {problem}" + (f". {fix}" if fix else ""))


@dataclass
class TokenizerSpec:
    """What preprocessing needs to know about the model: template, image token and length limit."""

    conv_version: str
    image_token_id: int | None
    image_seq_length: int
    model_max_length: int
    mm_use_im_start_end: bool = False


def load_samples(data_path: str, memory_data_path: str | None = None, seed: int = 42) -> list[Sample]:
    """The records of `data_path` (a JSON list), plus CoIN's replay file `memory_data_path` appended and the
    whole shuffled with `seed` (CoIN's behaviour, made deterministic)."""
    samples = _load_one(data_path)
    if memory_data_path:
        samples += _load_one(memory_data_path)
        random.Random(seed).shuffle(samples)
    return samples


def _load_one(path: str) -> list[Sample]:
    if not os.path.isfile(path):
        raise DataError(f"{path}: data file not found. Check --data_path.")
    records = load_json(path)
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(records).__name__}.")
    if not records:
        raise DataError(f"{path}: empty dataset (no records). Point --data_path at a file with training records.")
    return [Sample(path, i, r) for i, r in enumerate(records)]


def check_structure(sample: Sample, image_folder: str | None) -> None:
    """Raise DataError unless the record has human/gpt turns in order, an image field exactly when one
    `<image>` token is present, and (with an image) an existing image file."""
    record = sample.record
    if not isinstance(record, dict):
        raise sample.error(f"expected an object, got {type(record).__name__}")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise sample.error("no `conversations` list", "Each record needs \"conversations\": [{\"from\": \"human\", ...}, {\"from\": \"gpt\", ...}]")
    for k, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or not isinstance(turn.get("value"), str):
            raise sample.error(f"turn {k} is not {{\"from\": ..., \"value\": <string>}}")
    turns = _drop_leading_non_human(turns)
    for k, turn in enumerate(turns):
        expected = ROLE_HUMAN if k % 2 == 0 else ROLE_GPT
        if turn["from"].lower() not in expected:
            raise sample.error(f"roles out of order: turn {k} is from {turn['from']!r}, expected {expected[0]!r}",
                               "Turns must alternate human, gpt, human, gpt, ...")
    if not any(t["from"].lower() in ROLE_GPT for t in turns):
        raise sample.error("no assistant (gpt) turn to train on")
    n_image_tokens = sum(t["value"].count(DEFAULT_IMAGE_TOKEN) for t in turns)
    n_image_tokens_gpt = sum(t["value"].count(DEFAULT_IMAGE_TOKEN) for t in turns if t["from"].lower() in ROLE_GPT)
    has_image = "image" in record and record["image"] is not None
    if n_image_tokens_gpt:
        raise sample.error("an assistant turn contains <image>", "Put the <image> token in the human turn")
    if has_image and n_image_tokens == 0:
        raise sample.error("has an `image` field but no <image> token in its turns",
                           "Add \"<image>\\n\" to the first human turn, or drop the `image` field")
    if not has_image and n_image_tokens:
        raise sample.error("has an <image> token but no `image` field", "Add the image path, or remove the token")
    if n_image_tokens > 1:
        raise sample.error(f"has {n_image_tokens} <image> tokens; one image per record is supported")
    if has_image:
        if not isinstance(record["image"], str):
            raise sample.error("`image` must be a path string (one image per record)")
        path = image_path(record["image"], image_folder)
        if not os.path.isfile(path):
            raise sample.error(f"image file missing: {path}", "Check --image_folder and the record's `image` path")


def _drop_leading_non_human(turns: list[dict]) -> list[dict]:
    start = 0
    while start < len(turns) and turns[start]["from"].lower() not in ROLE_HUMAN:
        start += 1
    return turns[start:]


def image_path(name: str, image_folder: str | None) -> str:
    return os.path.join(image_folder, name) if image_folder else name


def render_sample(sample: Sample, spec: TokenizerSpec) -> tuple[str, list[tuple[int, int]]]:
    """The prompt text of a record and the character spans of its training targets."""
    turns = _drop_leading_non_human(sample.record["conversations"])
    template = conversation_lib.conv_templates[spec.conv_version]
    if template.sep_style == conversation_lib.SeparatorStyle.PLAIN:
        if len(turns) != 2:
            raise sample.error(f"the plain template needs exactly one human and one gpt turn, got {len(turns)} turns")
        prefix = DEFAULT_IMAGE_TOKEN if "image" in sample.record else ""
        text = prefix + turns[1]["value"] + template.sep
        return text, [(len(prefix), len(text))]
    conv = template.copy()
    conv.messages = []
    for k, turn in enumerate(turns):
        value = turn["value"]
        if DEFAULT_IMAGE_TOKEN in value:
            value = _image_first(value, template.version)
        conv.append_message(conv.roles[k % 2], value)
    return conv.render()


def _image_first(value: str, version: str) -> str:
    """Upstream's preprocess_multimodal: the image token moved to the start of its turn, then a newline."""
    rest = value.replace(DEFAULT_IMAGE_TOKEN, "").strip()
    if "mmtag" in version:
        return "<Image>" + DEFAULT_IMAGE_TOKEN + "</Image>\n" + rest
    return DEFAULT_IMAGE_TOKEN + "\n" + rest


def tokenize_sample(sample: Sample, tokenizer, spec: TokenizerSpec) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) with the image placeholder expanded to `spec.image_seq_length` image
    tokens. Raises DataError when truncation would cut the image tokens or leave no label."""
    text, spans = render_sample(sample, spec)
    ids, offsets = tokenize_with_offsets(text, tokenizer)
    labels = [IGNORE_INDEX] * len(ids)
    for pos, (start, end) in enumerate(offsets):
        for span_start, span_end in spans:
            if start >= span_start and end <= span_end and end > start:
                labels[pos] = ids[pos]
            elif start < span_end and end > span_start and not (start >= span_start and end <= span_end):
                raise sample.error(f"token {pos} crosses the boundary of an assistant reply (tokenization mismatch)")
    input_ids, label_ids = [], []
    for token, label in zip(ids, labels):
        if token == IMAGE_TOKEN_INDEX:
            input_ids += [spec.image_token_id] * spec.image_seq_length
            label_ids += [IGNORE_INDEX] * spec.image_seq_length
        else:
            input_ids.append(token)
            label_ids.append(label)
    truncated = len(input_ids) > spec.model_max_length
    if truncated:
        image_positions = [i for i, t in enumerate(input_ids) if t == spec.image_token_id]
        if image_positions and image_positions[-1] >= spec.model_max_length:
            raise sample.error(
                f"its image tokens would be cut by --model_max_length {spec.model_max_length}: the sequence has "
                f"{len(input_ids)} tokens, the image at positions {image_positions[0]}..{image_positions[-1]}",
                "Raise --model_max_length or shorten the text before the image")
        input_ids = input_ids[: spec.model_max_length]
        label_ids = label_ids[: spec.model_max_length]
    if all(label == IGNORE_INDEX for label in label_ids):
        why = f" after truncation to --model_max_length {spec.model_max_length}" if truncated else ""
        raise sample.error(f"all labels are masked{why}: no assistant tokens to train on",
                           "Check the gpt turns are non-empty" + (" or raise --model_max_length" if truncated else ""))
    return input_ids, label_ids, truncated


def read_image(sample: Sample, image_folder: str | None) -> Image.Image:
    """The record's image as RGB (llava.mm_utils.load_image, as the inference scripts read it)."""
    path = image_path(sample.record["image"], image_folder)
    try:
        return load_image(path)
    except FileNotFoundError:
        raise sample.error(f"image file missing: {path}", "Check --image_folder and the record's `image` path") from None
    except ValueError as e:
        raise sample.error(str(e), "Replace the file or remove the record") from None


class LazySupervisedDataset(Dataset):
    """Records validated and tokenized up front (errors before any training step); images read lazily."""

    def __init__(self, data_path: str, tokenizer, spec: TokenizerSpec, image_processor=None,
                 image_folder: str | None = None, image_aspect_ratio: str = "square",
                 memory_data_path: str | None = None, seed: int = 42):
        conversation_lib.check_template(spec.conv_version, "--version")
        self.tokenizer = tokenizer
        self.spec = spec
        self.image_processor = image_processor
        self.image_folder = image_folder
        self.image_aspect_ratio = check_aspect_ratio(image_aspect_ratio)
        self.samples = load_samples(data_path, memory_data_path, seed)
        self.lengths: list[int] = []
        n_truncated = 0
        for sample in self.samples:
            check_structure(sample, image_folder)
            if "image" in sample.record and image_processor is None:
                raise sample.error("has an image but the model has no vision tower", "Pass --vision_tower")
            input_ids, _, truncated = tokenize_sample(sample, tokenizer, spec)
            self.lengths.append(len(input_ids))
            n_truncated += truncated
        if n_truncated:
            logger.warning("%d of %d records were truncated to --model_max_length %d (text after the limit is "
                           "not trained on)", n_truncated, len(self.samples), spec.model_max_length)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def modality_lengths(self) -> list[int]:
        """Upstream's grouping key: word count of all turns, negative for text-only records."""
        out = []
        for sample in self.samples:
            words = sum(len(t["value"].split()) for t in sample.record["conversations"])
            out.append(words if "image" in sample.record else -words)
        return out

    def __getitem__(self, i: int) -> dict:
        sample = self.samples[i]
        input_ids, labels, _ = tokenize_sample(sample, self.tokenizer, self.spec)
        item = {"input_ids": torch.tensor(input_ids, dtype=torch.long),
                "labels": torch.tensor(labels, dtype=torch.long),
                "record_id": f"{sample.source} record {sample.index} (id={sample.record_id})"}
        if "image" in sample.record:
            image = read_image(sample, self.image_folder)
            item["pixel_values"] = image_pixels(image, self.image_processor, self.image_aspect_ratio)
        return item


@dataclass
class DataCollatorForSupervisedDataset:
    """Right-pads a list of items into a batch; `record_ids` rides along for error reports (the trainer removes
    it before the forward pass)."""

    pad_token_id: int

    def __call__(self, items: list[dict]) -> dict:
        longest = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(items), longest), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, :n] = item["input_ids"]
            labels[row, :n] = item["labels"]
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask,
                 "record_ids": [item["record_id"] for item in items]}
        images = [item["pixel_values"] for item in items if "pixel_values" in item]
        if images:
            batch["pixel_values"] = torch.stack(images)
        return batch
