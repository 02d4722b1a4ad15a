"""Parameter names: upstream LLaVA (`LlavaLlamaForCausalLM`) <-> transformers' `LlavaForConditionalGeneration`.

| upstream                                            | transformers                                        |
|-----------------------------------------------------|-----------------------------------------------------|
| model.embed_tokens / model.layers.N / model.norm    | model.language_model.embed_tokens / .layers.N / .norm |
| lm_head                                             | lm_head                                             |
| model.mm_projector.0 / model.mm_projector.2         | model.multi_modal_projector.linear_1 / .linear_2    |
| model.vision_tower.vision_tower.vision_model.X      | model.vision_tower.X                                |

A PEFT prefix (`base_model.model.`) is kept as it is, so LoRA and `non_lora_trainables.bin` keys convert too.
Upstream's tower is transformers 4.3x's CLIPVisionModel (`vision_model.` inside it); transformers 5's has no such
level. `model.vision_tower.vision_tower.X` without it (what this package wrote before) is read as well.
"""
from __future__ import annotations

import re

import torch

_PEFT_PREFIX = "base_model.model."

# (upstream pattern, transformers pattern), applied to a key without its PEFT prefix; first match wins.
_RULES = [
    (r"^model\.mm_projector\.0\.", "model.multi_modal_projector.linear_1."),
    (r"^model\.mm_projector\.2\.", "model.multi_modal_projector.linear_2."),
    (r"^model\.vision_tower\.vision_tower\.(vision_model\.)?", "model.vision_tower."),
    (r"^model\.(embed_tokens|layers|norm)\b", r"model.language_model.\1"),
]
_INVERSE = [
    (r"^model\.multi_modal_projector\.linear_1\.", "model.mm_projector.0."),
    (r"^model\.multi_modal_projector\.linear_2\.", "model.mm_projector.2."),
    (r"^model\.vision_tower\.", "model.vision_tower.vision_tower.vision_model."),
    (r"^model\.language_model\.(embed_tokens|layers|norm)\b", r"model.\1"),
]


def _convert(key: str, rules) -> str:
    prefix = _PEFT_PREFIX if key.startswith(_PEFT_PREFIX) else ""
    body = key[len(prefix):]
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, body)
        if n:
            return prefix + new
    return key


def upstream_to_hf_key(key: str) -> str:
    return _convert(key, _RULES)


def hf_to_upstream_key(key: str) -> str:
    return _convert(key, _INVERSE)


def is_upstream_layout(keys) -> bool:
    """True if any key uses an upstream-only name (mm_projector, or LM layers outside `language_model`)."""
    return any(upstream_to_hf_key(k) != k for k in keys)


def state_dict_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {upstream_to_hf_key(k): v for k, v in state.items()}


def state_dict_to_upstream(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {hf_to_upstream_key(k): v for k, v in state.items()}


def projector_to_upstream(projector_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`linear_1.weight`-style keys of a LlavaMultiModalProjector -> `mm_projector.bin` keys."""
    return state_dict_to_upstream({f"model.multi_modal_projector.{k}": v for k, v in projector_state.items()})


def projector_from_upstream(state: dict[str, torch.Tensor], source: str = "mm_projector.bin") -> dict[str, torch.Tensor]:
    """Projector weights out of an upstream file (any key containing `mm_projector.`, the way upstream's
    `--pretrain_mm_mlp_adapter` reads it) as `linear_1.weight`-style keys."""
    out = {}
    for key, value in state.items():
        if "mm_projector." not in key:
            continue
        local = key.split("mm_projector.", 1)[1]
        index, _, name = local.partition(".")
        if index not in ("0", "2") or name not in ("weight", "bias"):
            raise ValueError(f"{source}: unexpected projector key {key!r}; only the mlp2x_gelu layout "
                             "(mm_projector.0 and mm_projector.2) is supported")
        out[f"linear_{1 if index == '0' else 2}.{name}"] = value
    if not out:
        raise ValueError(f"{source}: no `mm_projector.` keys found (keys: {sorted(state)[:5]}...)")
    return out


# The parts of transformers' Llava, by parameter-name prefix.
PARTS = {
    "language_model": ("model.language_model.", "lm_head."),
    "projector": ("model.multi_modal_projector.",),
    "vision_tower": ("model.vision_tower.",),
}


def part_of(key: str) -> str | None:
    """Which part of the model a transformers-layout parameter name belongs to (None: no part)."""
    for part, prefixes in PARTS.items():
        if key.startswith(prefixes):
            return part
    return None
