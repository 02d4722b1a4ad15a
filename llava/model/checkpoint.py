"""Upstream's LoRA checkpoint layout, written and read strictly.

A LoRA output directory holds `adapter_config.json` + `adapter_model.safetensors` (PEFT's format; an upstream
`adapter_model.bin` is read too), `non_lora_trainables.bin` (every other trainable tensor, the projector at
least, under upstream's names `base_model.model.model.mm_projector.0.weight`, ...) and `config.json`.
Loading never drops a tensor silently: an unknown key, a missing key or a shape mismatch is an error naming the
file, the tensor and both shapes.
"""
from __future__ import annotations

import json
import os
import re

import torch

from llava.model.convert import hf_to_upstream_key, upstream_to_hf_key
from llava.utils import atomic_torch_save, atomic_write_bytes

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
NON_LORA = "non_lora_trainables.bin"
PEFT_PREFIX = "base_model.model."
ADAPTER_NAME = "default"
# The language model's linear layers, where LoRA goes by default (upstream: every nn.Linear of the LM).
LM_PREFIX = "model.language_model."


def is_lora_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, ADAPTER_CONFIG))


def is_projector_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "mm_projector.bin")) and not is_lora_dir(path)


def copy_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `module`'s parameters of the same names; every parameter must be given, with its shape."""
    params = dict(module.named_parameters())
    unknown = sorted(set(state) - set(params))
    missing = sorted(set(params) - set(state))
    if unknown or missing:
        raise ValueError(f"{source}: keys do not match the model (unknown: {unknown[:5]}, missing: {missing[:5]})")
    _copy_checked(params, state, source)


def _copy_checked(params: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    for name, value in state.items():
        target = params[name]
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"{source}: tensor {name} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(target.shape)} (a checkpoint of another model size or LoRA rank?)")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(dtype=params[name].dtype, device=params[name].device))


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def normalise_non_lora_key(key: str) -> str:
    """A `non_lora_trainables.bin` key (upstream or ours) -> the plain model's parameter name (transformers)."""
    if key.startswith(PEFT_PREFIX):
        key = key[len(PEFT_PREFIX):]
    elif key.startswith("base_model."):
        key = key[len("base_model."):]
    if key.startswith("model.model."):
        key = key[len("model."):]
    return upstream_to_hf_key(key)


def load_non_lora_trainables(model, path: str, required_prefix: str = "model.multi_modal_projector.") -> list[str]:
    """Load `path/non_lora_trainables.bin` into `model` (plain or PEFT-wrapped). Every key must name a model
    parameter of the same shape, and the projector must be there. Returns the parameter names loaded."""
    file = os.path.join(path, NON_LORA)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{file}: missing (the projector and other non-LoRA trainables of that run)")
    state = {normalise_non_lora_key(k): v for k, v in torch.load(file, map_location="cpu", weights_only=True).items()}
    params = dict(_unwrap(model).named_parameters())
    unknown = sorted(k for k in state if k not in params)
    if unknown:
        raise ValueError(f"{file}: keys that match no model parameter: {unknown[:5]}")
    if required_prefix and not any(k.startswith(required_prefix) for k in state):
        raise ValueError(f"{file}: holds no projector weights ({required_prefix}*)")
    _copy_checked(params, state, file)
    return sorted(state)


def read_adapter_weights(path: str) -> dict[str, torch.Tensor]:
    """The LoRA tensors of an adapter directory, keyed as PEFT saves them (no adapter name), transformers layout."""
    for name in ADAPTER_WEIGHTS:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                state = load_file(file)
            else:
                state = torch.load(file, map_location="cpu", weights_only=True)
            return {upstream_to_hf_key(k): v for k, v in state.items()}
    raise FileNotFoundError(f"{path}: no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")


def saved_lora_key(param_name: str) -> str:
    """PEFT parameter name -> saved key: the adapter name is dropped (`lora_A.default.weight` -> `lora_A.weight`)."""
    return param_name.replace(f".{ADAPTER_NAME}.", ".")


def load_lora_weights(peft_model, path: str) -> None:
    """Copy the adapter of `path` into `peft_model`'s LoRA tensors: the same set of tensors, the same shapes."""
    state = read_adapter_weights(path)
    params = {saved_lora_key(n): p for n, p in peft_model.named_parameters() if "lora_" in n}
    unknown = sorted(set(state) - set(params))
    missing = sorted(set(params) - set(state))
    if unknown or missing:
        raise ValueError(f"{path}: adapter tensors do not match the model's LoRA layers (in the file only: "
                         f"{unknown[:3]}, in the model only: {missing[:3]}); was it trained with other LoRA targets?")
    _copy_checked(params, state, path)


def read_adapter_config(path: str) -> dict:
    file = os.path.join(path, ADAPTER_CONFIG)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"{file}: missing")
    with open(file) as f:
        return json.load(f)


def restrict_to_language_model(target_modules):
    """Upstream adapters name leaf modules (`q_proj`, ...); on transformers' Llava the vision tower has modules of
    the same names, so turn a list of leaf names into a regex over the language model only."""
    if isinstance(target_modules, str):
        return target_modules
    leaves = sorted(set(target_modules))
    if all("." not in t for t in leaves):
        inner = "|".join(re.escape(t) for t in leaves if t != "lm_head")
        pattern = rf"{re.escape(LM_PREFIX)}.*\.({inner})"
        return pattern + (r"|lm_head" if "lm_head" in leaves else "")
    return leaves


def load_lora_dir(model, path: str):
    """Wrap `model` with the LoRA adapter of `path` (its own adapter_config.json) and load the adapter and the
    non-LoRA trainables strictly. Returns the PeftModel (call `merge_and_unload()` for inference)."""
    from peft import LoraConfig, get_peft_model

    config = read_adapter_config(path)
    config["target_modules"] = restrict_to_language_model(config["target_modules"])
    known = set(LoraConfig.__dataclass_fields__)
    lora_config = LoraConfig(**{k: v for k, v in config.items() if k in known and k not in ("peft_type", "revision")})
    peft_model = get_peft_model(model, lora_config)
    load_lora_weights(peft_model, path)
    load_non_lora_trainables(peft_model, path)
    return peft_model


def check_compatible(model, saved_config: dict, path: str) -> None:
    """The model built from the base must have the shape the checkpoint was trained with. An upstream config
    (`llava_llama`: LLaMA's fields at the top level) records no image token (upstream adds none to the vocabulary),
    so only the hidden sizes are compared; the tensors' shapes are checked when they are loaded."""
    if saved_config.get("model_type") == "llava_llama":
        checks = [
            ("text hidden_size", model.config.text_config.hidden_size, saved_config.get("hidden_size")),
            ("vision hidden_size (mm_hidden_size)", model.config.vision_config.hidden_size,
             saved_config.get("mm_hidden_size")),
        ]
    else:
        text = saved_config.get("text_config", {})
        checks = [
            ("image_token_index", model.config.image_token_index, saved_config.get("image_token_index")),
            ("text vocab_size", model.config.text_config.vocab_size, text.get("vocab_size")),
            ("text hidden_size", model.config.text_config.hidden_size, text.get("hidden_size")),
            ("vision hidden_size", model.config.vision_config.hidden_size,
             saved_config.get("vision_config", {}).get("hidden_size")),
        ]
    for what, have, want in checks:
        if want is not None and have != want:
            raise ValueError(f"{path}: trained with {what} = {want}, but the base model gives {have}; "
                             "use the --model-base / --vision_tower it was trained from")


def restore_previous_task(peft_model, path: str, lora_r: int) -> list[str]:
    """CoIN's `--previous_task_model_path`: continue from another task's LoRA A/B and projector, exactly."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--previous_task_model_path {path}: not a directory")
    missing = [n for n in (ADAPTER_CONFIG, NON_LORA) if not os.path.isfile(os.path.join(path, n))]
    if missing or not any(os.path.isfile(os.path.join(path, n)) for n in ADAPTER_WEIGHTS):
        raise FileNotFoundError(f"--previous_task_model_path {path}: missing {missing or list(ADAPTER_WEIGHTS)}; "
                                "point it at the output_dir of a finished LoRA task")
    saved_r = read_adapter_config(path).get("r")
    if saved_r != lora_r:
        raise ValueError(f"--previous_task_model_path {path}: trained with LoRA rank {saved_r}, this run uses "
                         f"--lora_r {lora_r}; use the same rank for every task of a chain")
    load_lora_weights(peft_model, path)
    return load_non_lora_trainables(peft_model, path)


def save_lora_dir(peft_model, output_dir: str, lora_state: dict[str, torch.Tensor],
                  non_lora_state: dict[str, torch.Tensor]) -> None:
    """Write the adapter (PEFT format), `non_lora_trainables.bin` (upstream names) and config.json.
    `lora_state`/`non_lora_state` map parameter names (as `named_parameters()` of the PeftModel) to full tensors."""
    from safetensors.torch import save

    os.makedirs(output_dir, exist_ok=True)
    adapter = {saved_lora_key(k): v.detach().cpu().contiguous() for k, v in lora_state.items()}
    atomic_write_bytes(os.path.join(output_dir, ADAPTER_WEIGHTS[0]), save(adapter, metadata={"format": "pt"}))
    peft_model.peft_config[ADAPTER_NAME].save_pretrained(output_dir)
    upstream = {hf_to_upstream_key(k): v.detach().cpu() for k, v in non_lora_state.items()}
    atomic_torch_save(upstream, os.path.join(output_dir, NON_LORA))
    _unwrap(peft_model).config.save_pretrained(output_dir)
