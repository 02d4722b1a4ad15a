"""The settings of the CoIN chain scripts (`scripts/CoIN/`): one environment variable per field, named as the
field in upper case (`lr` is LR), unset or empty = the default, which is the published protocol (LLaCA's released
Train_CIA scripts; docs/coin_chain.md has the table). Values that go into a command line are kept as the strings
the user wrote (LR=2e-4 stays `2e-4`).

Relative paths are relative to the directory the scripts run from (the repository root, as upstream's).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from llava.coin.tasks import TASKS, CoinTask, parse_task_list

CHAINS = ("LLaCA", "LoRA", "FixedEMA", "Multitask", "LLaCA_grouped")
GROUPED_CHAIN = "LLaCA_grouped"
NEW_GROUP_INITS = ("previous", "fresh")
GROUP_EMAS = ("reused", "all", "none")
ROUTES = ("owner", "test_file")
SWITCHES = ("compat", "force", "next_task", "require_done", "keep_checkpoints")  # "0" or "1"
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SettingsError(ValueError):
    """A setting with a value the chain cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the chain scripts. `coin_root` (COIN_ROOT, set by scripts/CoIN/env.sh) is the
    repository root as the scripts spell it; `ds_config`, `result_root` and `zero_shot_model` default to paths
    derived from `coin_root`, `compat` and `output_root`."""

    # weights and data
    base_lm: str = "./checkpoints/Vicuna/vicuna-7b-v1.5"
    vision_tower: str = "./checkpoints/openai/clip-vit-large-patch14-336"
    pretrain_projector: str = ("./checkpoints/Instruction/Only_Pretrain_1.5_7b/llava-vicuna-2-7b-chat-pretrain/"
                               "mm_projector.bin")
    data_root: str = "./playground"
    instruction_type: str = "Instructions"
    image_root: str = "./cl_dataset"
    tasks: tuple[CoinTask, ...] = TASKS  # the chain's tasks, in order
    # launcher
    gpus: str = "localhost:0-7"          # deepspeed --include
    num_gpus: str = ""                   # deepspeed --num_gpus instead, when set
    master_port: str = "29600"
    ds_config: str = ""                  # "": COIN_ROOT/scripts/zero2.json
    deepspeed: str = "deepspeed"
    python: str = "python"
    coin_root: str = _PACKAGE_ROOT
    # outputs
    output_root: str = "./checkpoints/CoIN"
    method: str = "LLaCA"                # from_env: the chain's name when METHOD is unset
    keep_checkpoints: bool = True
    # protocol
    lr: str = "2e-4"
    mm_projector_lr: str = "2e-5"
    lora_r: str = "128"
    lora_alpha: str = "256"
    lora_targets: str = ""
    epochs: str = "1"
    max_steps: str = ""
    batch_sizes: tuple[int, ...] = (16, 16, 20, 8, 16, 8, 10, 12)  # per device, one per CoIN task in CoIN order
    multitask_batch_size: str = "16"
    grad_accum: str = "1"
    model_max_length: str = "2048"
    bf16: str = "True"
    tf32: str = "True"
    num_workers: str = "4"
    save_steps: str = ""
    extra_train_args: tuple[str, ...] = ()
    # evaluation
    cuda_visible_devices: str = "0"      # one inference chunk per entry (comma-separated)
    compat: bool = False
    result_root: str = ""                # "": ./results/CoIN, or ./results/CoIN_compat with compat
    conv_mode: str = "vicuna_v1"
    temperature: str = "0"
    eval_batch_size: str = "1"
    max_new_tokens: str = ""
    image_preprocess: str = ""
    extra_eval_args: tuple[str, ...] = ()
    next_task: bool = False
    force: bool = False
    require_done: bool = True
    zero_shot_model: str = ""            # "": OUTPUT_ROOT/Zero_shot
    # instruction grouping
    new_group_init: str = "previous"
    group_ema: str = "reused"
    group_threshold: str = ""
    route: str = "owner"
    # derived (not settings): the task names of `tasks`
    task_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_names", tuple(t.name for t in self.tasks))
        if not self.ds_config:
            object.__setattr__(self, "ds_config", f"{self.coin_root}/scripts/zero2.json")
        if not self.result_root:
            object.__setattr__(self, "result_root", "./results/CoIN_compat" if self.compat else "./results/CoIN")
        if not self.zero_shot_model:
            object.__setattr__(self, "zero_shot_model", f"{self.output_root}/Zero_shot")
        for name, allowed in (("new_group_init", NEW_GROUP_INITS), ("group_ema", GROUP_EMAS), ("route", ROUTES)):
            if getattr(self, name) not in allowed:
                raise SettingsError(f"{name.upper()} must be {_either(allowed)}, got '{getattr(self, name)}'")

    def batch_size(self, task: CoinTask) -> int:
        """The per-device batch of `task` (its entry of BATCH_SIZES, in CoIN order)."""
        return self.batch_sizes[TASKS.index(task)]


def _either(values: tuple[str, ...]) -> str:
    return ", ".join(values[:-1]) + " or " + values[-1]


def _batch_sizes(text: str) -> tuple[int, ...]:
    values = text.split()
    if len(values) != len(TASKS):
        raise SettingsError(f"BATCH_SIZES must hold {len(TASKS)} values (one per CoIN task, in CoIN order), "
                            f"got '{text}'")
    for value in values:
        if not (value.isascii() and value.isdigit() and value[0] != "0"):
            raise SettingsError(f"BATCH_SIZES: '{value}' is not a positive integer ({text})")
    return tuple(int(v) for v in values)


def _switch(name: str, text: str) -> bool:
    if text not in ("0", "1"):
        raise SettingsError(f"{name.upper()} must be 0 or 1, got '{text}'")
    return text == "1"


def from_env(env: Mapping[str, str] | None = None, chain: str | None = None) -> Settings:
    """The settings from `env` (default os.environ): a variable that is unset or empty takes the default.
    `chain` (a training script's chain, one of CHAINS) is METHOD's default; without one it is LLaCA.
    SettingsError names the first variable with an unusable value (TASKS, then BATCH_SIZES, then the rest)."""
    env = os.environ if env is None else env
    if chain is not None and chain not in CHAINS:
        raise SettingsError(f"unknown chain '{chain}' (chains: {' '.join(CHAINS)})")
    given = {f.name: env[f.name.upper()] for f in fields(Settings) if f.init and env.get(f.name.upper())}
    values: dict = dict(given)
    try:
        if "tasks" in given:
            values["tasks"] = tuple(parse_task_list(given["tasks"]))
        if "batch_sizes" in given:
            values["batch_sizes"] = _batch_sizes(given["batch_sizes"])
    except ValueError as err:
        raise SettingsError(str(err)) from None
    for name in SWITCHES:
        if name in given:
            values[name] = _switch(name, given[name])
    for name in ("extra_train_args", "extra_eval_args"):
        if name in given:
            values[name] = tuple(given[name].split())
    values.setdefault("method", chain or Settings.method)
    return Settings(**values)
