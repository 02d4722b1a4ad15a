"""Build tiny stand-ins for Vicuna and CLIP, offline, in the directory layout the training scripts expect.

    python -m llava.model.tiny --output_dir DIR [--seed N] [--size test|mini] [--corpus FILE ...]

writes
    DIR/lm/                a Llama causal LM (`save_pretrained`) with a SentencePiece BPE tokenizer (`tokenizer.model`
                           plus the transformers files), loadable as `--model_name_or_path DIR/lm`
    DIR/vision/            a CLIP vision tower (`CLIPVisionModel`) and its image processor config,
                           loadable as `--vision_tower DIR/vision`
    DIR/mm_projector.bin   an untrained mlp2x_gelu projector in upstream's key layout
                           (`model.mm_projector.{0,2}.{weight,bias}`), for `--pretrain_mm_mlp_adapter`

Sizes: `test` is as small as the tests need (28 px images, 4 image tokens, ~0.2 M parameters); `mini` is the
mini-CoIN model (96 px images with 32 px patches = 9 image tokens, ~2.2 M parameters).
"""
from __future__ import annotations

import argparse
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llava.conversation import conv_templates
from llava.model.convert import projector_to_upstream

# Text the tokenizer is trained on when no corpus is given: the conversation templates, the CoIN
# instruction lines and the small vocabulary of the synthetic tasks, so that prompts tokenize compactly.
_BUILTIN_CORPUS = [
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "When the provided information is insufficient, respond with 'Unanswerable'.",
    "Please provide the bounding box coordinate of the region this sentence describes:",
    "What is the object in the image? What is the colour of the shape? Which letter is shown?",
    "What is the title of this book? Who wrote this book? How many shapes are there? Is there a circle?",
    "A photo of a red circle, a blue square, a green triangle and a yellow star on a white background.",
    "left right top bottom middle center above below next to the of a an the is are yes no unanswerable",
    "red green blue yellow purple orange black white gray brown pink cyan",
    "circle square triangle star cross ring heart diamond",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
    "0 1 2 3 4 5 6 7 8 9 0.00 0.33 0.67 1.00 [0.00, 0.33, 0.67, 1.00]",
]


@dataclass(frozen=True)
class TinySize:
    """Architecture of one tiny size. Image tokens per image = (image_size / patch_size)**2."""

    vocab_size: int
    lm_hidden: int
    lm_layers: int
    lm_heads: int
    lm_mlp: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_mlp: int
    image_size: int
    patch_size: int
    max_position_embeddings: int = 2048
    extra: dict = field(default_factory=dict)


SIZES = {
    "test": TinySize(vocab_size=400, lm_hidden=64, lm_layers=2, lm_heads=4, lm_mlp=128,
                     vision_hidden=32, vision_layers=2, vision_heads=2, vision_mlp=64, image_size=28, patch_size=14),
    "mini": TinySize(vocab_size=600, lm_hidden=192, lm_layers=3, lm_heads=4, lm_mlp=512,
                     vision_hidden=128, vision_layers=3, vision_heads=4, vision_mlp=256, image_size=96, patch_size=32),
}


def corpus_lines(paths: list[str] | None = None) -> list[str]:
    """Tokenizer training text: the built-in lines, the conversation templates' system prompts, and the text
    of `paths` (LLaVA conversation JSON / CoIN question JSON files contribute their turns and questions,
    other files their lines)."""
    lines = list(_BUILTIN_CORPUS)
    for conv in conv_templates.values():
        if conv.system:
            lines.append(conv.system)
        lines.append(" ".join(f"{role}: hello" for role in conv.roles))
    for path in paths or []:
        if str(path).endswith(".json"):
            with open(path) as f:
                records = json.load(f)
            for rec in records:
                for turn in rec.get("conversations", []):
                    lines.append(turn["value"])
                if "text" in rec:
                    lines.append(rec["text"])
        else:
            with open(path) as f:
                lines.extend(line.rstrip("\n") for line in f if line.strip())
    return lines


def train_sentencepiece(lines: list[str], vocab_size: int, out_dir: Path) -> None:
    """Train a Llama-style SentencePiece BPE model (unk 0, bos 1, eos 2, no pad, byte fallback) into
    `out_dir/tokenizer.model`. byte fallback needs vocab_size > 259 + the corpus alphabet."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        byte_fallback=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, character_coverage=1.0,
        split_digits=True, hard_vocab_limit=False, minloglevel=2, num_threads=1, seed_sentencepiece_size=100000,
        input_sentence_size=0, shuffle_input_sentence=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())


def build_tokenizer(lm_dir: Path, lines: list[str], vocab_size: int):
    """A Vicuna-like tokenizer (LlamaTokenizer, BOS added, no pad token) saved in `lm_dir`."""
    from transformers import LlamaTokenizer

    train_sentencepiece(lines, vocab_size, lm_dir)
    tokenizer = LlamaTokenizer.from_pretrained(str(lm_dir), add_bos_token=True, add_eos_token=False, legacy=False)
    tokenizer.save_pretrained(str(lm_dir))
    return tokenizer


def build_language_model(size: TinySize, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=size.lm_hidden, intermediate_size=size.lm_mlp,
        num_hidden_layers=size.lm_layers, num_attention_heads=size.lm_heads, num_key_value_heads=size.lm_heads,
        max_position_embeddings=size.max_position_embeddings, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        tie_word_embeddings=False, rms_norm_eps=1e-5,
    )
    return LlamaForCausalLM(config)


def build_vision_tower(size: TinySize):
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=size.vision_hidden, intermediate_size=size.vision_mlp, num_hidden_layers=size.vision_layers,
        num_attention_heads=size.vision_heads, image_size=size.image_size, patch_size=size.patch_size,
        projection_dim=size.vision_hidden,
    )
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": size.image_size}, crop_size={"height": size.image_size, "width": size.image_size},
    )
    return CLIPVisionModel(config), processor


def build_projector_state(vision_hidden: int, lm_hidden: int) -> dict[str, torch.Tensor]:
    """An untrained mlp2x_gelu projector (nn.Linear default init), in transformers' layout."""
    linear_1 = torch.nn.Linear(vision_hidden, lm_hidden)
    linear_2 = torch.nn.Linear(lm_hidden, lm_hidden)
    return {
        "linear_1.weight": linear_1.weight.detach().clone(), "linear_1.bias": linear_1.bias.detach().clone(),
        "linear_2.weight": linear_2.weight.detach().clone(), "linear_2.bias": linear_2.bias.detach().clone(),
    }


def build_tiny(output_dir: str | os.PathLike, size: str = "test", seed: int = 0,
               corpus: list[str] | None = None) -> Path:
    """Write `lm/`, `vision/` and `mm_projector.bin` under `output_dir` (see the module docstring)."""
    if size not in SIZES:
        raise ValueError(f"--size must be one of {sorted(SIZES)}, got {size!r}")
    spec = SIZES[size]
    out = Path(output_dir)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(out / "lm", corpus_lines(corpus), spec.vocab_size)
    lm = build_language_model(spec, len(tokenizer))
    lm.generation_config.pad_token_id = tokenizer.unk_token_id
    lm.save_pretrained(str(out / "lm"))
    vision, processor = build_vision_tower(spec)
    vision.save_pretrained(str(out / "vision"))
    processor.save_pretrained(str(out / "vision"))
    torch.save(projector_to_upstream(build_projector_state(spec.vision_hidden, spec.lm_hidden)),
               out / "mm_projector.bin")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="test")
    parser.add_argument("--corpus", nargs="*", default=None,
                        help="extra tokenizer training text: LLaVA/CoIN JSON files or plain text files")
    args = parser.parse_args(argv)
    out = build_tiny(args.output_dir, size=args.size, seed=args.seed, corpus=args.corpus)
    n_lm = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(out / "lm").parameters())
    print(f"wrote {out}/lm ({n_lm:,} parameters), {out}/vision, {out}/mm_projector.bin")


if __name__ == "__main__":
    main()
