"""Checkpoints in upstream's layout: key conversion both ways, the projector file, LoRA directories that load
exactly, and `--previous_task_model_path` restoring LoRA A/B and the projector."""
import json

import pytest
import torch
from transformers import AutoTokenizer

from llava.model import checkpoint as ckpt
from llava.model.builder import build_llava, load_pretrained_model, load_pretrained_projector
from llava.model.convert import (hf_to_upstream_key, projector_from_upstream, state_dict_to_hf, state_dict_to_upstream,
                                 upstream_to_hf_key)
from llava.train.train import lora_target_modules

PAIRS = [
    ("model.embed_tokens.weight", "model.language_model.embed_tokens.weight"),
    ("model.layers.3.self_attn.q_proj.weight", "model.language_model.layers.3.self_attn.q_proj.weight"),
    ("model.norm.weight", "model.language_model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
    ("model.mm_projector.0.weight", "model.multi_modal_projector.linear_1.weight"),
    ("model.mm_projector.2.bias", "model.multi_modal_projector.linear_2.bias"),
    ("model.vision_tower.vision_tower.vision_model.embeddings.patch_embedding.weight",
     "model.vision_tower.embeddings.patch_embedding.weight"),
    ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
     "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight"),
    ("base_model.model.model.mm_projector.0.weight", "base_model.model.model.multi_modal_projector.linear_1.weight"),
]


@pytest.mark.parametrize("upstream,hf", PAIRS)
def test_keys_convert_both_ways(upstream, hf):
    assert upstream_to_hf_key(upstream) == hf
    assert hf_to_upstream_key(hf) == upstream


def test_tower_keys_written_before_the_vision_model_level_was_added_still_read():
    assert upstream_to_hf_key("base_model.model.model.vision_tower.vision_tower.embeddings.class_embedding") == \
        "base_model.model.model.vision_tower.embeddings.class_embedding"


def test_state_dict_round_trip():
    sd = {u: torch.randn(2) for u, _ in PAIRS}
    assert state_dict_to_upstream(state_dict_to_hf(sd)).keys() == sd.keys()


def build(tiny):
    tok = AutoTokenizer.from_pretrained(tiny / "lm")
    return build_llava(str(tiny / "lm"), str(tiny / "vision"), tok), tok


def test_pretrain_projector_file_loads_exactly(tiny):
    model, _ = build(tiny)
    load_pretrained_projector(model, str(tiny / "mm_projector.bin"))
    expected = projector_from_upstream(torch.load(tiny / "mm_projector.bin"))
    for name, value in model.model.multi_modal_projector.state_dict().items():
        assert torch.equal(value, expected[name])
    with pytest.raises(ValueError, match="only the mlp2x_gelu layout"):
        projector_from_upstream({"model.mm_projector.weight": torch.zeros(1)})


def test_default_lora_targets_are_every_language_model_linear(tiny):
    model, _ = build(tiny)
    targets = lora_target_modules(model, None)
    assert targets and all(t.startswith("model.language_model.layers.") for t in targets)
    leaves = {t.rsplit(".", 1)[-1] for t in targets}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert "lm_head" in lora_target_modules(model, "default,lm_head")
    assert lora_target_modules(model, r"model\.language_model\.layers\.0\.self_attn\.q_proj") == \
        ["model.language_model.layers.0.self_attn.q_proj"]
    with pytest.raises(ValueError, match="matches no linear layer"):
        lora_target_modules(model, "nonexistent_proj")


def lora_model(tiny, rank=8, seed=0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, tok = build(tiny)
    peft = get_peft_model(model, LoraConfig(r=rank, lora_alpha=16, target_modules=lora_target_modules(model, None),
                                            task_type="CAUSAL_LM"))
    peft.get_base_model().model.multi_modal_projector.requires_grad_(True)
    with torch.no_grad():  # make every trained tensor non-trivial
        for name, p in peft.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    return peft, tok


def saved_lora_dir(tiny, path, rank=8, seed=0):
    peft, tok = lora_model(tiny, rank, seed)
    trainable = {n: p.detach().clone() for n, p in peft.named_parameters() if p.requires_grad}
    ckpt.save_lora_dir(peft, str(path), {k: v for k, v in trainable.items() if "lora_" in k},
                       {k: v for k, v in trainable.items() if "lora_" not in k})
    return peft, tok, trainable


def test_lora_dir_has_upstream_layout(tiny, tmp_path):
    saved_lora_dir(tiny, tmp_path)
    assert {"adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin", "config.json"} <= \
        {p.name for p in tmp_path.iterdir()}
    keys = set(torch.load(tmp_path / "non_lora_trainables.bin"))
    assert keys == {f"base_model.model.model.mm_projector.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")}
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "llava"


def test_previous_task_restores_lora_and_projector_exactly(tiny, tmp_path):
    _, _, saved = saved_lora_dir(tiny, tmp_path, seed=0)
    fresh, _ = lora_model(tiny, seed=1)
    ckpt.restore_previous_task(fresh, str(tmp_path), lora_r=8)
    restored = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
    assert restored.keys() == saved.keys()
    for name, value in saved.items():
        assert torch.equal(restored[name], value), name


def test_previous_task_errors(tiny, tmp_path):
    saved_lora_dir(tiny, tmp_path / "r8", rank=8)
    other, _ = lora_model(tiny, rank=4)
    with pytest.raises(ValueError, match="trained with LoRA rank 8, this run uses --lora_r 4"):
        ckpt.restore_previous_task(other, str(tmp_path / "r8"), lora_r=4)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        ckpt.restore_previous_task(other, str(tmp_path / "nowhere"), lora_r=4)
    (tmp_path / "r8" / "non_lora_trainables.bin").unlink()
    same, _ = lora_model(tiny, rank=8)
    with pytest.raises(FileNotFoundError, match="missing \\['non_lora_trainables.bin'\\]"):
        ckpt.restore_previous_task(same, str(tmp_path / "r8"), lora_r=8)


def test_wrong_shape_checkpoint_is_an_error(tiny, tmp_path):
    saved_lora_dir(tiny, tmp_path)
    state = torch.load(tmp_path / "non_lora_trainables.bin")
    state["base_model.model.model.mm_projector.0.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "non_lora_trainables.bin")
    fresh, _ = lora_model(tiny)
    with pytest.raises(ValueError, match=r"has shape \(3, 3\), the model expects"):
        ckpt.load_non_lora_trainables(fresh, str(tmp_path))


def test_load_pretrained_model_matches_the_trained_model(tiny, tmp_path):
    peft, tok, _ = saved_lora_dir(tiny, tmp_path)
    tokenizer, model, processor, context_len = load_pretrained_model(str(tmp_path), str(tiny / "lm"), "llava-lora")
    ids = torch.tensor([[1, 5, 6, model.config.image_token_index] + [model.config.image_token_index] * 3 + [7, 8]])
    pixels = torch.randn(1, 3, 28, 28)
    peft.eval()
    with torch.no_grad():
        expected = peft(input_ids=ids, pixel_values=pixels).logits
        got = model(input_ids=ids, pixel_values=pixels).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert len(tokenizer) == len(tok) and context_len == 2048 and processor.crop_size["height"] == 28
