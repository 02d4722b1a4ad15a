"""Writers for the checkpoint layouts users bring, from a model this package built (tests only).

`write_upstream_checkpoint` writes what haotian-liu/LLaVA's `LlavaLlamaForCausalLM.save_pretrained` leaves
(liuhaotian/llava-v1.5-7b's layout): config.json with model_type `llava_llama`, LLaMA's fields at the top level and
the `mm_*` keys; the LLaMA and `model.mm_projector.*` tensors under upstream's names (convert.py), in safetensors
or .bin, one file or shards with an index; the LLaMA tokenizer files (tokenizer.model + tokenizer_config.json, no
`<image>` token: upstream adds none). `write_native_checkpoint` writes a transformers Llava directory, as
scripts/merge_lora_weights.py does.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from llava.model.convert import hf_to_upstream_key, part_of, state_dict_to_upstream, upstream_to_hf_key

# The LLaVA keys of liuhaotian/llava-v1.5-7b's config.json (mm_vision_tower and mm_hidden_size are the tower's).
UPSTREAM_LLAVA_KEYS = {
    "mm_projector_type": "mlp2x_gelu", "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch",
    "mm_use_im_patch_token": False, "mm_use_im_start_end": False, "image_aspect_ratio": "pad",
    "mm_patch_merge_type": "flat", "freeze_mm_mlp_adapter": False, "tune_mm_mlp_adapter": False,
    "unfreeze_mm_vision_tower": False, "use_mm_proj": True, "mm_projector_lr": None,
    "tokenizer_model_max_length": 2048, "tokenizer_padding_side": "right",
}


def upstream_config(model, vocab_size: int, vision_tower: str, **overrides) -> dict:
    """config.json as upstream (transformers 4.31) writes it for `model` (a LlavaForConditionalGeneration)."""
    text = model.config.text_config
    config = {
        "_name_or_path": "./checkpoints/vicuna-7b-v1-5", "architectures": ["LlavaLlamaForCausalLM"],
        "model_type": "llava_llama", "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
        "hidden_act": "silu", "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
        "initializer_range": 0.02, "max_position_embeddings": text.max_position_embeddings,
        "num_attention_heads": text.num_attention_heads, "num_hidden_layers": text.num_hidden_layers,
        "num_key_value_heads": text.num_key_value_heads, "pretraining_tp": 1, "rms_norm_eps": text.rms_norm_eps,
        "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float32",
        "transformers_version": "4.31.0", "use_cache": True, "vocab_size": vocab_size,
        "mm_vision_tower": vision_tower, "mm_hidden_size": model.config.vision_config.hidden_size,
        **UPSTREAM_LLAVA_KEYS,
    }
    config.update(overrides)
    return config


def write_upstream_tokenizer(lm_dir: Path, out: Path) -> None:
    """The LLaMA tokenizer as upstream's checkpoints ship it: the SentencePiece model and a LlamaTokenizer config."""
    shutil.copy(Path(lm_dir) / "tokenizer.model", out / "tokenizer.model")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>",
        "model_max_length": 2048, "padding_side": "right", "clean_up_tokenization_spaces": False}))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}))


def _write_shards(state: dict[str, torch.Tensor], out: Path, fmt: str, shards: int) -> None:
    from safetensors.torch import save_file

    keys = sorted(state)
    size = -(-len(keys) // shards)
    groups = [keys[i:i + size] for i in range(0, len(keys), size)]
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    weight_map = {}
    for i, group in enumerate(groups, 1):
        name = f"{stem}.{ext}" if shards == 1 else f"{stem}-{i:05d}-of-{len(groups):05d}.{ext}"
        part = {k: state[k].detach().clone().contiguous() for k in group}
        if fmt == "safetensors":
            save_file(part, out / name, metadata={"format": "pt"})
        else:
            torch.save(part, out / name)
        weight_map.update({k: name for k in group})
    if shards > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        (out / f"{stem}.{ext}.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


def write_upstream_checkpoint(model, lm_dir: Path, out: Path, vision_tower: str, *, fmt: str = "safetensors",
                              shards: int = 1, with_tower: bool = False, **config_overrides) -> Path:
    """An upstream LLaVA-1.5 checkpoint of `model` (built by build_llava from `lm_dir`) in `out`. Embedding rows
    beyond the LM tokenizer's vocabulary (the `<image>` row this package adds) are cut, as upstream has none."""
    from transformers import AutoTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = len(AutoTokenizer.from_pretrained(lm_dir))
    state = state_dict_to_upstream(model.state_dict())
    for key in ("model.embed_tokens.weight", "lm_head.weight"):
        state[key] = state[key][:vocab]
    if not with_tower:
        state = {k: v for k, v in state.items() if part_of(upstream_to_hf_key(k)) != "vision_tower"}
    _write_shards(state, out, fmt, shards)
    config = upstream_config(model, vocab, vision_tower, **config_overrides)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    write_upstream_tokenizer(lm_dir, out)
    return out


def write_native_checkpoint(model, tokenizer, image_processor, out: Path) -> Path:
    """A transformers Llava directory: model, tokenizer (with `<image>`), image processor."""
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    return Path(out)


def to_upstream_lora_dir(lora_dir: Path, out: Path, upstream_base_config: dict) -> Path:
    """An upstream LoRA output directory with the same weights as our `lora_dir`: config.json in upstream's form
    (the base's llava_llama config), adapter_model.bin and non_lora_trainables.bin under upstream's names."""
    from safetensors.torch import load_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    adapter = load_file(Path(lora_dir) / "adapter_model.safetensors")
    torch.save({hf_to_upstream_key(k): v for k, v in adapter.items()}, out / "adapter_model.bin")
    adapter_config = json.loads((Path(lora_dir) / "adapter_config.json").read_text())
    leaves = sorted({t.rsplit(".", 1)[-1] for t in adapter_config["target_modules"]})
    adapter_config["target_modules"] = leaves  # upstream names leaf modules
    (out / "adapter_config.json").write_text(json.dumps(adapter_config))
    shutil.copy(Path(lora_dir) / "non_lora_trainables.bin", out / "non_lora_trainables.bin")
    (out / "config.json").write_text(json.dumps(upstream_base_config))
    return out
