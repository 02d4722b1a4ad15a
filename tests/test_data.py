"""Tokenization, label masks, image tokens and image modes of the training data (bad records: test_bad_inputs.py)."""
import json

import pytest
import torch
from transformers import AutoTokenizer, CLIPVisionConfig

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import expand_image_tokens, tokenize_with_offsets, tokenizer_image_token
from llava.model.builder import add_image_token, image_seq_length, load_image_processor
from llava.train.data import DataCollatorForSupervisedDataset, LazySupervisedDataset, TokenizerSpec

N_IMAGE_TOKENS = 4  # the `test` tiny tower: 28 px images, 14 px patches


@pytest.fixture(scope="module")
def tokenizer(tiny):
    tok = AutoTokenizer.from_pretrained(tiny / "lm")
    add_image_token(tok)
    return tok


def spec(tokenizer, version="v1", max_len=2048):
    return TokenizerSpec(version, tokenizer.convert_tokens_to_ids("<image>"), N_IMAGE_TOKENS, max_len)


def write(tmp_path, records, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def record(*turns, image="img/0.png", rid="x"):
    rec = {"id": rid, "conversations": [{"from": "human" if i % 2 == 0 else "gpt", "value": t}
                                        for i, t in enumerate(turns)]}
    if image:
        rec["image"] = image
    return rec


def dataset(tmp_path, tokenizer, tiny, colour_data, records, **kw):
    path = write(tmp_path, records)
    return LazySupervisedDataset(str(path), tokenizer, kw.pop("spec", spec(tokenizer)), load_image_processor(tiny / "vision"),
                                 str(colour_data), "pad", **kw)


def targets(tokenizer, item):
    """The trained-on text, one string per contiguous run of labels."""
    runs, current = [], []
    for token, label in zip(item["input_ids"].tolist(), item["labels"].tolist()):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]


def test_image_token_count_matches_the_tower():
    assert image_seq_length(CLIPVisionConfig(image_size=336, patch_size=14)) == 576  # LLaVA-1.5, CLS dropped
    assert image_seq_length(CLIPVisionConfig(image_size=336, patch_size=14), "cls_patch") == 577
    assert image_seq_length(CLIPVisionConfig(image_size=28, patch_size=14)) == N_IMAGE_TOKENS


def test_tokenizer_image_token_one_placeholder_one_bos(tokenizer):
    prompt = "USER: <image>\nWhat is it? ASSISTANT:"
    ids = tokenizer_image_token(prompt, tokenizer)
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert tokenize_with_offsets(prompt, tokenizer)[0] == ids
    assert torch.equal(tokenizer_image_token(prompt, tokenizer, return_tensors="pt"), torch.tensor(ids))
    expanded = expand_image_tokens(ids, 99, 576)
    assert expanded.count(99) == 576 and IMAGE_TOKEN_INDEX not in expanded


def test_v1_masks_everything_but_the_replies(tmp_path, tokenizer, tiny, colour_data):
    ds = dataset(tmp_path, tokenizer, tiny, colour_data,
                 [record("What colour is it?\n<image>", "red", "Are you sure?", "yes it is")])
    item = ds[0]
    assert targets(tokenizer, item) == ["red</s>", "yes it is</s>"]
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    image_positions = (item["input_ids"] == image_id).nonzero().flatten().tolist()
    assert len(image_positions) == N_IMAGE_TOKENS and image_positions == list(range(image_positions[0], image_positions[0] + 4))
    assert all(item["labels"][p] == IGNORE_INDEX for p in image_positions)
    assert item["pixel_values"].shape == (3, 28, 28)
    text = tokenizer.decode(item["input_ids"][image_positions[-1] + 1:])
    assert text.startswith("\nWhat colour is it? ASSISTANT: red</s>USER: Are you sure?")  # <image> moved to the front


def test_plain_template_trains_on_the_caption(tmp_path, tokenizer, tiny, colour_data):
    ds = dataset(tmp_path, tokenizer, tiny, colour_data, [record("<image>\nDescribe.", "a red square")],
                 spec=spec(tokenizer, "plain"))
    assert targets(tokenizer, ds[0]) == ["a red square\n"]


def test_collator_pads_right_and_keeps_record_ids(tmp_path, tokenizer, tiny, colour_data):
    ds = dataset(tmp_path, tokenizer, tiny, colour_data, [record("<image>\nQ", "red", rid="a"),
                                                          record("<image>\nQ", "a much longer answer here", rid="b")])
    batch = DataCollatorForSupervisedDataset(tokenizer.pad_token_id)([ds[0], ds[1]])
    n0 = len(ds[0]["input_ids"])
    assert batch["attention_mask"][0].sum() == n0 and batch["attention_mask"][1].all()
    assert (batch["labels"][0, n0:] == IGNORE_INDEX).all() and (batch["input_ids"][0, n0:] == tokenizer.pad_token_id).all()
    assert batch["pixel_values"].shape == (2, 3, 28, 28)
    assert batch["record_ids"][1].endswith("train.json record 1 (id=b)")


def test_truncation_that_keeps_the_image_is_allowed_and_counted(tmp_path, tokenizer, tiny, colour_data, caplog):
    ds = dataset(tmp_path, tokenizer, tiny, colour_data, [record("<image>\nQ", "red " * 40, rid="x")],
                 spec=spec(tokenizer, max_len=120))
    assert len(ds[0]["input_ids"]) == 120
    assert "1 of 1 records were truncated" in caplog.text


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "RGBA", "I;16"])
def test_image_modes_are_converted(tmp_path, tokenizer, tiny, mode):
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (30, 20), (200, 10, 10)).convert(mode).save(tmp_path / "img" / "m.png" if mode != "CMYK"
                                                                 else tmp_path / "img" / "m.jpg")
    name = "img/m.jpg" if mode == "CMYK" else "img/m.png"
    ds = LazySupervisedDataset(str(write(tmp_path, [record("<image>\nQ", "red", image=name)])), tokenizer, spec(tokenizer),
                               load_image_processor(tiny / "vision"), str(tmp_path), "pad")
    assert ds[0]["pixel_values"].shape == (3, 28, 28)
