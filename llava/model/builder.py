"""Build and load LLaVA-1.5 models as transformers' `LlavaForConditionalGeneration`.

`build_llava(base, vision, tokenizer)` assembles a model as upstream's training does, from a base directory of
any layout (`llava.model.sources`): a causal LM (the LM from it, the tower from `vision`, a fresh projector), an
upstream LLaVA-1.5 checkpoint (LM and projector from it, the tower from `vision` or its config's
`mm_vision_tower`, unless it holds tower tensors itself) or a transformers Llava directory (everything from it).
A checkpoint's recorded vision settings and its own tower win; a request that contradicts them is an error, never
a silent change of results (docs/checkpoints.md). `load_pretrained_model(model_path, model_base, model_name)`
loads what training wrote (a LoRA or projector-only directory on top of `model_base`, ours or upstream's) and
full checkpoints, with upstream's signature and return value.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch

from llava.constants import DEFAULT_IMAGE_TOKEN
from llava.model import checkpoint as ckpt
from llava.model import sources
from llava.model.convert import part_of, projector_from_upstream, upstream_to_hf_key
from llava.model.sources import LLAVA_CONFIG_FIELDS, SELECT_FEATURE, VISION_SETTINGS  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)


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


def load_tokenizer(path: str, role: str = "--model_name_or_path", **kwargs):
    """The tokenizer of a model directory of any layout. An upstream checkpoint's config.json names a model type
    transformers does not know, so its text config is handed over instead of being read."""
    from transformers import AutoTokenizer

    base = sources.inspect(path, role)
    if base.layout == sources.UPSTREAM:
        kwargs.setdefault("config", sources.upstream_text_config(base.config))
    return AutoTokenizer.from_pretrained(base.path, **kwargs)


@functools.cache
def _upstream_language_model_class():
    from transformers import LlamaForCausalLM

    class UpstreamLlavaLanguageModel(LlamaForCausalLM):
        """LlamaForCausalLM read from an upstream LLaVA-1.5 checkpoint, whose files also hold the projector (and
        maybe the tower): those tensors are read by `_load_upstream_vision_parts`, not reported as unused."""

        _keys_to_ignore_on_load_unexpected = [r"^model\.mm_projector\.", r"^model\.vision_tower\."]

    return UpstreamLlavaLanguageModel


def _load_language_model(base: sources.ModelDir, **kwargs):
    """The causal LM of a `lm` or `upstream` directory; every LM tensor must be in the files."""
    from transformers import AutoModelForCausalLM

    if base.layout == sources.LM:
        return AutoModelForCausalLM.from_pretrained(base.path, **kwargs)
    lm, info = _upstream_language_model_class().from_pretrained(
        base.path, config=sources.upstream_text_config(base.config), output_loading_info=True, **kwargs)
    _check_loading_info(info, base.path)
    return lm


def _check_loading_info(info: dict, path: str) -> None:
    missing, unexpected = sorted(info.get("missing_keys", ())), sorted(info.get("unexpected_keys", ()))
    if missing or unexpected:
        raise ValueError(f"{path}: the weights do not match the model its config.json describes (missing: "
                         f"{missing[:5]}, not part of it: {unexpected[:5]})")


def check_recorded_settings(base: sources.ModelDir, asked: dict) -> None:
    """A checkpoint's recorded vision settings must equal `asked` (same keys as the flags, e.g.
    mm_vision_select_layer): its projector was trained on those features."""
    recorded = sources.recorded_settings(base)
    for key in VISION_SETTINGS:
        if key in recorded and key in asked and recorded[key] != asked[key]:
            raise ValueError(f"{base.path}/config.json records {key} = {recorded[key]!r} (its weights were trained "
                             f"with it), but {asked[key]!r} was asked for (--{key}): drop the flag to use the "
                             f"checkpoint's, or pass {recorded[key]!r}")


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to the rounding of the coarser of the two dtypes (a tower stored in bf16 is the same tower)."""
    if a.shape != b.shape:
        return False
    coarse_eps = max(torch.finfo(a.dtype).eps, torch.finfo(b.dtype).eps)
    return torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), rtol=2 * coarse_eps, atol=0.0)


def _differing_tower_tensor(tower, state: dict[str, torch.Tensor], source: str) -> str | None:
    """The first tower parameter whose value in `state` differs from the module's (None: the same tower)."""
    params = dict(tower.named_parameters())
    unknown, missing = sorted(set(state) - set(params)), sorted(set(params) - set(state))
    if unknown or missing:
        raise ValueError(f"{source}: vision tower tensors do not match the tower (unknown: {unknown[:5]}, "
                         f"missing: {missing[:5]})")
    with _gathered(list(params.values())):
        return next((name for name, value in state.items() if not _same_tensor(params[name], value)), None)


def _other_tower(path: str, tensor: str, vision_path: str) -> ValueError:
    return ValueError(f"{path} holds its own vision tower, and its tensor {tensor} differs from --vision_tower "
                      f"{vision_path}: drop --vision_tower to use the checkpoint's tower (its weights were trained "
                      "with it), or point it at the same tower")


def _reference_tower_state(vision_path: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The parameters of the tower in `vision_path`, whole, on the CPU (not partitioned under ZeRO-3)."""
    from transformers import CLIPVisionModel

    with _zero3_init_paused():
        tower = CLIPVisionModel.from_pretrained(vision_path, dtype=dtype)
    return {name: p.detach() for name, p in tower.named_parameters()}


def _load_upstream_vision_parts(model, base: sources.ModelDir, vision_path: str, vision_tower_explicit: bool) -> None:
    """Projector (required) and, when the checkpoint holds them, the tower's tensors, from an upstream checkpoint."""
    mapping = sources.weight_map(base.path)
    by_part: dict[str, list[str]] = {}
    for key in mapping:
        by_part.setdefault(part_of(upstream_to_hf_key(key)), []).append(key)
    projector = sources.read_tensors(base.path, by_part.get("projector", []), mapping)
    ckpt.copy_into(model.model.multi_modal_projector, projector_from_upstream(projector, source=base.path),
                   source=base.path)
    if "vision_tower" not in by_part:
        return
    prefix = "model.vision_tower."
    tower_state = {upstream_to_hf_key(k)[len(prefix):]: v
                   for k, v in sources.read_tensors(base.path, by_part["vision_tower"], mapping).items()}
    tower = model.model.vision_tower
    differs = _differing_tower_tensor(tower, tower_state, base.path)
    if differs and vision_tower_explicit:
        raise _other_tower(base.path, differs, vision_path)
    if differs:
        params = dict(tower.named_parameters())
        with _gathered(list(params.values())), torch.no_grad():
            for name, value in tower_state.items():
                params[name].copy_(value.to(dtype=params[name].dtype, device=params[name].device))
    logger.info("vision tower: the %d tensors held by %s (architecture and image processor from %s)",
                len(tower_state), base.path, vision_path)


def _load_native(base: sources.ModelDir, vision_path: str | None, tokenizer, *, dtype, use_im_patch_token: bool,
                 vision_tower_explicit: bool, attn_kwargs: dict):
    """A transformers Llava directory, whole; its tokenizer must hold `<image>` at the config's id."""
    from transformers import LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(base.path, dtype=dtype, output_loading_info=True,
                                                                **attn_kwargs)
    _check_loading_info(info, base.path)
    image_token_id = add_image_token(tokenizer, use_im_patch_token)
    vocab = model.config.text_config.vocab_size
    if image_token_id != model.config.image_token_index or len(tokenizer) > vocab:
        raise ValueError(f"{base.path}: the tokenizer ({len(tokenizer)} tokens, <image> = {image_token_id}) does not "
                         f"fit the model (vocabulary {vocab}, image_token_index {model.config.image_token_index})")
    if vision_tower_explicit:
        differs = _differing_tower_tensor(model.model.vision_tower, _reference_tower_state(vision_path, dtype),
                                          vision_path)
        if differs:
            raise _other_tower(base.path, differs, vision_path)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _assemble(lm, vision, tokenizer, *, dtype, select_layer: int, select_feature: str, use_im_patch_token: bool):
    """A Llava model around a loaded causal LM and CLIP tower, with a fresh projector; adds `<image>`."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

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
    return model


def build_llava(lm_path: str, vision_path: str | None, tokenizer, *, dtype: torch.dtype = torch.float32,
                select_layer: int = -2, select_feature: str = "patch", projector_type: str = "mlp2x_gelu",
                use_im_patch_token: bool = False, attn_implementation: str | None = None,
                vision_tower_explicit: bool = True):
    """A LlavaForConditionalGeneration from the base directory `lm_path` (a causal LM, an upstream LLaVA-1.5
    checkpoint or a transformers Llava directory; see the module docstring for which part comes from where) and the
    CLIP tower directory `vision_path` (None: the checkpoint's own). `vision_tower_explicit`: the user named
    `vision_path`, so a tower held by the checkpoint must be the same. Adds `<image>` to `tokenizer`."""
    from transformers import CLIPVisionModel

    if projector_type != "mlp2x_gelu":
        raise ValueError(f"--mm_projector_type {projector_type!r} is not supported: transformers' Llava projector is "
                         "mlp2x_gelu (Linear, GELU, Linear), the LLaVA-1.5 choice. Pass --mm_projector_type mlp2x_gelu")
    if select_feature not in SELECT_FEATURE:
        raise ValueError(f"--mm_vision_select_feature must be one of {sorted(SELECT_FEATURE)}, got {select_feature!r}")
    base = sources.inspect(lm_path)
    if base.layout not in (sources.LM, sources.UPSTREAM, sources.NATIVE):
        raise sources.LayoutError(f"{lm_path}: a {base.layout} directory is not a base model; {sources.CONVERTERS}")
    check_recorded_settings(base, {"mm_vision_select_layer": select_layer, "mm_vision_select_feature": select_feature,
                                   "mm_projector_type": projector_type, "mm_use_im_patch_token": use_im_patch_token})
    attn_kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if base.layout == sources.NATIVE:
        if vision_path is None or os.path.abspath(vision_path) == os.path.abspath(base.path):
            vision_path, vision_tower_explicit = base.path, False
        model = _load_native(base, vision_path, tokenizer, dtype=dtype, use_im_patch_token=use_im_patch_token,
                             vision_tower_explicit=vision_tower_explicit, attn_kwargs=attn_kwargs)
        hidden = model.config.vision_config.hidden_size
    else:
        if vision_path is None:
            vision_path = base.config.get("mm_vision_tower")
            vision_tower_explicit = False
            if not vision_path:
                raise ValueError(f"{lm_path}: no vision tower: pass --vision_tower (a CLIP vision directory)")
            vision_path = sources.local_dir(vision_path, f"{base.path}/config.json mm_vision_tower",
                                            "; set it to the local CLIP directory (training: or pass --vision_tower)")
        else:
            vision_path = sources.local_dir(vision_path, "vision tower")
        lm = _load_language_model(base, dtype=dtype, **attn_kwargs)
        vision = CLIPVisionModel.from_pretrained(vision_path, dtype=dtype)
        hidden = vision.config.hidden_size
        recorded_hidden = base.config.get("mm_hidden_size")
        if recorded_hidden is not None and recorded_hidden != hidden:
            raise ValueError(f"{base.path}/config.json records mm_hidden_size {recorded_hidden}, but the vision tower "
                             f"{vision_path} has hidden size {hidden}: it is not the tower this checkpoint was "
                             "trained with; pass that one as --vision_tower")
        model = _assemble(lm, vision, tokenizer, dtype=dtype, select_layer=select_layer,
                          select_feature=select_feature, use_im_patch_token=use_im_patch_token)
        if base.layout == sources.UPSTREAM:
            _load_upstream_vision_parts(model, base, vision_path, vision_tower_explicit)
    model.config.mm_vision_tower = vision_path
    model.config.mm_projector_type = projector_type
    model.config.mm_vision_select_layer = select_layer
    model.config.mm_vision_select_feature = select_feature
    model.config.mm_hidden_size = hidden
    model.config.llava_lm_path = lm_path
    model.config.use_mm_proj = True
    return model


def load_pretrained_projector(model, path: str) -> None:
    """Load upstream's `mm_projector.bin` (`--pretrain_mm_mlp_adapter`) into the model's projector, strictly."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--pretrain_mm_mlp_adapter {path}: file not found")
    state = projector_from_upstream(torch.load(path, map_location="cpu", weights_only=True), source=path)
    ckpt.copy_into(model.model.multi_modal_projector, state, source=path)


def image_processor_dir(model_path: str, vision_path: str | None) -> str:
    """Where a model's image processor is: `model_path` if it has a preprocessor_config.json (a transformers
    Llava directory), else the vision tower directory."""
    if os.path.isfile(os.path.join(model_path, "preprocessor_config.json")):
        return model_path
    if not vision_path:
        raise FileNotFoundError(f"{model_path}: no preprocessor_config.json and no vision tower recorded "
                                "(mm_vision_tower) to take the image processor from")
    return sources.local_dir(vision_path, f"{model_path}/config.json mm_vision_tower")


def _vision_settings(config_dir: sources.ModelDir) -> dict:
    """build_llava's keyword arguments from the settings a LLaVA directory records (upstream's defaults else)."""
    recorded = sources.recorded_settings(config_dir)
    return {"select_layer": recorded.get("mm_vision_select_layer", -2),
            "select_feature": recorded.get("mm_vision_select_feature", "patch"),
            "projector_type": recorded.get("mm_projector_type", "mlp2x_gelu"),
            "use_im_patch_token": bool(recorded.get("mm_use_im_patch_token", False))}


def load_pretrained_model(model_path, model_base, model_name=None, load_8bit=False, load_4bit=False,
                          device_map="auto", device=None, use_flash_attn=False, **kwargs):
    """Upstream's loader: returns (tokenizer, model, image_processor, context_len), the model merged, on `device`
    (auto: CUDA if present, else CPU), in eval mode. `model_path` may be
      - a LoRA output directory (adapter + `non_lora_trainables.bin` + config.json, ours or upstream's): needs
        `model_base`, or the base recorded at training (`llava_lm_path`);
      - a projector-only directory (`mm_projector.bin` + config.json, ours or upstream's pretrain): needs `model_base`;
      - a full checkpoint, without `model_base`: a transformers Llava directory or an upstream LLaVA-1.5 one
        (converted on load; its tower from its config's `mm_vision_tower`).
    `model_base` may be a causal LM, an upstream LLaVA-1.5 checkpoint or a transformers Llava directory.
    `model_name` is accepted for compatibility; the directories' files decide how they are loaded."""
    if load_8bit or load_4bit:
        raise ValueError("8-bit/4-bit loading is not supported by this package (it would change results); "
                         "load in 16 or 32 bit")
    device = resolve_device(device)
    dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype", None) or default_dtype(device)
    attn = "flash_attention_2" if use_flash_attn else None
    found = sources.inspect(model_path, "--model-path")
    settings = _vision_settings(found)
    recorded_tower = sources.recorded_settings(found).get("mm_vision_tower")
    if found.layout in (sources.LORA, sources.PROJECTOR):
        base = model_base or found.config.get("llava_lm_path")
        if not base:
            raise ValueError(f"{model_path} holds only trained weights; pass --model-base (the base it was trained "
                             "from)")
        tokenizer = load_tokenizer(base, "--model-base")
        model = build_llava(base, recorded_tower, tokenizer, dtype=dtype, attn_implementation=attn,
                            vision_tower_explicit=False, **settings)
        ckpt.check_compatible(model, found.config, model_path)
        if found.layout == sources.LORA:
            model = ckpt.load_lora_dir(model, model_path).merge_and_unload()
        else:
            load_pretrained_projector(model, os.path.join(model_path, "mm_projector.bin"))
    elif found.layout in (sources.UPSTREAM, sources.NATIVE):
        if model_base:
            raise ValueError(f"--model-path {model_path} is a full model; --model-base {model_base} would not be "
                             "used: drop it")
        tokenizer = load_tokenizer(model_path, "--model-path")
        model = build_llava(model_path, None, tokenizer, dtype=dtype, attn_implementation=attn,
                            vision_tower_explicit=False, **settings)
    else:
        raise sources.LayoutError(f"--model-path {model_path}: a language model without vision tower and projector; "
                                  "pass a LLaVA directory (and this as --model-base if it is the base of a LoRA or "
                                  "projector-only directory)")
    for key in LLAVA_CONFIG_FIELDS:
        if key in found.config and key not in ("mm_vision_tower", "llava_lm_path", "mm_hidden_size"):
            setattr(model.config, key, found.config[key])
    image_processor = load_image_processor(image_processor_dir(model_path, model.config.mm_vision_tower))
    context_len = int(getattr(model.config, "tokenizer_model_max_length", None) or 2048)
    model.to(device).eval()
    return tokenizer, model, image_processor, context_len
