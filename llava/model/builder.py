"""Build and load LLaVA-1.5 models as transformers' `LlavaForConditionalGeneration`.

`build_llava(lm, vision, tokenizer)` assembles a model from a causal LM directory (Vicuna or the tiny stand-in)
and a CLIP vision tower directory, as upstream's training does. `load_pretrained_model(model_path, model_base,
model_name)` loads what training wrote (a LoRA directory on top of `model_base`, a projector-only directory, or a
full model directory) with upstream's signature and return value. The kind of directory is read from its files,
not guessed from its name.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os

import torch

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.model.convert import projector_from_upstream
from llava.model import checkpoint as ckpt

logger = logging.getLogger(__name__)

# Upstream's mm_vision_select_feature -> transformers' vision_feature_select_strategy.
SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
# The LLaVA settings kept in config.json next to transformers' own fields (upstream records the same names).
LLAVA_CONFIG_FIELDS = (
    "mm_vision_tower", "mm_projector_type", "mm_vision_select_layer", "mm_vision_select_feature", "mm_hidden_size",
    "image_aspect_ratio", "tokenizer_model_max_length", "tokenizer_padding_side", "mm_use_im_start_end",
    "mm_use_im_patch_token", "mm_projector_lr", "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter",
    "unfreeze_mm_vision_tower", "llava_lm_path", "use_mm_proj",
)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else the first CUDA device when one is present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """Inference dtype: fp16 on GPUs (upstream's choice), fp32 on CPUs (fp16 matmuls are not supported there)."""
    return torch.float16 if device.type == "cuda" else torch.float32


def add_image_token(tokenizer, use_im_patch_token: bool = False) -> int:
    """Add `<image>` (transformers' Llava scatters image features into its positions) and, as upstream does with
    `--mm_use_im_patch_token`, `<im_patch>`; returns the `<image>` id. Idempotent."""
    from llava.constants import DEFAULT_IMAGE_PATCH_TOKEN

    if DEFAULT_IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [DEFAULT_IMAGE_TOKEN]},
                                     replace_extra_special_tokens=False)
    if use_im_patch_token and DEFAULT_IMAGE_PATCH_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([DEFAULT_IMAGE_PATCH_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token
    return tokenizer.convert_tokens_to_ids(DEFAULT_IMAGE_TOKEN)


def image_seq_length(vision_config, select_feature: str = "patch") -> int:
    """Image tokens per image: (image_size / patch_size)^2 patches, plus the CLS token for `cls_patch`."""
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    return patches + (1 if select_feature == "cls_patch" else 0)


def _resize_embeddings_to_mean(lm, new_size: int) -> None:
    """Grow input and output embeddings to `new_size` rows; new rows = the mean of the old ones (deterministic)."""
    old_size = lm.config.vocab_size
    if new_size == old_size:
        return
    lm.resize_token_embeddings(new_size, mean_resizing=False)
    weights = [lm.get_input_embeddings().weight, lm.get_output_embeddings().weight]
    with _gathered(weights), torch.no_grad():
        for emb in weights:
            emb[old_size:] = emb[:old_size].mean(dim=0, keepdim=True)


def _gathered(params):
    """Under ZeRO-3 (weights partitioned while loading), gather `params` for an in-place edit on rank 0."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


@contextlib.contextmanager
def _zero3_init_paused():
    """Build a meta-device shell without transformers' ZeRO-3 partitioned construction (which cannot run on the
    meta device); the loaded parts put into it are partitioned already, the new projector is partitioned by
    DeepSpeed when the engine starts."""
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def load_image_processor(path: str):
    """The CLIP image processor of a vision tower (or model) directory. The PIL backend is used on purpose: it is
    what upstream LLaVA used, and it needs no torchvision."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil.from_pretrained(path)


def build_llava(lm_path: str, vision_path: str, tokenizer, *, dtype: torch.dtype = torch.float32,
                select_layer: int = -2, select_feature: str = "patch", projector_type: str = "mlp2x_gelu",
                use_im_patch_token: bool = False, attn_implementation: str | None = None):
    """A LlavaForConditionalGeneration whose language model and lm_head come from `lm_path`, whose vision tower
    comes from `vision_path`, with a freshly initialised mlp2x_gelu projector. Adds `<image>` to `tokenizer`."""
    from transformers import AutoModelForCausalLM, CLIPVisionModel, LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    if projector_type != "mlp2x_gelu":
        raise ValueError(f"--mm_projector_type {projector_type!r} is not supported: transformers' Llava projector is "
                         "mlp2x_gelu (Linear, GELU, Linear), the LLaVA-1.5 choice. Pass --mm_projector_type mlp2x_gelu")
    if select_feature not in SELECT_FEATURE:
        raise ValueError(f"--mm_vision_select_feature must be one of {sorted(SELECT_FEATURE)}, got {select_feature!r}")
    kwargs = {"dtype": dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    lm = AutoModelForCausalLM.from_pretrained(lm_path, **kwargs)
    vision = CLIPVisionModel.from_pretrained(vision_path, dtype=dtype)
    image_token_id = add_image_token(tokenizer, use_im_patch_token)
    _resize_embeddings_to_mean(lm, len(tokenizer))
    config = LlavaConfig(
        text_config=lm.config, vision_config=vision.config, image_token_index=image_token_id,
        image_seq_length=image_seq_length(vision.config, select_feature), projector_hidden_act="gelu",
        vision_feature_layer=select_layer, vision_feature_select_strategy=SELECT_FEATURE[select_feature],
        multimodal_projector_bias=True, tie_word_embeddings=False,
    )
    with _zero3_init_paused(), torch.device("meta"):
        model = LlavaForConditionalGeneration(config)  # an empty shell; its parts are the loaded modules
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    model.model.vision_tower = vision
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    model.generation_config = lm.generation_config
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise RuntimeError(f"model assembly left tensors on the meta device: {meta[:5]}")
    model.config.mm_vision_tower = vision_path
    model.config.mm_projector_type = projector_type
    model.config.mm_vision_select_layer = select_layer
    model.config.mm_vision_select_feature = select_feature
    model.config.mm_hidden_size = vision.config.hidden_size
    model.config.llava_lm_path = lm_path
    model.config.use_mm_proj = True
    return model


def load_pretrained_projector(model, path: str) -> None:
    """Load upstream's `mm_projector.bin` (`--pretrain_mm_mlp_adapter`) into the model's projector, strictly."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--pretrain_mm_mlp_adapter {path}: file not found")
    state = projector_from_upstream(torch.load(path, map_location="cpu", weights_only=True), source=path)
    ckpt.copy_into(model.model.multi_modal_projector, state, source=path)


def _read_config(model_path: str) -> dict:
    path = os.path.join(model_path, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{model_path}: no config.json; not a model directory written by training")
    with open(path) as f:
        return json.load(f)


def load_pretrained_model(model_path, model_base, model_name=None, load_8bit=False, load_4bit=False,
                          device_map="auto", device=None, use_flash_attn=False, **kwargs):
    """Upstream's loader: returns (tokenizer, model, image_processor, context_len), the model merged, on `device`
    (auto: CUDA if present, else CPU), in eval mode. `model_path` may be a LoRA output directory (adapter +
    `non_lora_trainables.bin` + config.json; needs `model_base`, or the LM path recorded at training), a
    projector-only directory (`mm_projector.bin` + config.json, with `model_base`), or a full model directory.
    `model_name` is accepted for compatibility; the directory's files decide how it is loaded."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    if load_8bit or load_4bit:
        raise ValueError("8-bit/4-bit loading is not supported by this package (it would change results); "
                         "load in 16 or 32 bit")
    device = resolve_device(device)
    dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None) or default_dtype(device)
    attn = "flash_attention_2" if use_flash_attn else None
    config = _read_config(model_path)
    if config.get("model_type") != "llava":
        raise ValueError(f"{model_path}/config.json has model_type {config.get('model_type')!r}; expected 'llava' "
                         "(a directory written by this package's training or merge script)")
    vision_path = config.get("mm_vision_tower")
    if ckpt.is_lora_dir(model_path) or ckpt.is_projector_dir(model_path):
        base = model_base or config.get("llava_lm_path")
        if not base:
            raise ValueError(f"{model_path} holds only trained weights; pass --model-base (the base LM directory)")
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = build_llava(base, vision_path, tokenizer, dtype=dtype,
                            select_layer=config.get("mm_vision_select_layer", config.get("vision_feature_layer", -2)),
                            select_feature=config.get("mm_vision_select_feature", "patch"),
                            use_im_patch_token=bool(config.get("mm_use_im_patch_token", False)),
                            attn_implementation=attn)
        ckpt.check_compatible(model, config, model_path)
        if ckpt.is_lora_dir(model_path):
            model = ckpt.load_lora_dir(model, model_path).merge_and_unload()
        else:
            load_pretrained_projector(model, os.path.join(model_path, "mm_projector.bin"))
        for key in LLAVA_CONFIG_FIELDS:
            if key in config:
                setattr(model.config, key, config[key])
    else:
        model = LlavaForConditionalGeneration.from_pretrained(model_path, dtype=dtype,
                                                              **({"attn_implementation": attn} if attn else {}))
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.unk_token
    processor_dir = model_path if os.path.isfile(os.path.join(model_path, "preprocessor_config.json")) else vision_path
    image_processor = load_image_processor(processor_dir)
    context_len = int(getattr(model.config, "tokenizer_model_max_length", None) or 2048)
    model.to(device).eval()
    return tokenizer, model, image_processor, context_len
