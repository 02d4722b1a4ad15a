"""What a training run takes from the directory given as `--model_name_or_path`, and which wins when a flag
says otherwise (the table is in docs/checkpoints.md).

A causal LM directory (Vicuna) works as upstream: `--vision_tower` is required and the flags' defaults apply. A
LLaVA checkpoint (upstream LLaVA-1.5 or transformers Llava) is converted on load by `build_llava`: the settings its
config records (select layer and feature, projector type, `<im_patch>`, image aspect ratio) replace the flags'
defaults when the flags are left out; a given flag that contradicts one of the first four is refused by the builder,
a given `--image_aspect_ratio` wins (a data choice); `--vision_tower` left out means the checkpoint's own tower or
its config's `mm_vision_tower`.
"""
from __future__ import annotations

import logging

from llava.model import sources

logger = logging.getLogger(__name__)


def explicit_flags(argv: list[str]) -> set[str]:
    """The destinations of the flags given on the command line (abbreviated, `--flag=value` and `--no_flag`
    forms included), found by parsing `argv` again with every default replaced by a marker."""
    from dataclasses import fields

    import transformers

    from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments

    groups = (ModelArguments, DataArguments, TrainingArguments)
    parser = transformers.HfArgumentParser(groups)
    unset = object()
    parser.set_defaults(**{f.name: unset for group in groups for f in fields(group)})
    namespace, _ = parser.parse_known_args(argv)
    return {dest for dest, value in vars(namespace).items() if value is not unset}


def _not_a_base(model_dir: sources.ModelDir) -> sources.LayoutError:
    path = model_dir.path
    if model_dir.layout == sources.LORA:
        return sources.LayoutError(
            f"--model_name_or_path {path}: a LoRA output directory (adapter_config.json), not a base model; merge it "
            f"first (python scripts/merge_lora_weights.py --model-path {path} --model-base BASE --save-model-path "
            f"MERGED) and train from MERGED, or continue it with --model_name_or_path BASE "
            f"--previous_task_model_path {path}")
    return sources.LayoutError(
        f"--model_name_or_path {path}: a projector-only directory (mm_projector.bin), not a base model; pass its "
        f"base LM as --model_name_or_path and --pretrain_mm_mlp_adapter {path}/mm_projector.bin")


def resolve_base(model_args, data_args, explicit: set[str]) -> sources.ModelDir:
    """Inspect `--model_name_or_path` and, for a LLaVA checkpoint, set the settings the user did not pass to the
    checkpoint's (in `model_args` / `data_args`, logged). Contradicting flags are refused by the builder."""
    base = sources.inspect(model_args.model_name_or_path, "--model_name_or_path")
    if base.layout == sources.LM:
        if not model_args.vision_tower:
            raise ValueError(f"--vision_tower is required with a language model as --model_name_or_path "
                             f"({base.path}): this package trains LLaVA (vision + language) models")
        return base
    if base.layout not in (sources.UPSTREAM, sources.NATIVE):
        raise _not_a_base(base)
    recorded = sources.recorded_settings(base)
    for key in sources.VISION_SETTINGS:
        if key in recorded and key not in explicit:
            setattr(model_args, key, recorded[key])
            logger.info("%s = %r from %s/config.json", key, recorded[key], base.path)
    ratio = recorded.get("image_aspect_ratio")
    if ratio is not None and "image_aspect_ratio" not in explicit:
        data_args.image_aspect_ratio = ratio
        logger.info("image_aspect_ratio = %r from %s/config.json", ratio, base.path)
    elif ratio is not None and data_args.image_aspect_ratio != ratio:
        logger.warning("--image_aspect_ratio %s (the flag wins); %s was trained with %s", data_args.image_aspect_ratio,
                       base.path, ratio)
    logger.info("%s: %s checkpoint, converted on load (vision tower: %s)", base.path, base.layout,
                model_args.vision_tower or "the checkpoint's own, or its config's mm_vision_tower")
    return base
