"""The mini base's vision phase (playground/mini_vision_pretrain.py): the untrained tower learns every cell's shape,
colour and place, and is written back in place, loadable as the LLaVA vision tower."""
import random
import shutil

import pytest
import torch
from transformers import CLIPVisionModel

from playground.mini_coin.drawing import Painter
from playground.mini_coin.vocabulary import SHAPES
from playground.mini_vision_pretrain import (IGNORE, LETTERS, WORDS, VisionPretrainConfig, labelled_batch, main,
                                             pretrain_tower)


@pytest.fixture
def tower_dir(tiny, tmp_path):
    target = tmp_path / "vision"
    shutil.copytree(tiny / "vision", target)
    return target


def test_the_tower_learns_cell_shapes_far_above_the_majority_guess(tower_dir):
    before = {k: v.clone() for k, v in CLIPVisionModel.from_pretrained(tower_dir).state_dict().items()}
    accuracy = pretrain_tower(VisionPretrainConfig(tower_dir, steps=80, batch_size=32, lr=3e-3))
    # 1-4 objects on the test tower's 2x2 grid: "empty" is the most common label, 37.5 % of cells.
    assert accuracy["shape"] > 0.8 and accuracy["colour"] > 0.8
    assert accuracy["place"] > 0.5  # where each patch is: 4 cells, a guess is right for 25 %
    after = CLIPVisionModel.from_pretrained(tower_dir).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (tower_dir / "preprocessor_config.json").is_file()


def test_cli_rejects_a_non_positive_step_count(tower_dir):
    with pytest.raises(SystemExit):
        main(["--vision_tower", str(tower_dir), "--steps", "0"])


def test_mini_batches_label_scene_cells_and_the_letters_of_signs_and_covers():
    images, labels = labelled_batch(random.Random(0), Painter(96, 3), 60)
    assert len(images) == 60 and all(image.size == (96, 96) for image in images)
    scenes = labels["shape"][:, 0] != IGNORE
    assert 10 < int(scenes.sum()) < 50  # about half scenes, half text
    assert (labels["letter"][scenes] == len(LETTERS)).all()  # a scene has no letters
    assert ((labels["shape"][scenes] < len(SHAPES)).sum(dim=1) >= 1).all()  # and 1-4 objects
    assert (labels["place"] == torch.arange(9)).all()  # every patch, scene or text, is labelled with its place
    for row in labels["letter"][~scenes].view(-1, 3, 3):
        words = ["".join(LETTERS[i] for i in line) for line in row.tolist() if line[0] != len(LETTERS)]
        assert words and all(word in WORDS for word in words)
