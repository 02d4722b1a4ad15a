"""Training and inference read and preprocess an image with the same two functions (llava.mm_utils.load_image,
image_pixels): the same file with the same aspect-ratio setting gives the same pixel tensor in the training dataset
and in the inference scripts, whichever preprocessing each script chooses."""
import importlib
import json
import types
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from transformers import AutoTokenizer

from llava.eval.run_vqa import IMAGE_PREPROCESS, aspect_ratio, question_pixels
from llava.mm_utils import IMAGE_ASPECT_RATIOS, load_image
from llava.model.builder import add_image_token, load_image_processor
from llava.train.data import LazySupervisedDataset, TokenizerSpec

REPO = Path(__file__).resolve().parents[1]
# training's --image_aspect_ratio -> the --image-preprocess mode of the inference scripts that stands for it
SAME_AS_TRAINING = {"pad": "pad", "square": "crop"}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Non-square images in modes other than RGB: a wide palette image and a tall one with transparency."""
    root = tmp_path_factory.mktemp("images")
    wide = Image.new("RGB", (40, 24), (240, 240, 240))
    ImageDraw.Draw(wide).rectangle((2, 3, 17, 20), fill=(200, 20, 20))
    wide.convert("P").save(root / "wide.png")
    tall = Image.new("RGBA", (18, 30), (20, 90, 200, 255))
    ImageDraw.Draw(tall).ellipse((3, 12, 15, 28), fill=(250, 200, 0, 128))
    tall.save(root / "tall.png")
    return root


@pytest.fixture(scope="module")
def training(tiny, images):
    """The pixel values LazySupervisedDataset gives image `name` with --image_aspect_ratio `aspect`."""
    tokenizer = AutoTokenizer.from_pretrained(tiny / "lm")
    add_image_token(tokenizer)
    spec = TokenizerSpec("v1", tokenizer.convert_tokens_to_ids("<image>"), 4, 2048)
    processor = load_image_processor(tiny / "vision")

    def pixels(name: str, aspect: str) -> torch.Tensor:
        data = images / f"{name}-{aspect}.json"
        data.write_text(json.dumps([{"id": "r0", "image": name, "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": "red"}]}]))
        return LazySupervisedDataset(str(data), tokenizer, spec, processor, str(images), aspect)[0]["pixel_values"]

    return pixels


@pytest.mark.parametrize("name", ["wide.png", "tall.png"])
def test_training_and_inference_give_identical_pixels(tiny, images, training, name):
    processor = load_image_processor(tiny / "vision")
    by_aspect = {}
    for aspect, mode in SAME_AS_TRAINING.items():
        trained = training(name, aspect)
        config = types.SimpleNamespace(image_aspect_ratio=aspect)  # what a model trained with `aspect` records
        assert torch.equal(question_pixels(str(images / name), processor, mode, config), trained)
        assert torch.equal(question_pixels(str(images / name), processor, "model", config), trained)
        assert trained.shape == (3, 28, 28)
        by_aspect[aspect] = trained
    assert not torch.equal(by_aspect["pad"], by_aspect["square"])  # the two settings differ on a non-square image


def test_each_inference_script_keeps_its_own_preprocessing_choice():
    """Upstream's scripts differ: ScienceQA's crop whatever the model was trained with, the loader follows the model.
    Every script's default is one of the modes, and each mode is one of the training settings."""
    modules = sorted(REPO.glob("llava/eval/model_*.py")) + sorted(REPO.glob("llava/eval/CoIN/model_*.py"))
    choices = {}
    for path in modules:
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        choices[name] = importlib.import_module(name).DEFAULTS.image_preprocess
    assert set(choices.values()) <= set(IMAGE_PREPROCESS)
    assert choices["llava.eval.CoIN.model_vqa_science"] == "crop" and choices["llava.eval.model_vqa_loader"] == "model"
    padded, unrecorded = types.SimpleNamespace(image_aspect_ratio="pad"), types.SimpleNamespace()
    assert [aspect_ratio(mode, padded) for mode in IMAGE_PREPROCESS] == ["pad", "pad", "square"]
    assert aspect_ratio("model", unrecorded) == "square"  # upstream's default when a config records none
    assert {aspect_ratio(mode, padded) for mode in IMAGE_PREPROCESS} <= set(IMAGE_ASPECT_RATIOS)


def test_an_unsupported_aspect_ratio_is_an_error_not_a_fallback(tiny, images, training):
    processor = load_image_processor(tiny / "vision")
    anyres = types.SimpleNamespace(image_aspect_ratio="anyres")
    with pytest.raises(ValueError, match="image_aspect_ratio 'anyres' is not implemented"):
        question_pixels(str(images / "wide.png"), processor, "model", anyres)
    with pytest.raises(ValueError, match="image_aspect_ratio 'anyres' is not implemented"):
        training("wide.png", "anyres")
    with pytest.raises(ValueError, match="--image-preprocess 'stretch'"):
        aspect_ratio("stretch", anyres)


def test_unreadable_and_missing_images_are_named(images):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match=f"cannot read image {images / 'broken.png'}"):
        load_image(images / "broken.png")
    missing = f"image file missing: {images / 'gone.png'} \\(check --image-folder\\)"
    with pytest.raises(FileNotFoundError, match=missing):
        question_pixels(str(images / "gone.png"), None, "pad", None)
    assert load_image(images / "wide.png").mode == "RGB"
