"""What a model directory holds, read from its files (never guessed from its name): its layout, the LLaVA
settings its config.json records, and its tensors. Layouts (docs/checkpoints.md has examples and where each loads):

  lm         config.json of a causal LM type (llama, ...) + full weights: Vicuna, `llava.model.tiny`'s lm/
  upstream   model_type `llava_llama` + full weights: an upstream LLaVA-1.5 checkpoint (liuhaotian/llava-v1.5-7b)
  native     model_type `llava` + full weights: transformers' LlavaForConditionalGeneration (merge_lora_weights.py)
  lora       `llava` or `llava_llama` + adapter_config.json: a LoRA output directory (ours or upstream's)
  projector  `llava` or `llava_llama` + mm_projector.bin: a projector-only directory (a pretrain run, zero_shot)

Full weights are `model.safetensors` or `pytorch_model.bin`, or either sharded with its `.index.json`. A name that
is not a directory is looked up in the local Hugging Face cache (`lmsys/vicuna-7b-v1.5`); nothing is downloaded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from llava.utils import load_json

LM, UPSTREAM, NATIVE, LORA, PROJECTOR = "lm", "upstream", "native", "lora", "projector"
UPSTREAM_MODEL_TYPE = "llava_llama"
NATIVE_MODEL_TYPE = "llava"
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# The LLaVA settings kept in config.json next to transformers' own fields (upstream records the same names).
LLAVA_CONFIG_FIELDS = (
    "mm_vision_tower", "mm_projector_type", "mm_vision_select_layer", "mm_vision_select_feature", "mm_hidden_size",
    "image_aspect_ratio", "tokenizer_model_max_length", "tokenizer_padding_side", "mm_use_im_start_end",
    "mm_use_im_patch_token", "mm_projector_lr", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter",
    "unfreeze_mm_vision_tower", "llava_lm_path", "use_mm_proj",
)
# Settings a projector was trained with (the flag and the config key share the name); a checkpoint's value
# must not be contradicted.
VISION_SETTINGS = ("mm_vision_select_layer", "mm_vision_select_feature", "mm_projector_type", "mm_use_im_patch_token")
# Upstream's mm_vision_select_feature -> transformers' vision_feature_select_strategy.
SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
CONVERTERS = ("scripts/merge_lora_weights.py turns a LoRA directory into a transformers Llava directory; "
              "python -m llava.model.export_base splits a transformers Llava directory into lm/, vision/ and "
              "mm_projector.bin; python -m llava.model.zero_shot makes an eval directory from an LM, a tower and "
              "a projector")


class LayoutError(ValueError):
    """A directory this package cannot load where it was given; the message is one line."""


@dataclass
class ModelDir:
    """One model directory: its resolved local path, layout and config.json (empty when it has none)."""

    path: str
    layout: str
    config: dict = field(default_factory=dict)

    @property
    def holds_projector(self) -> bool:
        return self.layout in (UPSTREAM, NATIVE)


def local_dir(name: str, role: str, hint: str = "") -> str:
    """`name` if it is a directory, else its snapshot in the local Hugging Face cache; an error otherwise."""
    if os.path.isdir(name):
        return name
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:  # noqa: BLE001 -- not a repo id, or not cached: both mean "not found" here
        raise FileNotFoundError(f"{role} {name}: not a directory, and not a model in the local Hugging Face "
                                f"cache (nothing is downloaded at run time){hint}") from None


def has_full_weights(path: str) -> bool:
    return any(os.path.isfile(os.path.join(path, n)) for n in WEIGHT_INDEXES + WEIGHT_FILES)


def _found(path: str, config: dict) -> str:
    """A short description of what a directory holds, for error messages."""
    files = sorted(os.listdir(path))
    if not config:
        return f"no config.json (files: {', '.join(files[:8]) or 'none'}{' ...' if len(files) > 8 else ''})"
    weights = [n for n in WEIGHT_INDEXES + WEIGHT_FILES + ("adapter_config.json", "mm_projector.bin") if n in files]
    return f"config.json with model_type {config.get('model_type')!r}, {', '.join(weights) or 'no weights'}"


def inspect(name: str, role: str = "--model_name_or_path") -> ModelDir:
    """The layout of a model directory; an unknown layout is a LayoutError saying what was found."""
    path = local_dir(name, role)
    config_file = os.path.join(path, "config.json")
    config = load_json(config_file) if os.path.isfile(config_file) else {}
    model_type = config.get("model_type")
    if model_type in (UPSTREAM_MODEL_TYPE, NATIVE_MODEL_TYPE):
        if os.path.isfile(os.path.join(path, "adapter_config.json")):
            return ModelDir(path, LORA, config)
        if has_full_weights(path):
            return ModelDir(path, UPSTREAM if model_type == UPSTREAM_MODEL_TYPE else NATIVE, config)
        if os.path.isfile(os.path.join(path, "mm_projector.bin")):
            return ModelDir(path, PROJECTOR, config)
    elif model_type is not None and has_full_weights(path):
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            return ModelDir(path, LM, config)
    found = _found(path, config)
    if all(os.path.exists(os.path.join(path, n)) for n in ("lm", "vision", "mm_projector.bin")):
        hint = (f"this is a base directory (llava.model.tiny / export_base): train from it with --model_name_or_path "
                f"{path}/lm --vision_tower {path}/vision --pretrain_mm_mlp_adapter {path}/mm_projector.bin; for eval, "
                f"python -m llava.model.zero_shot --model-base {path}/lm --vision-tower {path}/vision --projector "
                f"{path}/mm_projector.bin --output DIR writes a directory that --model-path DIR --model-base "
                f"{path}/lm loads")
    elif isinstance(model_type, str) and model_type.startswith("llava"):
        hint = (f"only LLaVA-1.5's LLaMA checkpoints ({UPSTREAM_MODEL_TYPE}) and transformers' Llava "
                f"({NATIVE_MODEL_TYPE}) with their weights are loaded; no command here converts {model_type!r}")
    else:
        hint = ("accepted: a causal LM directory, an upstream LLaVA-1.5 checkpoint (model_type llava_llama) or a "
                f"transformers Llava directory (model_type llava), with weights; {CONVERTERS}")
    raise LayoutError(f"{role} {path}: unknown layout, found {found}; {hint}")


def upstream_text_config(config: dict):
    """The LlamaConfig of an upstream checkpoint's language model: its config.json without the LLaVA keys."""
    from transformers import LlamaConfig

    drop = set(LLAVA_CONFIG_FIELDS) | {"model_type", "architectures", "_name_or_path", "transformers_version"}
    text = LlamaConfig(**{k: v for k, v in config.items() if k not in drop and not k.startswith("mm_")})
    text.architectures = ["LlamaForCausalLM"]
    return text


def recorded_settings(model_dir: ModelDir) -> dict:
    """The LLaVA settings a LLaVA directory's config.json records, under upstream's names (the flags' names):
    mm_vision_tower, mm_vision_select_layer, mm_vision_select_feature, mm_projector_type, mm_use_im_patch_token,
    image_aspect_ratio, mm_hidden_size. A transformers Llava config's own fields (vision_feature_layer, ...) win
    over its mm_* copies: they are what the model computes with. Keys the config does not record are absent."""
    config = model_dir.config
    out = {k: config[k] for k in LLAVA_CONFIG_FIELDS if config.get(k) is not None}
    if config.get("model_type") == NATIVE_MODEL_TYPE:
        if "vision_feature_layer" in config:
            out["mm_vision_select_layer"] = config["vision_feature_layer"]
        strategy = config.get("vision_feature_select_strategy")
        if strategy is not None:
            by_strategy = {v: k for k, v in SELECT_FEATURE.items()}
            out["mm_vision_select_feature"] = by_strategy.get(strategy, strategy)
        act = config.get("projector_hidden_act", "gelu")
        out["mm_projector_type"] = f"mlp2x_{act}"
        if "vision_config" in config:
            out["mm_hidden_size"] = config["vision_config"].get("hidden_size")
        out.setdefault("mm_use_im_patch_token", False)  # transformers' Llava has no `<im_patch>` of its own
    return out


def weight_map(path: str) -> dict[str, str]:
    """Every tensor name of a directory's full weights -> the file (relative to `path`) that holds it."""
    for index in WEIGHT_INDEXES:
        file = os.path.join(path, index)
        if os.path.isfile(file):
            mapping = load_json(file).get("weight_map")
            if not isinstance(mapping, dict) or not mapping:
                raise ValueError(f"{file}: no weight_map (a sharded checkpoint's index lists every tensor's file)")
            missing = sorted({f for f in mapping.values() if not os.path.isfile(os.path.join(path, f))})
            if missing:
                raise FileNotFoundError(f"{file}: lists shards that are missing: {missing[:3]}")
            return mapping
    for name in WEIGHT_FILES:
        if os.path.isfile(os.path.join(path, name)):
            return {key: name for key in _read_file(os.path.join(path, name))}
    raise FileNotFoundError(f"{path}: no weights ({' / '.join(WEIGHT_FILES + WEIGHT_INDEXES)})")


def _read_file(file: str):
    """A lazy mapping of a weights file's tensors (safetensors: opened; .bin: memory-mapped)."""
    if file.endswith(".safetensors"):
        from safetensors import safe_open

        handle = safe_open(file, framework="pt")
        return {key: (lambda k=key: handle.get_tensor(k)) for key in handle.keys()}
    state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    return {key: (lambda k=key: state[k]) for key in state}


def read_tensors(path: str, names, mapping: dict[str, str]) -> dict[str, torch.Tensor]:
    """The tensors `names` of a directory's weights (as stored), reading each shard once."""
    by_file: dict[str, list[str]] = {}
    for name in names:
        by_file.setdefault(mapping[name], []).append(name)
    out = {}
    for file, keys in by_file.items():
        tensors = _read_file(os.path.join(path, file))
        for key in keys:
            out[key] = tensors[key]()
    return out
