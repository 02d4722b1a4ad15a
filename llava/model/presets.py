"""Architectures of real LLaVA-1.5 models as presets, written out as weight-less model directories.

    llava-v1.5-7b   Vicuna-7B v1.5 (a Llama-2-7B: vocabulary 32000, hidden 4096, 32 layers, 32 heads, MLP 11008,
                    4096 positions) + CLIP ViT-L/14 at 336 px (hidden 1024, 24 layers, 16 heads, MLP 4096,
                    14 px patches: 576 image tokens) + the mlp2x_gelu projector; 2048-token sequences
    tiny            the test stand-in of `llava.model.tiny` (`--size test`): 28 px images, 4 image tokens

`write_config_dirs(preset, root)` writes `root/lm` (the LM's config.json and a tokenizer with the LM's vocabulary
size and Llama's special-token ids) and `root/vision` (the tower's config.json and upstream's CLIP image
processor settings): the directories `--model_name_or_path` and `--vision_tower` point at, without weights.
`training_argv` gives upstream's `scripts/v1_5/finetune_lora.sh` flags for them, so the model is built by the
training code's own argument parsing, `set_trainable` and Trainer.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from llava.model import tiny

REPO = Path(__file__).resolve().parents[2]
# Llama / Vicuna special tokens (the SentencePiece model's first three pieces).
UNK, BOS, EOS = ("<unk>", 0), ("<s>", 1), ("</s>", 2)


@dataclass(frozen=True)
class LanguageModelShape:
    """A Llama causal LM (LlamaConfig fields). Vicuna-7B v1.5 = Llama-2-7B's architecture."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5

    def config(self):
        from transformers import LlamaConfig

        return LlamaConfig(**asdict(self), hidden_act="silu", bos_token_id=BOS[1], eos_token_id=EOS[1],
                           tie_word_embeddings=False, architectures=["LlamaForCausalLM"])


@dataclass(frozen=True)
class VisionTowerShape:
    """A CLIP vision tower (CLIPVisionConfig fields) and its image size; the image processor is OpenAI CLIP's
    (resize the short side to `image_size` bicubic, centre crop, CLIP mean/std), as upstream's checkpoint ships."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    image_size: int
    patch_size: int
    projection_dim: int
    layer_norm_eps: float = 1e-5
    hidden_act: str = "quick_gelu"

    def config(self):
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(**asdict(self))

    def image_processor(self):
        from transformers import CLIPImageProcessorPil
        from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling

        return CLIPImageProcessorPil(
            size={"shortest_edge": self.image_size}, crop_size={"height": self.image_size, "width": self.image_size},
            do_resize=True, resample=PILImageResampling.BICUBIC, do_center_crop=True, do_rescale=True,
            rescale_factor=1 / 255, do_normalize=True, image_mean=list(OPENAI_CLIP_MEAN),
            image_std=list(OPENAI_CLIP_STD), do_convert_rgb=True)


@dataclass(frozen=True)
class LlavaPreset:
    """A LLaVA-1.5 model: LM, vision tower, and the settings of upstream's LoRA fine-tuning script.
    `sample_image` (width, height) is the size of the non-square image the checks feed through the processor."""

    name: str
    language_model: LanguageModelShape
    vision_tower: VisionTowerShape
    select_layer: int = -2
    image_aspect_ratio: str = "pad"
    model_max_length: int = 2048
    sample_image: tuple[int, int] = (640, 480)

    @property
    def image_tokens(self) -> int:
        """Image tokens per image: (image_size / patch_size)^2 patches (select feature `patch`: no CLS)."""
        return (self.vision_tower.image_size // self.vision_tower.patch_size) ** 2


def _from_tiny(size: tiny.TinySize) -> tuple[LanguageModelShape, VisionTowerShape]:
    lm = LanguageModelShape(vocab_size=size.vocab_size, hidden_size=size.lm_hidden, intermediate_size=size.lm_mlp,
                            num_hidden_layers=size.lm_layers, num_attention_heads=size.lm_heads,
                            num_key_value_heads=size.lm_heads, max_position_embeddings=size.max_position_embeddings)
    vision = VisionTowerShape(hidden_size=size.vision_hidden, intermediate_size=size.vision_mlp,
                              num_hidden_layers=size.vision_layers, num_attention_heads=size.vision_heads,
                              image_size=size.image_size, patch_size=size.patch_size, projection_dim=size.vision_hidden)
    return lm, vision


VICUNA_7B_V1_5 = LanguageModelShape(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096)
CLIP_VIT_L_14_336 = VisionTowerShape(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                     num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768)

PRESETS = {
    "llava-v1.5-7b": LlavaPreset("llava-v1.5-7b", VICUNA_7B_V1_5, CLIP_VIT_L_14_336),
    "tiny": LlavaPreset("tiny", *_from_tiny(tiny.SIZES["test"]), model_max_length=96, sample_image=(40, 30)),
}


def get_preset(name: str) -> LlavaPreset:
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r} is not known; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def stand_in_tokenizer(vocab_size: int):
    """A tokenizer with `vocab_size` tokens and Llama's special-token ids (unk 0, bos 1, eos 2), no pad token: what
    the model build reads from Vicuna's tokenizer (its length and those ids). The token strings are placeholders."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for token, i in (UNK, BOS, EOS)}
    vocab.update({f"t{i}": i for i in range(len(vocab), vocab_size)})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK[0]))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token=UNK[0], bos_token=BOS[0], eos_token=EOS[0])


def write_config_dirs(preset: LlavaPreset, root: str | Path) -> tuple[Path, Path]:
    """Write `root/lm` and `root/vision` (configs, tokenizer, image processor; no weights); returns both paths."""
    root = Path(root)
    lm_dir, vision_dir = root / "lm", root / "vision"
    preset.language_model.config().save_pretrained(lm_dir)
    stand_in_tokenizer(preset.language_model.vocab_size).save_pretrained(lm_dir)
    preset.vision_tower.config().save_pretrained(vision_dir)
    preset.vision_tower.image_processor().save_pretrained(vision_dir)
    return lm_dir, vision_dir


def deepspeed_config(zero: int) -> Path:
    """The shipped DeepSpeed config of a ZeRO stage (scripts/zero{0,2,3}.json)."""
    path = REPO / "scripts" / f"zero{zero}.json"
    if not path.is_file():
        shipped = sorted(p.name for p in (REPO / "scripts").glob("zero[0-9].json"))
        raise ValueError(f"ZeRO stage {zero}: no {path.relative_to(REPO)} (shipped: {shipped})")
    return path


def training_argv(preset: LlavaPreset, lm_dir: str | Path, vision_dir: str | Path, output_dir: str | Path, *,
                  lora_r: int, lora_alpha: int, zero: int) -> list[str]:
    """Upstream's `scripts/v1_5/finetune_lora.sh` flags that shape the model and the optimizer (LoRA, projector
    lr, vision settings, bf16 under DeepSpeed, sequence length, gradient checkpointing), for these directories."""
    return ["--model_name_or_path", str(lm_dir), "--vision_tower", str(vision_dir), "--version", "v1",
            "--deepspeed", str(deepspeed_config(zero)), "--lora_enable", "True", "--lora_r", str(lora_r),
            "--lora_alpha", str(lora_alpha), "--mm_projector_lr", "2e-5", "--mm_projector_type", "mlp2x_gelu",
            "--mm_vision_select_layer", str(preset.select_layer), "--mm_use_im_start_end", "False",
            "--mm_use_im_patch_token", "False", "--image_aspect_ratio", preset.image_aspect_ratio, "--bf16", "True",
            "--learning_rate", "2e-4", "--weight_decay", "0.", "--model_max_length", str(preset.model_max_length),
            "--gradient_checkpointing", "True", "--output_dir", str(output_dir), "--report_to", "none"]
