"""LLaVA-1.5 at its real shapes without its weights: build, one training step's forward and backward, memory per
GPU, and the upstream checkpoint names, all on the meta device (no weights are read or allocated).

    python -m llava.model.dryrun --preset llava-v1.5-7b --lora_r 128 --lora_alpha 256 --zero 2 --gpus 8

1. Build: the preset's configs (`llava.model.presets`) written as weight-less directories, parsed with upstream's
   finetune_lora.sh flags by the training argument parser, built by `llava.model.untrained` (train.py's steps),
   wrapped in the `LLaVATrainer` (gradient checkpointing on, as training) whose `create_optimizer` gives the
   param groups (LoRA at --learning_rate, the projector at --mm_projector_lr).
2. Shape path: a non-square image through the preset's CLIP processor with `image_aspect_ratio pad`, a record of
   exactly --model_max_length tokens with the image placeholder expanded (`full_length_item`), the collator, then
   the model's own forward (vision tower, layer `vision_feature_layer`, CLS dropped, projector, features scattered
   into the token embeddings, language model, loss) and backward. Hooks record every intermediate shape.
3. Memory per GPU at ZeRO 0/2/3 and --gpus (`llava.model.zero_memory`): the optimizer state (fp32 masters + AdamW
   moments) and the LLaCA plugin's buffers with the training defaults (`--llaca_*` flags' defaults: EMA, g_{t-1},
   and the task-start copy θ_0 that --llaca_drift keeps).
4. Checkpoint names: every parameter of upstream's `llava-v1.5-7b` (`llava.model.upstream_names`) converted by
   `llava.model.convert` to this package's merged model and back, shapes compared.

Prints one JSON object; exits 1 (after printing it) if a check failed.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile

import torch

from llava.constants import IGNORE_INDEX

# transformers checks the image-token count against the image features by reading tensor values, which meta
# tensors do not have; `shape_path` makes the same check from the token ids and the projector's output instead.
_VALUE_CHECKS = "TRANSFORMERS_DISABLE_TORCH_CHECK"


@contextlib.contextmanager
def _value_checks_off():
    saved = os.environ.get(_VALUE_CHECKS)
    os.environ[_VALUE_CHECKS] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ[_VALUE_CHECKS]
        else:
            os.environ[_VALUE_CHECKS] = saved


def causal_mask_4d(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, L, L] bool (True = attend): causal and key padding, the mask transformers builds from a [B, L]
    padding mask. Passed ready-made on the meta device because transformers' builder inspects the mask's
    values to decide whether it may skip it."""
    length = attention_mask.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return causal[None, None] & attention_mask.bool()[:, None, None, :]


def shape_path(model, batch: dict) -> dict:
    """One forward and backward of the training model on the meta device; returns the shapes along the way and
    raises RuntimeError where the path breaks (image tokens != projected features, a trainable tensor without a
    gradient of its shape, a frozen tensor with one, ...)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    seen: dict[str, list[int]] = {}

    def projector_hook(module, args, output):
        seen["image_features"], seen["projected_image_features"] = list(args[0].shape), list(output.shape)

    def language_model_hook(module, args, kwargs):
        seen["inputs_embeds"] = list(kwargs["inputs_embeds"].shape)

    hooks = [base.model.multi_modal_projector.register_forward_hook(projector_hook),
             base.model.language_model.register_forward_pre_hook(language_model_hook, with_kwargs=True)]
    model.train()
    try:
        with _value_checks_off():
            out = model(input_ids=batch["input_ids"].to("meta"), pixel_values=batch["pixel_values"].to("meta"),
                        attention_mask=causal_mask_4d(batch["attention_mask"]).to("meta"),
                        labels=batch["labels"].to("meta"))
        out.loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
    ids = batch["input_ids"]
    per_row = (ids == config.image_token_index).sum(dim=1).tolist()
    hidden = config.text_config.hidden_size
    result = {
        "pixel_values": list(batch["pixel_values"].shape), "vision_feature_layer": config.vision_feature_layer,
        "vision_feature_select_strategy": config.vision_feature_select_strategy, **seen,
        "image_tokens_per_sequence": per_row, "sequence": list(ids.shape),
        "labelled_tokens": int((batch["labels"] != IGNORE_INDEX).sum()), "logits": list(out.logits.shape),
        "loss": list(out.loss.shape),
        "trainable_with_gradient": sum(p.grad is not None and p.grad.shape == p.shape
                                       for p in model.parameters() if p.requires_grad),
        "frozen_with_gradient": sum(p.grad is not None for p in model.parameters() if not p.requires_grad),
    }
    batch_size, length = ids.shape
    expected = {
        "image_tokens_per_sequence": [config.image_seq_length] * batch_size,
        "image_features": [batch_size, config.image_seq_length, config.vision_config.hidden_size],
        "projected_image_features": [batch_size, config.image_seq_length, hidden],
        "inputs_embeds": [batch_size, length, hidden],
        "logits": [batch_size, length, config.text_config.vocab_size], "loss": [],
        "trainable_with_gradient": sum(p.requires_grad for p in model.parameters()), "frozen_with_gradient": 0,
    }
    wrong = {key: {"got": result.get(key), "expected": value} for key, value in expected.items()
             if result.get(key) != value}
    if wrong:
        raise RuntimeError(f"shape path broken: {wrong}")
    return result


def trainable_summary(model) -> dict:
    """Counts of trainable tensors and elements: all, LoRA (`lora_` in the name), projector."""
    from llava.train.trainer import PROJECTOR_KEY

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    lora = [p for n, p in named if "lora_" in n]
    projector = [p for n, p in named if PROJECTOR_KEY in n]
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "trainable_tensors": len(named), "trainable_params": sum(p.numel() for _, p in named),
            "lora_tensors": len(lora), "lora_params": sum(p.numel() for p in lora),
            "projector_tensors": len(projector), "projector_params": sum(p.numel() for p in projector),
            "other_trainable_tensors": len(named) - len(lora) - len(projector),
            "weights_dtype": str(next(p for _, p in named).dtype).replace("torch.", "")}


def dryrun(preset_name: str, lora_r: int, lora_alpha: int, zero: int, gpus: int) -> dict:
    """Steps 1-4 of the module doc; the report as a dict (`ok`: the checkpoint names convert; the shape path
    raises if broken)."""
    from llava.model import presets, upstream_names, zero_memory
    from llava.model.untrained import build_untrained, full_length_item
    from llava.train.arguments import parse_args
    from llava.train.data import DataCollatorForSupervisedDataset
    from llava.train.dist import ensure_single_process_env, prepare_deepspeed_on_cpu
    from llava.train.llaca import config_from_args
    from llava.train.trainer import LLaVATrainer

    preset = presets.get_preset(preset_name)
    if gpus < 1 or lora_r < 1:
        raise ValueError(f"--gpus and --lora_r must be >= 1, got {gpus} and {lora_r}")
    ensure_single_process_env()
    prepare_deepspeed_on_cpu()
    with tempfile.TemporaryDirectory(prefix="llava-dryrun-") as tmp:
        lm_dir, vision_dir = presets.write_config_dirs(preset, tmp)
        model_args, data_args, args = parse_args(presets.training_argv(
            preset, lm_dir, vision_dir, os.path.join(tmp, "out"), lora_r=lora_r, lora_alpha=lora_alpha, zero=zero))
        model, tokenizer, image_processor = build_untrained(model_args, data_args, args, device="meta")
        collator = DataCollatorForSupervisedDataset(tokenizer.pad_token_id)
        trainer = LLaVATrainer(model=model, args=args, processing_class=tokenizer, data_collator=collator)
        optimizer = trainer.create_optimizer()
        item = full_length_item(model, tokenizer, image_processor, args.model_max_length, preset.sample_image)
        path = shape_path(model, collator([item]))
    groups = zero_memory.param_groups(optimizer)
    llaca_config = config_from_args(args)
    stages = zero_memory.by_stage(groups, gpus, type(optimizer), llaca_config)
    summary = trainable_summary(model)
    non_lora = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    merged = model.merge_and_unload()
    ours = {n: tuple(p.shape) for n, p in merged.named_parameters()}
    added_tokens = len(tokenizer) - preset.language_model.vocab_size
    conversion = upstream_names.check_conversion(upstream_names.upstream_parameter_shapes(preset), ours,
                                                 added_tokens, non_lora)
    chosen = stages[str(zero)]
    return {
        "preset": preset.name, "lora_r": lora_r, "lora_alpha": lora_alpha, "zero": zero, "gpus": gpus,
        **summary, "base_parameters": sum(p.numel() for p in merged.parameters()),
        "vocab_size": len(tokenizer), "image_token_index": merged.config.image_token_index,
        "image_seq_length": merged.config.image_seq_length, "model_max_length": args.model_max_length,
        "optimizer": type(optimizer).__name__,
        "param_groups": [{"tensors": len(g.numels), "params": sum(g.numels), "lr": g.options["lr"],
                          "weight_decay": g.options["weight_decay"]} for g in groups],
        "shape_path": {"sample_image": list(preset.sample_image), **path},
        "llaca_config": {**llaca_config.resolved(), "track_drift": llaca_config.track_drift},
        "llaca_state_bytes_per_rank": chosen["llaca_state_bytes_per_rank"]["total"],
        "optimizer_state_bytes_per_rank": chosen["optimizer_state_bytes_per_rank"]["total"],
        "by_zero_stage": stages,
        "checkpoint_keys": conversion,
        "ok": conversion["ok"],
    }


def main(argv: list[str] | None = None) -> None:
    from llava.model.presets import PRESETS
    from llava.model.zero_memory import STAGES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="llava-v1.5-7b")
    parser.add_argument("--lora_r", type=int, default=128)
    parser.add_argument("--lora_alpha", type=int, default=256)
    parser.add_argument("--zero", type=int, choices=STAGES, default=2,
                        help="ZeRO stage (scripts/zero{N}.json) of the headline state sizes; every stage is listed")
    parser.add_argument("--gpus", type=int, default=8, help="data-parallel GPUs the states are sharded over")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):       # library logs (DeepSpeed logs to stdout): stdout is the JSON
        report = dryrun(args.preset, args.lora_r, args.lora_alpha, args.zero, args.gpus)
    print(json.dumps(report, indent=1))
    if not report["ok"]:
        failed = {k: v for k, v in report["checkpoint_keys"].items() if v and k in (
            "missing_in_ours", "wrong_inverse", "shape_mismatch", "ours_not_reached", "non_lora_trainables_failures")}
        sys.exit(f"error: checkpoint-name conversion failed: {json.dumps(failed)[:2000]}")


if __name__ == "__main__":
    from llava.utils import run_main

    run_main(main)
