"""LLaVATrainer: transformers' Trainer with upstream LLaVA's projector learning rate and modality-length grouping,
LoRA-aware checkpoints that hold every trained tensor, a completion marker on each checkpoint (written after the
files of any `checkpoint_writers`), and a non-finite-loss policy."""
from __future__ import annotations

import logging
import os
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import Sampler
from transformers import Trainer, TrainerCallback

from llaca_plugin.torch_hooks import canonical_name
from llava.model import checkpoint as ckpt
from llava.train.checkpoints import CHECKPOINT_COMPLETE, CHECKPOINT_PREFIX
from llava.utils import atomic_write_text

logger = logging.getLogger(__name__)

PROJECTOR_KEY = "multi_modal_projector"


def split_to_even_chunks(indices: list[int], lengths: list[int], num_chunks: int) -> list[list[int]]:
    """Deal `indices` (longest first) into `num_chunks` chunks of equal count, each to the shortest chunk so far."""
    if len(indices) % num_chunks != 0:
        return [indices[i::num_chunks] for i in range(num_chunks)]
    per_chunk = len(indices) // num_chunks
    chunks: list[list[int]] = [[] for _ in range(num_chunks)]
    totals = [0] * num_chunks
    for index in indices:
        open_chunks = [c for c in range(num_chunks) if len(chunks[c]) < per_chunk]
        target = min(open_chunks, key=lambda c: totals[c])
        chunks[target].append(index)
        totals[target] += lengths[index]
    return chunks


def length_grouped_indices(lengths: list[int], batch_size: int, world_size: int, generator) -> list[int]:
    """A random order in which each megabatch (world_size x batch_size samples) is sorted by length and dealt
    evenly across ranks."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    megabatch = world_size * batch_size
    out = []
    for start in range(0, len(order), megabatch):
        group = sorted(order[start:start + megabatch], key=lambda i: lengths[i], reverse=True)
        for chunk in split_to_even_chunks(group, lengths, world_size):
            out.extend(chunk)
    return out


def modality_grouped_indices(lengths: list[int], batch_size: int, world_size: int, generator) -> list[int]:
    """Upstream's grouping: image samples (length > 0) and text-only samples (length < 0) in separate
    megabatches, each length-grouped; megabatches shuffled; the two partial remainders last."""
    if any(length == 0 for length in lengths):
        raise ValueError("modality lengths must be non-zero")
    if all(length > 0 for length in lengths) or all(length < 0 for length in lengths):
        return length_grouped_indices([abs(x) for x in lengths], batch_size, world_size, generator)
    megabatch = world_size * batch_size
    groups = []
    for sign in (1, -1):
        members = [i for i, length in enumerate(lengths) if length * sign > 0]
        member_lengths = [abs(lengths[i]) for i in members]
        order = [members[i] for i in length_grouped_indices(member_lengths, batch_size, world_size, generator)]
        groups.append([order[s:s + megabatch] for s in range(0, len(order), megabatch)])
    full = groups[0][:-1] + groups[1][:-1]
    remainder = sorted(groups[0][-1] + groups[1][-1])
    shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    return [i for batch in shuffled + [remainder] for i in batch]


class ModalityLengthGroupedSampler(Sampler):
    """Deterministic per (seed, epoch), so a resumed run sees the same order."""

    def __init__(self, lengths: list[int], batch_size: int, world_size: int, seed: int):
        self.lengths, self.batch_size, self.world_size, self.seed = lengths, batch_size, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(modality_grouped_indices(self.lengths, self.batch_size, self.world_size, generator))


def is_main_process() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def client_optimizer(trainer) -> torch.optim.Optimizer:
    """The torch optimizer that steps the trainable tensors: under DeepSpeed the one its engine wraps (yours, or the
    one it built from the config's `optimizer` block), else the one accelerate wraps. Valid once training began."""
    if trainer.is_deepspeed_enabled:
        wrapper = trainer.model_wrapped.optimizer
        return getattr(wrapper, "optimizer", wrapper)     # ZeRO / bf16 wrappers hold it; stage-0 fp32 is it
    return getattr(trainer.optimizer, "optimizer", trainer.optimizer)


class _StepGuard(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._install_step_guard(client_optimizer(self.trainer))


class LLaVATrainer(Trainer):
    """`checkpoint_writers`: extra writers, each called on every rank with a checkpoint's directory after the
    Trainer's own files are saved and before its COMPLETE marker, so a checkpoint is complete only with their files
    too (a writer chooses which rank writes, and writes atomically)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checkpoint_writers: list[Callable[[str], None]] = []
        self.nan_skipped_steps = 0
        self._skip_step = None  # the optimizer step (1-based) that --nan_policy skip drops
        self.add_callback(_StepGuard(self))

    # ---- data order ----
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.group_by_modality_length:
            return ModalityLengthGroupedSampler(
                dataset.modality_lengths, self.args.train_batch_size * self.args.gradient_accumulation_steps,
                self.args.world_size, self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def _run_epoch(self, *args, **kwargs):
        """A run resumed from a checkpoint of its last step has nothing left to train (transformers would run
        one more step when --max_steps ends inside an epoch)."""
        if 0 < self.state.max_steps <= self.state.global_step:
            return None
        return super()._run_epoch(*args, **kwargs)

    # ---- optimizer: projector learning rate; a DeepSpeed-built optimizer; a step that can be skipped ----
    def param_groups(self, model) -> list[dict]:
        """Upstream's groups: LoRA / LM tensors at --learning_rate, the projector at --mm_projector_lr (default: the
        same), each split into weight decay and no decay (biases, norms)."""
        decay = set(self.get_decay_parameter_names(model))
        projector_lr = self.args.mm_projector_lr if self.args.mm_projector_lr is not None else self.args.learning_rate
        groups = []
        for is_projector, lr in ((False, self.args.learning_rate), (True, projector_lr)):
            for use_decay in (True, False):
                params = [p for n, p in model.named_parameters()
                          if p.requires_grad and (PROJECTOR_KEY in n) == is_projector and (n in decay) == use_decay]
                if params:
                    groups.append({"params": params, "lr": lr,
                                   "weight_decay": self.args.weight_decay if use_decay else 0.0})
        return groups

    def create_optimizer(self, model=None):
        opt_model = self.model if model is None else model
        if type(self.optimizer).__name__ == "DummyOptim":
            self._configure_deepspeed_optimizer(opt_model)
            return self.optimizer
        if self.optimizer is None and self.args.mm_projector_lr is not None:
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            optimizer_kwargs.pop("lr", None)
            self.optimizer = optimizer_cls(self.param_groups(opt_model), lr=self.args.learning_rate, **optimizer_kwargs)
        return super().create_optimizer(model)

    def _configure_deepspeed_optimizer(self, model) -> None:
        """The DeepSpeed config has an `optimizer` block (e.g. upstream's zero3_offload.json): DeepSpeed builds that
        optimizer (its CPU Adam under offload) when the engine starts. transformers hands it a flat parameter list,
        which would drop the projector's learning rate and the no-decay group: hand it `param_groups` instead. A
        `scheduler` block replaces --lr_scheduler_type (said once). WarmupLR and WarmupDecayLR get each group's
        own peak ("auto" is --learning_rate, which transformers requires), WarmupCosineLR scales each group's own
        learning rate anyway; OneCycle and LRRangeTest with one number set every group alike, which is said."""
        groups = self.param_groups(model)
        self.optimizer.params = groups
        config = self.accelerator.state.deepspeed_plugin.hf_ds_config.config
        scheduler = config.get("scheduler")
        if not scheduler:
            return
        lrs = [g["lr"] for g in groups]
        params = scheduler.setdefault("params", {})
        kind = scheduler.get("type")
        logger.warning("the DeepSpeed config's scheduler block (%s) replaces --lr_scheduler_type %s", kind,
                       self.args.lr_scheduler_type.value if hasattr(self.args.lr_scheduler_type, "value")
                       else self.args.lr_scheduler_type)
        if len(set(lrs)) == 1 or kind == "WarmupCosineLR":
            return
        if kind in ("WarmupLR", "WarmupDecayLR"):
            params["warmup_max_lr"] = lrs
        elif not any(isinstance(v, (list, tuple)) for v in params.values()):
            logger.warning("the DeepSpeed scheduler %s sets one learning rate schedule for every param group: "
                           "--mm_projector_lr %s is not applied (use WarmupLR, WarmupDecayLR or WarmupCosineLR, "
                           "or per-group lists in its params)", kind, self.args.mm_projector_lr)

    def _install_step_guard(self, optimizer) -> None:
        """Let `--nan_policy skip` drop an optimizer step of `client_optimizer`: its gradients are discarded and
        what hooks into the real step does not run (the LLaCA merge, llava.train.llaca). DeepSpeed's own overflow check may skip it
        first. Installed when training begins, when the optimizer DeepSpeed steps exists."""
        if getattr(optimizer, "_llava_guarded", False):
            return
        original_step = optimizer.step

        def guarded_step(*args, **kwargs):
            # Under ZeRO the client optimizer is stepped once per param group: skip every call of this step.
            if self._skip_step == self.state.global_step + 1:
                optimizer.zero_grad(set_to_none=True)
                return None
            return original_step(*args, **kwargs)

        optimizer.step = guarded_step
        optimizer._llava_guarded = True

    # ---- loss: record ids out of the batch; non-finite losses ----
    def training_step(self, model, inputs, num_items_in_batch=None):
        record_ids = inputs.pop("record_ids", [])
        self._current_record_ids = record_ids
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop("record_ids", None)
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        loss = result[0] if return_outputs else result
        if model.training and not torch.isfinite(loss.detach()).all():
            step = self.state.global_step + 1
            ids = getattr(self, "_current_record_ids", [])
            if self.args.nan_policy == "stop":
                raise FloatingPointError(
                    f"non-finite loss ({loss.item()}) at optimizer step {step}; batch records: {ids}. "
                    "Fix or remove those records, lower the learning rate, or run with --nan_policy skip")
            self.nan_skipped_steps += 1
            self._skip_step = step
            logger.warning("non-finite loss at step %d (records %s): skipping this optimizer step (%d skipped so far)",
                           step, ids, self.nan_skipped_steps)
        return result

    def log(self, logs: dict, *args, **kwargs) -> None:
        if self.nan_skipped_steps:
            logs["nan_skipped_steps"] = self.nan_skipped_steps
        super().log(logs, *args, **kwargs)

    # ---- checkpoints ----
    def _save(self, output_dir=None, state_dict=None):
        """LoRA runs: upstream's layout (adapter + non_lora_trainables.bin + config.json) in every checkpoint."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not hasattr(self.model, "peft_config"):
            return super()._save(output_dir, state_dict)
        if not self.args.should_save:
            return None
        if state_dict is None:
            state_dict = {n: p.detach() for n, p in self.model.named_parameters() if p.requires_grad}
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        state = {canonical_name(k): v for k, v in state_dict.items()}
        state = {k: v for k, v in state.items() if k in trainable}
        lora = {k: v for k, v in state.items() if "lora_" in k}
        others = {k: v for k, v in state.items() if "lora_" not in k}
        ckpt.save_lora_dir(self.model, output_dir, lora, others)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
        return None

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Non-DeepSpeed resume of a LoRA run: the adapter and the projector (PEFT's loader only knows the first)."""
        if hasattr(self.model, "peft_config") and ckpt.is_lora_dir(resume_from_checkpoint):
            ckpt.load_lora_weights(self.model, resume_from_checkpoint)
            ckpt.load_non_lora_trainables(self.model, resume_from_checkpoint)
            return None
        return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _save_checkpoint(self, model, trial):
        """Save as usual, run the `checkpoint_writers`, mark the checkpoint complete, and only then rotate old
        ones, so an interrupted save never leaves the newest complete checkpoint missing."""
        limit = self.args.save_total_limit
        self.args.save_total_limit = None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        output_dir = os.path.join(self._get_output_dir(trial=trial), f"{CHECKPOINT_PREFIX}{self.state.global_step}")
        for write in self.checkpoint_writers:
            write(output_dir)
        barrier()
        if is_main_process():
            atomic_write_text(os.path.join(output_dir, CHECKPOINT_COMPLETE), f"{self.state.global_step}\n")
            if limit is not None:
                from transformers.trainer_utils import rotate_checkpoints

                rotate_checkpoints(output_dir=self._get_output_dir(trial=trial), save_total_limit=limit,
                                   best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=True)
        barrier()

