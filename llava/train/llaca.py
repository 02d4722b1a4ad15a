"""LLaCA in training, all of it: its flags (LLaCAArguments, a mixin of llava.train.arguments.TrainingArguments)
and the plugin inside the Trainer (LLaCACallback): attached when training starts (to the DeepSpeed engine, or to
the torch optimizer without DeepSpeed), its state restored on `--resume_from_checkpoint`, its coefficient
statistics logged every `--llaca_log_steps` steps (Trainer log + `llaca_log.jsonl`), its state saved into every
checkpoint before the checkpoint's COMPLETE marker (a `checkpoint_writers` entry of LLaVATrainer), and at the
end of the task the EMA swapped into the live weights before the final save, with `llaca_state.pt` written next
to them.

A new task starts a new EMA from the weights it loaded: nothing is carried over from the previous task."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback

from llaca_plugin import LLaCAConfig, attach, attach_deepspeed
from llaca_plugin.log import append_jsonl, summary
from llava.train.checkpoints import LLACA_STATE
from llava.train.trainer import barrier, client_optimizer, is_main_process
from llava.utils import atomic_torch_save, atomic_write_text

logger = logging.getLogger(__name__)
LOG_FILE = "llaca_log.jsonl"
DRIFT_FILE = "llaca_drift.json"


@dataclass
class LLaCAArguments:
    """The LLaCA plugin's command-line flags. A mixin listed before transformers.TrainingArguments among the bases:
    its __post_init__ applies the alias (`--dema`, when given, sets `--llaca`) and then runs the next one's."""

    llaca: bool = field(default=False, metadata={"help": "gradient-informed EMA of the trainable weights"})
    dema: bool | None = field(default=None, metadata={"help": "alias of --llaca (the CoIN fork's name)"})
    llaca_variant: str = field(default="official", metadata={"choices": ["official", "paper"]})
    llaca_multiplier: float | None = field(default=None, metadata={
        "help": "c in k = c(1+G)/(d H); None: 2 official, 1 paper"})
    llaca_fallback: float = field(default=0.01, metadata={
        "help": "weight on the new weights when k is out of range"})
    llaca_init: str | None = field(default=None, metadata={"choices": [None, "first_step", "task_start"]})
    llaca_surrogate: str = field(default="grad_diff", metadata={"choices": ["grad_diff", "diff_quotient"]})
    llaca_granularity: str = field(default="tensor", metadata={"choices": ["tensor", "layer"]})
    llaca_mode: str = field(default="dynamic", metadata={"choices": ["dynamic", "fixed"]})
    llaca_ema_dtype: str | None = field(default=None, metadata={
        "help": "dtype of the EMA and the stored previous gradient (default: float32, or bfloat16 with "
                "--llaca_arithmetic released)", "choices": [None, "float32", "bfloat16", "float16"]})
    llaca_arithmetic: str = field(default="exact", metadata={
        "help": "exact (fp32 norms and EMA) or released (the released code's bf16 arithmetic: a relative dead "
                "band that partly reverts small changes; docs/llaca_arithmetic.md)", "choices": ["exact", "released"]})
    llaca_drift: bool = field(default=True, metadata={
        "help": "log per task how far training moved the weights and how much of it the EMA followed "
                "(llaca_drift.json; keeps a copy of the task-start weights, one trainable-sized fp32 buffer)"})
    llaca_log_steps: int = field(default=10, metadata={"help": "log coefficient statistics every N steps"})
    llaca_fused_norms: bool = field(default=False, metadata={
        "help": "CPU: the three L1 norms of a tensor in one torch.compile'd pass (about 2x faster merges; "
                "compiles once, ~20 s); accelerators always use their foreach path"})

    def __post_init__(self):
        if self.dema is not None:
            self.llaca = self.dema
        if self.llaca_log_steps < 1:
            raise ValueError(f"--llaca_log_steps must be at least 1, got {self.llaca_log_steps}")
        if self.llaca:
            config_from_args(self)            # LLaCAConfig's checks, before any model is loaded
        super().__post_init__()


def config_from_args(args) -> LLaCAConfig:
    return LLaCAConfig(variant=args.llaca_variant, multiplier=args.llaca_multiplier,
                       fallback_new_weight=args.llaca_fallback, init=args.llaca_init, surrogate=args.llaca_surrogate,
                       granularity=args.llaca_granularity, ema_dtype=args.llaca_ema_dtype, mode=args.llaca_mode,
                       fused_norms=args.llaca_fused_norms, arithmetic=args.llaca_arithmetic,
                       track_drift=args.llaca_drift)


def keep_log_until(path: str, last_step: int) -> None:
    """Drop coefficient-log lines after `last_step` (written after the checkpoint a run resumes from) and any
    partial last line, so a resumed run's log equals an uninterrupted one."""
    if not os.path.isfile(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if record["step"] <= last_step:
                kept.append(line)
    atomic_write_text(path, "".join(kept))


class LLaCACallback(TrainerCallback):
    """The plugin in one LLaVATrainer run: built with the trainer (it registers `save_state` as one of the
    trainer's `checkpoint_writers`) and added as its callback; `finish()` after `trainer.train()`."""

    def __init__(self, trainer, resume_dir: str | None = None):
        self.trainer = trainer
        self.config = config_from_args(trainer.args)
        self.log_steps = trainer.args.llaca_log_steps
        self.resume_dir = resume_dir
        self.log_path = os.path.join(trainer.args.output_dir, LOG_FILE)
        self.handle = None
        trainer.checkpoint_writers.append(self.save_state)

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        if trainer.is_deepspeed_enabled:
            self.handle = attach_deepspeed(trainer.model_wrapped, self.config)
        else:
            self.handle = attach(client_optimizer(trainer), trainer.model.named_parameters(), self.config)
        if self.resume_dir:
            state_file = os.path.join(self.resume_dir, LLACA_STATE)
            if not os.path.isfile(state_file):
                raise FileNotFoundError(f"{state_file}: missing; this checkpoint was not written by a --llaca run "
                                        "(resuming would restart the EMA and change the result)")
            self.handle.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=False))
            if is_main_process():
                keep_log_until(self.log_path, state.global_step)
        elif is_main_process() and os.path.exists(self.log_path):
            os.unlink(self.log_path)
        barrier()
        logger.info("LLaCA attached (%s): %s", "DeepSpeed" if trainer.is_deepspeed_enabled else "torch",
                    self.config.resolved())

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step % self.log_steps and step not in (1, state.max_steps):
            return
        if self.handle.steps == 0:
            return
        if is_main_process():
            append_jsonl(self.log_path, self.handle, step)
        should_log = control.should_log          # Trainer.log clears it, which would drop this step's loss log
        self.trainer.log(summary(self.handle))
        control.should_log = should_log

    def save_state(self, directory: str) -> None:
        """Write the plugin state to `directory`/llaca_state.pt (main process; every rank calls it)."""
        state = self.handle.state_dict()
        if is_main_process():
            atomic_torch_save(state, os.path.join(directory, LLACA_STATE))

    def finish(self) -> None:
        """End of the task: what the EMA did (`llaca_drift.json`, with --llaca_drift), then the EMA replaces the
        live weights (every rank), and the plugin state is saved."""
        if self.config.track_drift:
            drift = self.handle.drift()
            if is_main_process():
                atomic_write_text(os.path.join(self.trainer.args.output_dir, DRIFT_FILE),
                                  json.dumps({"steps": self.handle.steps, **drift}, indent=1) + "\n")
                logger.info("LLaCA drift: training moved the weights by %s of their L1 size; the EMA followed %s "
                            "of that%s", _fraction(drift["moved"]), _fraction(drift["followed"]),
                            "" if drift["ema_unchanged"] is None
                            else f"; {_fraction(drift['ema_unchanged'])} of its elements never left their first value")
        self.handle.swap_in()
        self.save_state(self.trainer.args.output_dir)
        if is_main_process():
            counts = self.handle.counts
            total = sum(counts.values()) or 1
            logger.info("LLaCA: EMA swapped in; per tensor-step: %.1f%% in range, %.1f%% fallback, %.1f%% skipped",
                        100 * counts["in_range"] / total, 100 * counts["fallback"] / total,
                        100 * counts["skipped"] / total)
        barrier()


def _fraction(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"
