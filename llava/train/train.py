"""Train LLaVA-1.5 (LoRA, full, or projector-only) with upstream's flags:
args -> model -> LoRA -> data -> trainer -> LLaCA -> train -> save.

    python -m llava.train.train --model_name_or_path LM --vision_tower CLIP --version v1 --data_path D.json ...
    deepspeed llava/train/train_mem.py --deepspeed scripts/zero2.json ...      (same flags)
"""
from __future__ import annotations

import logging
import os
import re
import sys

import torch
import transformers

if __package__ in (None, ""):  # run as a file (`deepspeed llava/train/train.py`): make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from llava.model import checkpoint as ckpt  # noqa: E402
from llava.model import sources  # noqa: E402
from llava.model.builder import (build_llava, image_processor_dir, load_image_processor,  # noqa: E402
                                 load_pretrained_projector, load_tokenizer)
from llava.model.convert import projector_to_upstream  # noqa: E402
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments, parse_args  # noqa: E402
from llava.train.base_model import explicit_flags, resolve_base  # noqa: E402
from llava.train.data import DataCollatorForSupervisedDataset, LazySupervisedDataset, TokenizerSpec  # noqa: E402
from llava.train.dist import ensure_single_process_env, init_deepspeed_comm, prepare_deepspeed_on_cpu  # noqa: E402
from llava.train.checkpoints import CHECKPOINT_COMPLETE, is_complete, last_complete_checkpoint  # noqa: E402
from llava.train.trainer import LLaVATrainer, barrier, is_main_process  # noqa: E402
from llava.utils import atomic_torch_save, hub_cache  # noqa: E402

logger = logging.getLogger("llava.train")
_REGEX_CHARS = set("*^$|()[]\\+?{}")


def lora_target_modules(model: torch.nn.Module, spec: str | None) -> list[str]:
    """Full names of the linear modules that get LoRA. Default (upstream): every nn.Linear of the language
    model, not the vision tower, the projector or lm_head. `spec`: comma-separated leaf names within the
    language model (`default` = upstream's set, `lm_head` = the output head), or a regex matched against full
    module names."""
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    in_lm = [name for name in linear if name.startswith(ckpt.LM_PREFIX)]
    if spec and set(spec) & _REGEX_CHARS:
        pattern = re.compile(spec)
        chosen = [name for name in linear if pattern.fullmatch(name)]
    else:
        tokens = [t.strip() for t in (spec or "default").split(",") if t.strip()]
        leaves = set()
        chosen = []
        for token in tokens:
            if token == "default":
                leaves |= {name.rsplit(".", 1)[-1] for name in in_lm}
            elif token == "lm_head":
                chosen += [name for name in linear if name == "lm_head"]
            else:
                leaves.add(token)
        chosen += [name for name in in_lm if name.rsplit(".", 1)[-1] in leaves]
    if not chosen:
        raise ValueError(f"--lora_targets {spec!r} matches no linear layer (language model linears: "
                         f"{sorted({n.rsplit('.', 1)[-1] for n in in_lm})}, plus lm_head)")
    return sorted(set(chosen))


def training_dtype(args: TrainingArguments) -> torch.dtype:
    """Weights are loaded in bf16/fp16 only under DeepSpeed (it keeps fp32 masters of the trainable tensors);
    without it they stay fp32 and the Trainer's autocast handles --bf16."""
    if args.deepspeed and args.bf16:
        return torch.bfloat16
    if args.deepspeed and args.fp16:
        return torch.float16
    return torch.float32


def check_args(model_args: ModelArguments, data_args: DataArguments, args: TrainingArguments) -> None:
    if not model_args.model_name_or_path:
        raise ValueError("--model_name_or_path is required: the language model (LLaVA-1.5: lmsys/vicuna-7b-v1.5)")
    if not data_args.data_path:
        raise ValueError("--data_path is required")
    if model_args.mm_use_im_start_end:
        raise ValueError("--mm_use_im_start_end True is not supported (LLaVA-1.5 uses False)")
    if model_args.previous_task_model_path and not args.lora_enable:
        raise ValueError("--previous_task_model_path restores LoRA weights; it needs --lora_enable True")
    if args.lora_enable and model_args.tune_mm_mlp_adapter:
        raise ValueError("--lora_enable and --tune_mm_mlp_adapter exclude each other")
    if args.llaca and not (args.lora_enable or model_args.tune_mm_mlp_adapter):
        logger.warning("--llaca on a full fine-tune: the EMA covers every trainable tensor")


def build_model(model_args: ModelArguments, args: TrainingArguments, tokenizer, base: sources.ModelDir,
                attn_implementation=None):
    """The model from `base` (`--model_name_or_path`, inspected by resolve_base) and the flags."""
    model = build_llava(
        base.path, model_args.vision_tower, tokenizer, dtype=training_dtype(args),
        select_layer=model_args.mm_vision_select_layer, select_feature=model_args.mm_vision_select_feature,
        projector_type=model_args.mm_projector_type, use_im_patch_token=model_args.mm_use_im_patch_token,
        attn_implementation=attn_implementation, vision_tower_explicit=model_args.vision_tower is not None,
    )
    model.config.use_cache = False
    if model_args.pretrain_mm_mlp_adapter:
        if base.holds_projector:
            logger.warning("--pretrain_mm_mlp_adapter %s replaces the projector of %s (the flag wins, as upstream)",
                           model_args.pretrain_mm_mlp_adapter, base.path)
        load_pretrained_projector(model, model_args.pretrain_mm_mlp_adapter)
    return model


def set_trainable(model, model_args: ModelArguments, args: TrainingArguments):
    """Upstream's choices: LoRA on the LM (the base frozen), or only the projector (pretraining), or the whole LM
    (full fine-tune); the projector trains unless frozen; the vision tower only with --unfreeze_mm_vision_tower."""
    from peft import LoraConfig, get_peft_model

    inner = model
    if args.gradient_checkpointing:
        model.enable_input_require_grads()
    if args.lora_enable:
        config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                            bias=args.lora_bias, task_type="CAUSAL_LM",
                            target_modules=lora_target_modules(model, args.lora_targets))
        model = get_peft_model(model, config)
        inner = model.get_base_model()
    elif model_args.tune_mm_mlp_adapter or model_args.freeze_backbone:
        inner.requires_grad_(False)
        if model_args.freeze_backbone and not model_args.tune_mm_mlp_adapter:
            inner.lm_head.requires_grad_(True)
    inner.model.vision_tower.requires_grad_(bool(model_args.unfreeze_mm_vision_tower))
    inner.model.multi_modal_projector.requires_grad_(not args.freeze_mm_mlp_adapter)
    # DeepSpeed keeps fp32 masters of the trainable tensors, which must share the module's dtype (PEFT makes LoRA
    # fp32); without DeepSpeed the optimizer updates the tensors themselves, so they stay fp32.
    dtype = training_dtype(args)
    for p in model.parameters():
        if p.requires_grad and p.dtype != dtype:
            p.data = p.data.to(dtype)
    return model


def record_config(model, model_args, data_args, args) -> None:
    config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    config.image_aspect_ratio = data_args.image_aspect_ratio
    config.tokenizer_padding_side = "right"
    config.tokenizer_model_max_length = args.model_max_length
    config.tune_mm_mlp_adapter = model_args.tune_mm_mlp_adapter
    config.freeze_mm_mlp_adapter = args.freeze_mm_mlp_adapter
    config.unfreeze_mm_vision_tower = model_args.unfreeze_mm_vision_tower
    config.mm_use_im_start_end = model_args.mm_use_im_start_end
    config.mm_use_im_patch_token = model_args.mm_use_im_patch_token
    config.mm_projector_lr = args.mm_projector_lr


def resolve_resume(args: TrainingArguments) -> str | None:
    """`--resume_from_checkpoint True` -> the newest complete checkpoint in output_dir; a path must be complete."""
    value = args.resume_from_checkpoint
    if value is None or str(value).lower() in ("false", "none", ""):
        return None
    if str(value).lower() == "true":
        found = last_complete_checkpoint(args.output_dir)
        if found is None:
            raise FileNotFoundError(f"--resume_from_checkpoint True: no complete checkpoint-N in {args.output_dir}")
        return found
    if not is_complete(value):
        raise ValueError(f"--resume_from_checkpoint {value}: not a complete checkpoint (no {CHECKPOINT_COMPLETE} "
                         "marker; the save was interrupted). Use an earlier checkpoint-N or --resume_from_checkpoint True")
    return value


def full_trainable_state(trainer) -> dict[str, torch.Tensor]:
    """Every trainable tensor, whole and in fp32 (DeepSpeed's fp32 masters where it keeps them). Collective
    under ZeRO-3: every rank must call it."""
    engine = trainer.model_wrapped if trainer.is_deepspeed_enabled else None
    out = {}
    for name, param in trainer.model.named_parameters():
        if not param.requires_grad:
            continue
        value = None
        if engine is not None:
            from deepspeed.utils import safe_get_full_fp32_param

            value = safe_get_full_fp32_param(param)
        if value is None:
            value = param.detach()
        out[name] = value.detach().float().cpu().clone()
    return out


def save_outputs(trainer, model, model_args, args, tokenizer, image_processor) -> None:
    """Write output_dir in upstream's layout for the kind of run (LoRA, projector-only, or full)."""
    output_dir = args.output_dir
    if args.lora_enable or model_args.tune_mm_mlp_adapter:
        state = full_trainable_state(trainer)
        if is_main_process():
            if args.lora_enable:
                lora = {k: v for k, v in state.items() if "lora_" in k}
                others = {k: v for k, v in state.items() if "lora_" not in k}
                ckpt.save_lora_dir(model, output_dir, lora, others)
            else:
                prefix = "model.multi_modal_projector."
                projector = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
                atomic_torch_save(projector_to_upstream(projector), os.path.join(output_dir, "mm_projector.bin"))
                model.config.save_pretrained(output_dir)
    else:
        trainer.save_model(output_dir)
        if is_main_process():
            tokenizer.save_pretrained(output_dir)
            image_processor.save_pretrained(output_dir)
    barrier()


def main(argv: list[str] | None = None, attn_implementation: str | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--deepspeed" or a.startswith("--deepspeed=") for a in argv):
        ensure_single_process_env()
        prepare_deepspeed_on_cpu()
    model_args, data_args, args = parse_args(argv)
    if args.deepspeed:
        init_deepspeed_comm()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if is_main_process() else logging.WARNING)
    transformers.set_seed(args.seed)
    check_args(model_args, data_args, args)
    with hub_cache(args.cache_dir):
        source = resolve_base(model_args, data_args, explicit_flags(argv))
        tokenizer = load_tokenizer(source.path, model_max_length=args.model_max_length, padding_side="right")
        model = build_model(model_args, args, tokenizer, source, attn_implementation)
        image_processor = load_image_processor(image_processor_dir(model.config.mm_vision_tower,
                                                                   source.config.get("mm_vision_tower")))
    model = set_trainable(model, model_args, args)
    if model_args.previous_task_model_path:
        loaded = ckpt.restore_previous_task(model, model_args.previous_task_model_path, args.lora_r)
        logger.info("restored LoRA and %s from %s", loaded, model_args.previous_task_model_path)
    record_config(model, model_args, data_args, args)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    spec = TokenizerSpec(conv_version=model_args.version, image_token_id=base.config.image_token_index,
                         image_seq_length=base.config.image_seq_length, model_max_length=args.model_max_length)
    dataset = LazySupervisedDataset(
        data_args.data_path, tokenizer, spec, image_processor=image_processor, image_folder=data_args.image_folder,
        image_aspect_ratio=data_args.image_aspect_ratio, memory_data_path=data_args.memory_data_path, seed=args.seed)
    trainer = LLaVATrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                           data_collator=DataCollatorForSupervisedDataset(tokenizer.pad_token_id))
    resume = resolve_resume(args)
    llaca = None
    if args.llaca:
        from llava.train.llaca import LLaCACallback

        llaca = LLaCACallback(trainer, resume_dir=resume)
        trainer.add_callback(llaca)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()
    if llaca is not None:
        llaca.finish()
    save_outputs(trainer, model, model_args, args, tokenizer, image_processor)
    if is_main_process():
        logger.info("saved %s", args.output_dir)


if __name__ == "__main__":
    from llava.utils import run_main

    run_main(main)
