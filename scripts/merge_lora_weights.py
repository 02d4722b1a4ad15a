"""Merge a LoRA output directory into its base and save a full model directory (upstream's flags):

    python scripts/merge_lora_weights.py --model-path OUT --model-base LM --save-model-path MERGED

The merged directory loads with `load_pretrained_model(MERGED, None, name)` and every eval script.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from llava.mm_utils import get_model_name_from_path  # noqa: E402
from llava.model.builder import LLAVA_CONFIG_FIELDS, load_pretrained_model  # noqa: E402


def merge_lora(args: argparse.Namespace) -> None:
    import torch

    tokenizer, model, image_processor, _ = load_pretrained_model(
        args.model_path, args.model_base, get_model_name_from_path(args.model_path), device="cpu",
        torch_dtype=torch.float32)
    model.save_pretrained(args.save_model_path)
    tokenizer.save_pretrained(args.save_model_path)
    image_processor.save_pretrained(args.save_model_path)
    kept = [k for k in LLAVA_CONFIG_FIELDS if hasattr(model.config, k)]
    print(f"merged {args.model_path} onto {args.model_base} -> {args.save_model_path} (kept {len(kept)} LLaVA settings)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=str, required=True)
    parser.add_argument("--model-base", type=str, required=True)
    parser.add_argument("--save-model-path", type=str, required=True)
    merge_lora(parser.parse_args())
