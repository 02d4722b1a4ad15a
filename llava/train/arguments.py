"""Command-line arguments: upstream LLaVA-1.5's names and defaults, CoIN's additions, the LLaCA plugin's flags,
and shims for the Trainer flags that transformers 5 renamed or dropped, so upstream scripts run unchanged."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import transformers

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default="facebook/opt-125m")
    previous_task_model_path: str | None = field(
        default=None, metadata={"help": "CoIN: a finished task's output_dir; its LoRA A/B and projector are restored"})
    version: str | None = field(default="v0", metadata={"help": "conversation template (LLaVA-1.5: v1; pretrain: plain)"})
    freeze_backbone: bool = field(default=False)
    tune_mm_mlp_adapter: bool = field(default=False)
    vision_tower: str | None = field(default=None)
    mm_vision_select_layer: int | None = field(default=-1)
    pretrain_mm_mlp_adapter: str | None = field(default=None)
    mm_projector_type: str | None = field(default="linear")
    mm_use_im_start_end: bool = field(default=False)
    mm_use_im_patch_token: bool = field(default=True)
    mm_patch_merge_type: str | None = field(default="flat")
    mm_vision_select_feature: str | None = field(default="patch")
    unfreeze_mm_vision_tower: bool = field(default=False, metadata={"help": "train the vision tower too"})


@dataclass
class DataArguments:
    data_path: str | None = field(default=None, metadata={"help": "Path to the training data (LLaVA JSON list)."})
    lazy_preprocess: bool = False
    is_multimodal: bool = False
    image_folder: str | None = field(default=None)
    image_aspect_ratio: str = "square"
    memory_data_path: str | None = field(default=None, metadata={"help": "CoIN replay data appended to the training set"})


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    cache_dir: str | None = field(default=None)
    optim: str = field(default="adamw_torch")
    remove_unused_columns: bool = field(default=False)
    freeze_mm_mlp_adapter: bool = field(default=False)
    mpt_attn_impl: str | None = field(default="triton")
    model_max_length: int = field(default=512, metadata={"help": "Maximum sequence length (image tokens included)."})
    double_quant: bool = field(default=True)
    quant_type: str = field(default="nf4")
    bits: int = field(default=16, metadata={"help": "16 only: 4/8-bit QLoRA would change results and is refused"})
    lora_enable: bool = False
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_weight_path: str = ""
    lora_bias: str = "none"
    lora_targets: str | None = field(default=None, metadata={
        "help": "LoRA target modules: comma-separated leaf names within the language model ('default' = upstream's "
                "choice, every LM linear layer; 'lm_head' allowed), or a regex matched against full module names"})
    mm_projector_lr: float | None = None
    group_by_modality_length: bool = field(default=False)
    nan_policy: str = field(default="stop", metadata={
        "help": "non-finite loss: 'stop' (error naming the step and the records) or 'skip' (skip that optimizer "
                "step, count it in the log)", "choices": ["stop", "skip"]})
    # transformers 5 dropped these TrainingArguments; upstream scripts pass them, so they are mapped.
    evaluation_strategy: str | None = field(default=None, metadata={"help": "alias of --eval_strategy"})
    warmup_ratio: float | None = field(default=None, metadata={"help": "mapped to --warmup_steps (a ratio in [0,1))"})
    group_by_length: bool = field(default=False, metadata={"help": "mapped to --train_sampling_strategy group_by_length"})
    # LLaCA plugin
    llaca: bool = field(default=False, metadata={"help": "gradient-informed EMA of the trainable weights"})
    dema: bool | None = field(default=None, metadata={"help": "alias of --llaca (the CoIN fork's name)"})
    llaca_variant: str = field(default="official", metadata={"choices": ["official", "paper"]})
    llaca_multiplier: float | None = field(default=None, metadata={"help": "c in k = c(1+G)/(d H); None: 2 official, 1 paper"})
    llaca_fallback: float = field(default=0.01, metadata={"help": "weight on the new weights when k is out of range"})
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
        check_deepspeed_config(self.deepspeed)
        self._map_renamed_flags()
        self._fit_to_hardware()
        if self.dema is not None:
            self.llaca = self.dema
        super().__post_init__()

    def _map_renamed_flags(self) -> None:
        if self.evaluation_strategy is not None:
            self.eval_strategy = self.evaluation_strategy
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
            if self.warmup_steps and self.warmup_steps >= 1:
                raise ValueError("pass either --warmup_ratio or --warmup_steps, not both")
            self.warmup_steps = self.warmup_ratio
        if self.group_by_length:
            self.train_sampling_strategy = "group_by_length"

    def _fit_to_hardware(self) -> None:
        """GPU-script flags on a machine without CUDA: tf32 (no effect on results) is dropped with one warning;
        fp16 and 4/8-bit (they would change results, and are unavailable here) are errors."""
        if self.bits not in (16, 32):
            raise ValueError(f"--bits {self.bits}: 4/8-bit (QLoRA) training is not supported by this package; use --bits 16")
        if torch.cuda.is_available():
            return
        if self.tf32:
            logger.warning("--tf32 ignored: no CUDA device (it only affects GPU matmul precision)")
            self.tf32 = None
        if self.fp16:
            raise ValueError("--fp16 needs a CUDA device (fp16 training is not supported on CPU); use --bf16 True or fp32")
        self.use_cpu = True


def check_deepspeed_config(config) -> None:
    """A `--deepspeed` file must exist, be a JSON object, and name a ZeRO stage 0-3; the error names the file."""
    if not isinstance(config, str) or not config:
        return
    import os

    from llava.utils import load_json

    if not os.path.isfile(config):
        raise FileNotFoundError(f"--deepspeed {config}: file not found (scripts/zero2.json and zero3.json ship with "
                                "this package)")
    data = load_json(config)
    if not isinstance(data, dict):
        raise ValueError(f"--deepspeed {config}: expected a JSON object, got {type(data).__name__}")
    stage = data.get("zero_optimization", {}).get("stage", 0)
    if stage not in (0, 1, 2, 3):
        raise ValueError(f"--deepspeed {config}: zero_optimization.stage must be 0, 1, 2 or 3, got {stage!r}")


def parse_args(argv: list[str] | None = None):
    parser = transformers.HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)
