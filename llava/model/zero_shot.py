"""Write a projector-only model directory (the zero-shot row of the CoIN matrix: the base LM, the vision tower and
the pretrain projector, no LoRA) that `load_pretrained_model(dir, model_base)` loads.

    python -m llava.model.zero_shot --model-base LM --vision-tower CLIP --projector mm_projector.bin --output DIR
        [--image-aspect-ratio pad|square] [--mm-vision-select-layer -2]

writes DIR/config.json (a Llava config with upstream's mm_* fields, from the configs and the tokenizer only: no
weights are loaded) and DIR/mm_projector.bin (a copy of --projector, checked against the model's projector
shapes). CoIN evaluates its zero-shot row with the LLaVA-1.5 pretrain directory
(`llava-vicuna-2-7b-chat-pretrain`, upstream layout: model_type `llava_llama`), which `load_pretrained_model(dir,
model_base)` loads as it is (its tower from its config's `mm_vision_tower`); this writes the equivalent directory
from local parts. --image-aspect-ratio defaults to the `image_aspect_ratio` of a
config.json next to --projector (the pretrain run's; `square` in LLaVA-1.5's pretrain), else `square`.
Both files are written atomically; the directory is rewritten only when its content would change.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from llava.model.builder import SELECT_FEATURE, add_image_token, image_seq_length
from llava.model.convert import projector_from_upstream
from llava.utils import atomic_write_bytes, atomic_write_text


def neighbour_aspect_ratio(projector: str) -> str | None:
    """`image_aspect_ratio` from a config.json beside the projector file (upstream's pretrain output), if any."""
    path = os.path.join(os.path.dirname(os.path.abspath(projector)), "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f).get("image_aspect_ratio")


def zero_shot_config(model_base: str, vision_tower: str, select_layer: int = -2, select_feature: str = "patch",
                     image_aspect_ratio: str = "square") -> dict:
    """The config.json of the model that build_llava(model_base, vision_tower) assembles, with LLaVA's fields."""
    from transformers import AutoConfig, AutoTokenizer, CLIPVisionConfig, LlavaConfig

    tokenizer = AutoTokenizer.from_pretrained(model_base)
    image_token_id = add_image_token(tokenizer)
    text_config = AutoConfig.from_pretrained(model_base)
    text_config.vocab_size = len(tokenizer)  # build_llava resizes the embeddings to the tokenizer with <image>
    vision_config = CLIPVisionConfig.from_pretrained(vision_tower)
    config = LlavaConfig(
        text_config=text_config, vision_config=vision_config, image_token_index=image_token_id,
        image_seq_length=image_seq_length(vision_config, select_feature), projector_hidden_act="gelu",
        vision_feature_layer=select_layer, vision_feature_select_strategy=SELECT_FEATURE[select_feature],
        multimodal_projector_bias=True, tie_word_embeddings=False,
    )
    config.mm_vision_tower = vision_tower
    config.mm_projector_type = "mlp2x_gelu"
    config.mm_vision_select_layer = select_layer
    config.mm_vision_select_feature = select_feature
    config.mm_hidden_size = vision_config.hidden_size
    config.llava_lm_path = model_base
    config.use_mm_proj = True
    config.image_aspect_ratio = image_aspect_ratio
    config.mm_use_im_start_end = False
    config.mm_use_im_patch_token = False
    config.tune_mm_mlp_adapter = False
    return config.to_dict()


def check_projector(state: dict, config: dict, source: str) -> None:
    """The projector maps vision hidden -> text hidden (Linear, GELU, Linear)."""
    vision = config["vision_config"]["hidden_size"]
    text = config["text_config"]["hidden_size"]
    expected = {"linear_1.weight": (text, vision), "linear_1.bias": (text,), "linear_2.weight": (text, text),
                "linear_2.bias": (text,)}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        raise ValueError(f"{source}: projector tensors {got} do not fit the base LM (hidden {text}) and vision "
                         f"tower (hidden {vision}): expected {expected}")


def write_zero_shot_dir(model_base: str, vision_tower: str, projector: str, output: str, select_layer: int = -2,
                        image_aspect_ratio: str | None = None) -> bool:
    """Write (or leave as is, when identical) the projector-only directory. Returns True if anything changed."""
    for path, what in ((model_base, "--model-base"), (vision_tower, "--vision-tower")):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{what} {path}: not a directory")
    if not os.path.isfile(projector):
        raise FileNotFoundError(f"--projector {projector}: file not found (the pretrain mm_projector.bin)")
    aspect = image_aspect_ratio or neighbour_aspect_ratio(projector) or "square"
    config = zero_shot_config(model_base, vision_tower, select_layer=select_layer, image_aspect_ratio=aspect)
    with open(projector, "rb") as f:
        data = f.read()
    state = torch.load(projector, map_location="cpu", weights_only=True)
    check_projector(projector_from_upstream(state, source=projector), config, projector)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    changed = False
    config_path = os.path.join(output, "config.json")
    projector_path = os.path.join(output, "mm_projector.bin")
    if not (os.path.isfile(projector_path) and open(projector_path, "rb").read() == data):
        atomic_write_bytes(projector_path, data)
        changed = True
    if not (os.path.isfile(config_path) and open(config_path).read() == text):
        atomic_write_text(config_path, text)
        changed = True
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base", required=True, help="base LM directory (Vicuna)")
    parser.add_argument("--vision-tower", required=True, help="CLIP vision tower directory")
    parser.add_argument("--projector", required=True, help="the pretrain mm_projector.bin (upstream key layout)")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--mm-vision-select-layer", type=int, default=-2)
    parser.add_argument("--image-aspect-ratio", choices=["pad", "square"], default=None)
    args = parser.parse_args(argv)
    try:
        changed = write_zero_shot_dir(args.model_base, args.vision_tower, args.projector, args.output,
                                      args.mm_vision_select_layer, args.image_aspect_ratio)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{'wrote' if changed else 'up to date:'} {args.output} (config.json, mm_projector.bin)")


if __name__ == "__main__":
    main()
