"""Command-line arguments: upstream LLaVA-1.5's names, CoIN's additions, the LLaCA plugin's flags (a base of
TrainingArguments: LLaCAArguments, llava/train/llaca.py), and shims for the Trainer flags that transformers 5
renamed or dropped, so upstream scripts run unchanged.

No flag is accepted and ignored: each is honoured, mapped onto the flag that does the job now, or refused when
parsed with an error that says why and what to use. A flag that selects something this package does not
implement (MPT attention, QLoRA settings, LLaVA-NeXT's patch merging, eager preprocessing) is refused, except for
the value that names what this package does (`--mm_patch_merge_type flat`, `--lazy_preprocess True`,
`--is_multimodal True`), so upstream scripts that pass it keep working. Defaults are upstream's except where
upstream's default is not usable here: `--version` v1 (LLaVA-1.5's template), `--mm_projector_type` mlp2x_gelu,
no default `--model_name_or_path`. tests/test_args.py lists every flag with its outcome."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import transformers

from llava.conversation import check_template
from llava.mm_utils import IMAGE_ASPECT_RATIOS, check_aspect_ratio
from llava.train.llaca import LLaCAArguments

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(default=None, metadata={"help": "the language model (LLaVA-1.5: Vicuna)"})
    previous_task_model_path: str | None = field(
        default=None, metadata={"help": "CoIN: a finished task's output_dir; its LoRA A/B and projector are restored"})
    version: str = field(default="v1", metadata={
        "help": "conversation template; default v1 (Vicuna v1.1, what LLaVA-1.5's fine-tuning scripts pass); plain for "
                "projector pretraining. Upstream's default v0 is not a template here"})
    freeze_backbone: bool = field(default=False)
    tune_mm_mlp_adapter: bool = field(default=False)
    vision_tower: str | None = field(default=None)
    mm_vision_select_layer: int | None = field(default=-1)
    pretrain_mm_mlp_adapter: str | None = field(default=None)
    mm_projector_type: str = field(default="mlp2x_gelu", metadata={
        "help": "mlp2x_gelu only (transformers' Llava projector, LLaVA-1.5's choice; upstream's default linear is "
                "refused)"})
    mm_use_im_start_end: bool = field(default=False, metadata={"help": "False only (LLaVA-1.5)"})
    mm_use_im_patch_token: bool = field(default=True)
    mm_patch_merge_type: str = field(default="flat", metadata={
        "help": "flat only: an image's patch features in one sequence (LLaVA-1.5); LLaVA-NeXT's spatial merges are "
                "not implemented"})
    mm_vision_select_feature: str | None = field(default="patch")
    unfreeze_mm_vision_tower: bool = field(default=False, metadata={"help": "train the vision tower too"})

    def __post_init__(self):
        check_template(self.version, "--version")
        if self.mm_patch_merge_type != "flat":
            raise ValueError(f"--mm_patch_merge_type {self.mm_patch_merge_type!r} is not implemented (LLaVA-NeXT's "
                             "merge of any-resolution tiles); this package supports flat (LLaVA-1.5: one sequence of "
                             "patch features per image). Pass --mm_patch_merge_type flat or drop the flag")


@dataclass
class DataArguments:
    data_path: str | None = field(default=None, metadata={"help": "Path to the training data (LLaVA JSON list)."})
    lazy_preprocess: bool = field(default=True, metadata={
        "help": "True only: records are validated and tokenised before training, images read per batch (upstream "
                "always uses its lazy dataset too, whatever this flag says)"})
    is_multimodal: bool | None = field(default=None, metadata={
        "help": "True or left out: training always has a vision tower (upstream sets True whenever --vision_tower "
                "is given); text-only records are still allowed"})
    image_folder: str | None = field(default=None)
    image_aspect_ratio: str = field(default="square", metadata={
        "help": "; ".join(f"{name}: {what}" for name, what in IMAGE_ASPECT_RATIOS.items())})
    memory_data_path: str | None = field(default=None, metadata={"help": "CoIN replay data appended to the training set"})

    def __post_init__(self):
        check_aspect_ratio(self.image_aspect_ratio)
        if not self.lazy_preprocess:
            raise ValueError("--lazy_preprocess False: eager preprocessing is not implemented (upstream ignores the "
                             "flag and is always lazy too); records are still validated before training. Drop the "
                             "flag or pass --lazy_preprocess True")
        if self.is_multimodal is False:
            raise ValueError("--is_multimodal False: text-only training is not supported (a --vision_tower is "
                             "required, and upstream sets is_multimodal True whenever one is given); text-only "
                             "records may still be mixed in. Drop the flag")


@dataclass
class TrainingArguments(LLaCAArguments, transformers.TrainingArguments):
    cache_dir: str | None = field(default=None, metadata={
        "help": "Hugging Face Hub cache for the models, tokenizer and image processor named by hub id (default: the "
                "hub's own cache)"})
    optim: str = field(default="adamw_torch")
    remove_unused_columns: bool = field(default=False)
    freeze_mm_mlp_adapter: bool = field(default=False)
    mpt_attn_impl: str | None = field(default=None, metadata={"help": "refused: MPT language models are not supported"})
    model_max_length: int = field(default=512, metadata={"help": "Maximum sequence length (image tokens included)."})
    double_quant: bool | None = field(default=None, metadata={"help": "refused: a QLoRA setting (no 4-bit training)"})
    quant_type: str | None = field(default=None, metadata={"help": "refused: a QLoRA setting (no 4-bit training)"})
    bits: int = field(default=16, metadata={"help": "16 (or 32: the same, no quantisation; the dtype comes from "
                                                    "--bf16/--fp16); 4/8-bit QLoRA is refused"})
    lora_enable: bool = False
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_weight_path: str | None = field(default=None, metadata={
        "help": "refused (upstream never read it): start from trained LoRA weights with --previous_task_model_path"})
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

    def __post_init__(self):
        check_deepspeed_config(self.deepspeed)
        self._refuse_unsupported()
        self._map_renamed_flags()
        self._fit_to_hardware()
        super().__post_init__()  # LLaCAArguments' (the --dema alias), then transformers' own
        check_report_to(self.report_to)

    def _refuse_unsupported(self) -> None:
        """Flags of implementations this package does not have: any value given is an error saying what to use."""
        if self.mpt_attn_impl is not None:
            raise ValueError(f"--mpt_attn_impl {self.mpt_attn_impl}: MPT language models (and their attention "
                             "implementations) are not supported; the LM is loaded with transformers' own attention "
                             "(FlashAttention-2 through llava/train/train_mem.py where installed). Drop the flag")
        for flag, value in (("double_quant", self.double_quant), ("quant_type", self.quant_type)):
            if value is not None:
                raise ValueError(f"--{flag} {value}: a 4-bit QLoRA setting, and 4/8-bit training is not supported by "
                                 "this package (--bits 16). Drop the flag")
        if self.lora_weight_path:
            raise ValueError(f"--lora_weight_path {self.lora_weight_path}: not supported (upstream LLaVA never reads "
                             "it either). To start from a trained LoRA, pass its output_dir as "
                             "--previous_task_model_path")

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


def check_report_to(report_to: list[str]) -> None:
    """`--report_to wandb` without the wandb package: one error line when the flags are parsed, not transformers'
    error after the model has loaded. Other integrations are left to transformers."""
    from transformers.integrations import is_wandb_available

    if "wandb" in report_to and not is_wandb_available():
        raise ValueError("--report_to wandb: the wandb package is not installed; install this package's extra "
                         "(pip install -e '.[wandb]'; WANDB_MODE=offline without network) or pass --report_to none")


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
