"""The LLaCA plugin inside the Trainer: attached when training starts (to the DeepSpeed engine, or to the torch
optimizer without DeepSpeed), its state restored on `--resume_from_checkpoint`, its coefficient statistics logged
every `--llaca_log_steps` steps (Trainer log + `llaca_log.jsonl`), and at the end of the task the EMA swapped into
the live weights before the final save, with `llaca_state.pt` written next to them.

A new task starts a new EMA from the weights it loaded: nothing is carried over from the previous task."""
from __future__ import annotations

import json
import logging
import os

import torch
from transformers import TrainerCallback

from llaca_plugin import LLaCAConfig, attach, attach_deepspeed
from llaca_plugin.log import append_jsonl, summary
from llava.train.trainer import LLACA_STATE, barrier, client_optimizer, is_main_process
from llava.utils import atomic_torch_save, atomic_write_text

logger = logging.getLogger(__name__)
LOG_FILE = "llaca_log.jsonl"
DRIFT_FILE = "llaca_drift.json"


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
    def __init__(self, trainer, resume_dir: str | None = None):
        self.trainer = trainer
        self.config = config_from_args(trainer.args)
        self.log_steps = max(1, int(trainer.args.llaca_log_steps))
        self.resume_dir = resume_dir
        self.log_path = os.path.join(trainer.args.output_dir, LOG_FILE)
        self.handle = None

    def on_train_begin(self, args, state, control, **kwargs):
        trainer = self.trainer
        if trainer.is_deepspeed_enabled:
            self.handle = attach_deepspeed(trainer.model_wrapped, self.config)
        else:
            self.handle = attach(client_optimizer(trainer), trainer.model.named_parameters(), self.config)
        trainer.llaca_handle = self.handle
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
        state = self.handle.state_dict()
        if is_main_process():
            atomic_torch_save(state, os.path.join(self.trainer.args.output_dir, LLACA_STATE))
            counts = self.handle.counts
            total = sum(counts.values()) or 1
            logger.info("LLaCA: EMA swapped in; per tensor-step: %.1f%% in range, %.1f%% fallback, %.1f%% skipped",
                        100 * counts["in_range"] / total, 100 * counts["fallback"] / total,
                        100 * counts["skipped"] / total)
        barrier()


def _fraction(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"
