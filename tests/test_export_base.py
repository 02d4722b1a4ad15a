"""export_base splits a full LLaVA model directory into BASE/lm, BASE/vision, BASE/mm_projector.bin, and a model
rebuilt from those parts (as training does from --model_name_or_path / --vision_tower / --pretrain_mm_mlp_adapter)
computes the same logits as the full model."""
import json
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, run, train_args


def _perturb(model, seed: int = 0) -> None:
    """Make every weight distinctive, so a mix-up of parts (or of rows) cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


def _inputs(model, tokenizer, batch: int = 2):
    from llava.mm_utils import expand_image_tokens, tokenizer_image_token

    prompt = "USER: <image>\nWhat colour is it? ASSISTANT: red"
    ids = expand_image_tokens(tokenizer_image_token(prompt, tokenizer), model.config.image_token_index,
                              model.config.image_seq_length)
    size = model.config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    return torch.tensor([ids] * batch), pixels


def _rebuild(base: Path, select_layer: int):
    from transformers import AutoTokenizer

    from llava.model.builder import build_llava, load_pretrained_projector

    tokenizer = AutoTokenizer.from_pretrained(base / "lm")
    model = build_llava(str(base / "lm"), str(base / "vision"), tokenizer, select_layer=select_layer)
    load_pretrained_projector(model, str(base / "mm_projector.bin"))
    return model.eval(), tokenizer


def _logits(model, input_ids, pixels):
    with torch.no_grad():
        return model(input_ids=input_ids, pixel_values=pixels).logits


@pytest.fixture(scope="module")
def full_dir(tiny, tmp_path_factory) -> Path:
    """A full model directory as a full fine-tune saves it: model + tokenizer (with <image>) + image processor."""
    from transformers import AutoTokenizer

    from llava.model.builder import build_llava, load_image_processor, load_pretrained_projector

    out = tmp_path_factory.mktemp("full")
    tokenizer = AutoTokenizer.from_pretrained(tiny / "lm")
    model = build_llava(str(tiny / "lm"), str(tiny / "vision"), tokenizer, select_layer=-2)
    load_pretrained_projector(model, str(tiny / "mm_projector.bin"))
    _perturb(model)
    model.config.image_aspect_ratio = "pad"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    load_image_processor(str(tiny / "vision")).save_pretrained(out)
    return out


def test_export_layout_and_same_logits(full_dir, tiny, tmp_path):
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    from llava.constants import DEFAULT_IMAGE_TOKEN

    base = tmp_path / "base"
    run([PYTHON, "-m", "llava.model.export_base", "--model-path", str(full_dir), "--output_dir", str(base)])
    assert (base / "mm_projector.bin").is_file() and (base / "vision" / "preprocessor_config.json").is_file()
    keys = set(torch.load(base / "mm_projector.bin", weights_only=True))
    assert keys == {f"model.mm_projector.{i}.{n}" for i in (0, 2) for n in ("weight", "bias")}

    original = AutoTokenizer.from_pretrained(tiny / "lm")
    exported = AutoTokenizer.from_pretrained(base / "lm")
    assert len(exported) == len(original) and DEFAULT_IMAGE_TOKEN not in exported.get_vocab()
    text = "What colour is it? red green blue"
    assert exported(text).input_ids == original(text).input_ids
    lm_config = json.loads((base / "lm" / "config.json").read_text())
    assert lm_config["model_type"] == "llama" and lm_config["vocab_size"] == len(original)
    info = json.loads((base / "export_info.json").read_text())
    assert info["settings"]["mm_vision_select_layer"] == -2 and info["removed_tokens"] == [DEFAULT_IMAGE_TOKEN]

    full = LlavaForConditionalGeneration.from_pretrained(full_dir).eval()
    full_tokenizer = AutoTokenizer.from_pretrained(full_dir)
    rebuilt, tokenizer = _rebuild(base, select_layer=-2)
    assert rebuilt.config.image_token_index == full.config.image_token_index
    assert tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN) == full.config.image_token_index
    input_ids, pixels = _inputs(full, full_tokenizer)
    want, got = _logits(full, input_ids, pixels), _logits(rebuilt, input_ids, pixels)
    # Every column but the re-added <image> token's (never a target; suppressed in generation) is the same.
    vocab = len(original)
    assert got.shape == want.shape
    torch.testing.assert_close(got[..., :vocab], want[..., :vocab], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(want[..., :vocab], _logits(_rebuild_untrained(tiny), input_ids, pixels)[..., :vocab])


def _rebuild_untrained(tiny: Path):
    return _rebuild(tiny, select_layer=-2)[0]


def test_export_refuses_lora_dir(tmp_path, capsys):
    from llava.model.export_base import main

    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (lora / "adapter_config.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        main(["--model-path", str(lora), "--output_dir", str(tmp_path / "base")])
    assert exit_info.value.code == 1 and "no full model weights" in capsys.readouterr().err
    assert not (tmp_path / "base").exists()


@pytest.mark.slow
def test_full_finetune_export_then_lora_from_base(tiny, colour_data, tmp_path):
    """train.py full fine-tune (vision tower included) -> export_base -> a LoRA run from BASE's three parts."""
    full, base, lora = tmp_path / "full", tmp_path / "base", tmp_path / "lora"
    common = ["--max_steps", "2", "--save_strategy", "no", "--logging_steps", "1"]
    args = train_args(tiny, colour_data, full, *common)
    args[args.index("--lora_enable") + 1] = "False"
    run([PYTHON, "-m", "llava.train.train", *args, "--unfreeze_mm_vision_tower", "True"])
    run([PYTHON, "-m", "llava.model.export_base", "--model-path", str(full), "--output_dir", str(base)])
    run([PYTHON, "-m", "llava.train.train", *train_args(base, colour_data, lora, *common)])
    assert (lora / "adapter_config.json").is_file() and (lora / "non_lora_trainables.bin").is_file()
    from transformers import LlavaForConditionalGeneration

    trained = LlavaForConditionalGeneration.from_pretrained(full).eval()
    rebuilt, tokenizer = _rebuild(base, select_layer=-2)
    input_ids, pixels = _inputs(trained, tokenizer)
    vocab = len(tokenizer) - 1
    torch.testing.assert_close(_logits(rebuilt, input_ids, pixels)[..., :vocab],
                               _logits(trained, input_ids, pixels)[..., :vocab], rtol=1e-5, atol=1e-5)
