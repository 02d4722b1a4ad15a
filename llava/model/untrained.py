"""A LLaVA model built the way `llava.train.train` builds it, but from configurations only (random weights, or no
weights at all on the meta device), and a training record at full length. Used by the shape check
(`llava.model.dryrun`) and the GPU check (`llava.train.gpu_check`).

    model_args, data_args, args = parse_args(training_argv(...))      # llava.train.arguments, upstream's flags
    model, tokenizer, image_processor = build_untrained(model_args, data_args, args, device="meta")
    item = full_length_item(model, tokenizer, image_processor, args.model_max_length, image_size=(640, 480))

The steps are train.py's: tokenizer with `<image>` added (`add_image_token`), the Llava config that
`build_llava` assembles (`zero_shot_config`, which states it from the directories' configs), the weights dtype of
`training_dtype`, `set_trainable` (LoRA on `lora_target_modules`, the projector trainable, the tower frozen) and
`record_config`; only the weights are not loaded.
"""
from __future__ import annotations

import torch
from PIL import Image

from llava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from llava.mm_utils import expand_image_tokens

# Text around the image in the synthetic record: about a Vicuna v1 system prompt before it, a question after it;
# the reply fills the sequence up to --model_max_length.
PROMPT_TOKENS_BEFORE_IMAGE = 40
QUESTION_TOKENS = 16


def build_untrained(model_args, data_args, args, device: str | torch.device):
    """(model, tokenizer, image_processor): `model` is the (PEFT-wrapped) training model with randomly initialised
    weights on `device` (none on "meta"), in train.py's weights dtype and trainable set."""
    from transformers import AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration, set_seed

    from llava.model.builder import _zero3_init_paused, add_image_token, load_image_processor
    from llava.model.zero_shot import zero_shot_config
    from llava.train.train import record_config, set_trainable, training_dtype

    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, model_max_length=args.model_max_length,
                                              padding_side="right")
    add_image_token(tokenizer, model_args.mm_use_im_patch_token)
    config = LlavaConfig.from_dict(zero_shot_config(
        model_args.model_name_or_path, model_args.vision_tower, select_layer=model_args.mm_vision_select_layer,
        select_feature=model_args.mm_vision_select_feature, image_aspect_ratio=data_args.image_aspect_ratio))
    if config.text_config.vocab_size != len(tokenizer):
        raise RuntimeError(f"config vocabulary {config.text_config.vocab_size} != tokenizer length {len(tokenizer)}")
    with _zero3_init_paused(), torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=training_dtype(args))
    model.config.use_cache = False
    model = set_trainable(model, model_args, args)
    record_config(model, model_args, data_args, args)
    return model, tokenizer, load_image_processor(model_args.vision_tower)


def sample_image(size: tuple[int, int]) -> Image.Image:
    """A deterministic RGB image of (width, height) `size`: colour ramps, so padding and resizing act on content."""
    width, height = size
    x = torch.linspace(0, 255, width).round().to(torch.uint8)
    y = torch.linspace(0, 255, height).round().to(torch.uint8)
    pixels = torch.stack([x.expand(height, width), y[:, None].expand(height, width),
                          torch.full((height, width), 128, dtype=torch.uint8)], dim=-1)
    return Image.fromarray(pixels.numpy(), "RGB")


def full_length_item(model, tokenizer, image_processor, model_max_length: int, image_size: tuple[int, int],
                     seed: int = 0) -> dict:
    """One training item as `LazySupervisedDataset` yields it, exactly `model_max_length` tokens long: BOS, prompt,
    the image placeholder expanded to the config's `image_seq_length` image tokens, a question, and a reply that
    fills the rest (labelled, ending in EOS); the image (`image_size`) preprocessed by `image_pixels` (training's
    preprocessing) with the config's `image_aspect_ratio`. Text tokens are random ids of the tokenizer's own vocabulary."""
    from llava.mm_utils import image_pixels

    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    g = torch.Generator().manual_seed(seed)

    def text(n: int) -> list[int]:
        return torch.randint(3, tokenizer.vocab_size, (n,), generator=g).tolist()

    prompt = [tokenizer.bos_token_id] + text(PROMPT_TOKENS_BEFORE_IMAGE) + [IMAGE_TOKEN_INDEX] + text(QUESTION_TOKENS)
    prompt = expand_image_tokens(prompt, config.image_token_index, config.image_seq_length)
    reply_length = model_max_length - len(prompt)
    if reply_length < 2:
        raise ValueError(f"--model_max_length {model_max_length} leaves no room for a reply after a "
                         f"{len(prompt)}-token prompt ({config.image_seq_length} image tokens)")
    reply = text(reply_length - 1) + [tokenizer.eos_token_id]
    pixels = image_pixels(sample_image(image_size), image_processor, config.image_aspect_ratio)
    return {"input_ids": torch.tensor(prompt + reply), "labels": torch.tensor([IGNORE_INDEX] * len(prompt) + reply),
            "record_id": f"synthetic (seed {seed})", "pixel_values": pixels}
