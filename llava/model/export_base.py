"""Split a full LLaVA model directory into the parts a CoIN chain starts from.

    python -m llava.model.export_base --model-path FULL_DIR --output_dir BASE

FULL_DIR is what a full fine-tune (`--lora_enable False`) of `llava/train/train.py` writes: a transformers
`LlavaForConditionalGeneration` (`save_pretrained`), its tokenizer (with the added `<image>` token) and its image
processor. BASE gets exactly the layout of `python -m llava.model.tiny` (the stand-ins for Vicuna, CLIP and the
pretrain projector), which the training flags

    --model_name_or_path BASE/lm --vision_tower BASE/vision --pretrain_mm_mlp_adapter BASE/mm_projector.bin

expect:

    BASE/lm/               LlamaForCausalLM + the tokenizer without the tokens training added (`<image>`, ...);
                           input and output embeddings cut back to the tokenizer's own vocabulary
    BASE/vision/           CLIPVisionModel + the image processor config
    BASE/mm_projector.bin  the projector in upstream's key layout (`model.mm_projector.{0,2}.{weight,bias}`)
    BASE/export_info.json  where it came from and the vision settings it was trained with
                           (`mm_vision_select_layer`, ...): pass the same ones to the next training run

`build_llava` adds `<image>` back (with a fresh embedding row: the image positions' embeddings are replaced by
the projected image features, so only the `<image>` column of the logits differs from FULL_DIR's, and
generation suppresses that token).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from llava.model.convert import projector_to_upstream
from llava.utils import atomic_torch_save, atomic_write_json

# The LLaVA settings a base was trained with, copied from FULL_DIR's config.json into export_info.json.
TRAINING_SETTINGS = ("mm_vision_select_layer", "mm_vision_select_feature", "mm_projector_type", "image_aspect_ratio",
                     "mm_use_im_patch_token", "mm_use_im_start_end", "image_seq_length", "image_token_index")


def _base_vocab_size(tokenizer) -> int:
    """The tokenizer's own vocabulary (the SentencePiece/BPE model), without tokens added after it."""
    size = tokenizer.vocab_size
    added = [i for i in tokenizer.get_added_vocab().values() if i >= size]
    if sorted(added) != list(range(size, size + len(added))):
        raise ValueError(f"added token ids {sorted(added)} do not follow the base vocabulary of {size} tokens")
    return size


def save_base_tokenizer(tokenizer, out_dir: Path, base_size: int) -> list[str]:
    """Save `tokenizer` into `out_dir` with every token of id >= base_size removed (tokenizer.json's
    added_tokens and the special-token lists of tokenizer_config.json); returns the removed tokens."""
    from transformers import AutoTokenizer

    removed = sorted((tok for tok, i in tokenizer.get_added_vocab().items() if i >= base_size),
                     key=lambda tok: tokenizer.convert_tokens_to_ids(tok))
    tokenizer.save_pretrained(str(out_dir))
    fast = out_dir / "tokenizer.json"
    if removed and not fast.is_file():
        raise ValueError(f"{out_dir}: no tokenizer.json to remove the added tokens {removed} from")
    if fast.is_file():
        data = json.loads(fast.read_text(encoding="utf-8"))
        data["added_tokens"] = [t for t in data.get("added_tokens", []) if t["id"] < base_size]
        fast.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for key in ("extra_special_tokens", "additional_special_tokens"):
        if isinstance(config.get(key), list):
            config[key] = [t for t in config[key] if (t["content"] if isinstance(t, dict) else t) not in removed]
    if isinstance(config.get("added_tokens_decoder"), dict):
        config["added_tokens_decoder"] = {k: v for k, v in config["added_tokens_decoder"].items()
                                          if int(k) < base_size}
    config.pop("model_max_length", None)  # the next run sets its own (--model_max_length)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    check = AutoTokenizer.from_pretrained(str(out_dir))
    if len(check) != base_size or any(tok in check.get_vocab() for tok in removed):
        raise RuntimeError(f"{out_dir}: the exported tokenizer has {len(check)} tokens, expected {base_size} "
                           f"without {removed}")
    return removed


def export_base(model_path: str | os.PathLike, output_dir: str | os.PathLike) -> dict:
    """Write BASE/lm, BASE/vision, BASE/mm_projector.bin (and export_info.json) from a full model directory;
    returns the export info. Written into a temporary sibling directory and renamed at the end, so BASE is
    either complete or absent."""
    from transformers import AutoTokenizer, LlamaForCausalLM, LlavaForConditionalGeneration

    from llava.model.builder import load_image_processor

    model_path, output_dir = Path(model_path), Path(output_dir)
    config_file = model_path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"--model-path {model_path}: no config.json (not a full model directory)")
    saved = json.loads(config_file.read_text())
    if saved.get("model_type") != "llava":
        raise ValueError(f"--model-path {model_path}: model_type {saved.get('model_type')!r}, expected 'llava' "
                         "(the output of a full fine-tune, --lora_enable False)")
    if (model_path / "adapter_config.json").is_file() or not any(
            (model_path / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json",
                                                 "pytorch_model.bin")):
        raise ValueError(f"--model-path {model_path}: holds no full model weights (a LoRA or projector-only "
                         "directory?); merge it first with scripts/merge_lora_weights.py")
    model = LlavaForConditionalGeneration.from_pretrained(str(model_path), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    image_processor = load_image_processor(str(model_path))
    base_size = _base_vocab_size(tokenizer)
    if model.config.image_token_index < base_size:
        raise ValueError(f"image token id {model.config.image_token_index} lies inside the base vocabulary "
                         f"({base_size}); cannot cut it off")

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        # Language model: LlamaForCausalLM with the vocabulary cut back to the tokenizer's own.
        text_config = model.config.text_config.__class__.from_dict(model.config.text_config.to_dict())
        text_config.vocab_size = base_size
        text_config.architectures = ["LlamaForCausalLM"]
        lm = LlamaForCausalLM(text_config)
        state = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
        state["lm_head.weight"] = model.lm_head.weight
        state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:base_size]
        state["lm_head.weight"] = state["lm_head.weight"][:base_size]
        lm.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True)
        lm.generation_config = model.generation_config
        lm.save_pretrained(str(staging / "lm"))
        removed = save_base_tokenizer(tokenizer, staging / "lm", base_size)

        # Vision tower and its image processor.
        vision = model.model.vision_tower
        vision.save_pretrained(str(staging / "vision"))
        image_processor.save_pretrained(str(staging / "vision"))

        # Projector, upstream keys.
        projector = {k: v.detach().clone() for k, v in model.model.multi_modal_projector.state_dict().items()}
        atomic_torch_save(projector_to_upstream(projector), staging / "mm_projector.bin")

        info = {
            "source": str(model_path.resolve()),
            "base_vocab_size": base_size,
            "removed_tokens": removed,
            "settings": {k: saved[k] for k in TRAINING_SETTINGS if k in saved},
            "flags": f"--model_name_or_path {output_dir}/lm --vision_tower {output_dir}/vision "
                     f"--pretrain_mm_mlp_adapter {output_dir}/mm_projector.bin",
        }
        atomic_write_json(staging / "export_info.json", info)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", "--model_path", dest="model_path", required=True,
                        help="a full LLaVA model directory (output of a full fine-tune)")
    parser.add_argument("--output_dir", "--output-dir", dest="output_dir", required=True,
                        help="BASE: lm/, vision/, mm_projector.bin are written here (replaced if present)")
    args = parser.parse_args(argv)
    try:
        info = export_base(args.model_path, args.output_dir)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(1, f"error: {error}\n")
    print(f"wrote {args.output_dir}/lm (vocabulary {info['base_vocab_size']}, removed {info['removed_tokens']}), "
          f"{args.output_dir}/vision, {args.output_dir}/mm_projector.bin")
    print(f"train from it with: {info['flags']}")


if __name__ == "__main__":
    main()
