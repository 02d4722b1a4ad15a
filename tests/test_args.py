"""Upstream LLaVA/CoIN command lines parse unchanged; every flag declared in llava/train/arguments.py (the LLaCA
flags: llava/train/llaca.py) is honoured, mapped or refused with an error that says why and what to use
(FLAG_OUTCOMES: adding a flag without deciding fails test_every_declared_flag_is_decided)."""
import dataclasses
import logging
import re
import shutil
from unittest import mock

import pytest
import torch

from conftest import PYTHON, REPO, run, train_args
from llava.train.arguments import DataArguments, ModelArguments, TrainingArguments, parse_args
from llava.train.llaca import LLaCAArguments

BASE = ["--model_name_or_path", "lm", "--output_dir", "out", "--report_to", "none"]

HONOURED = "honoured"            # read by this package's code: the value changes what happens
TRANSFORMERS = "transformers"    # transformers' own flag (the Trainer honours it); only our default differs
MAPPED = "mapped"                # renamed or dropped by transformers 5 (or a fork's alias): set the flag that does it
ONE_VALUE = "one value"          # only the value that names what this package does is accepted, any other refused
REFUSED = "refused"              # any value is an error: the feature is not implemented here

FLAG_OUTCOMES = {
    # ModelArguments
    "model_name_or_path": HONOURED, "previous_task_model_path": HONOURED, "version": HONOURED,
    "freeze_backbone": HONOURED, "tune_mm_mlp_adapter": HONOURED, "vision_tower": HONOURED,
    "mm_vision_select_layer": HONOURED, "pretrain_mm_mlp_adapter": HONOURED, "mm_projector_type": ONE_VALUE,
    "mm_use_im_start_end": ONE_VALUE, "mm_use_im_patch_token": HONOURED, "mm_patch_merge_type": ONE_VALUE,
    "mm_vision_select_feature": HONOURED, "unfreeze_mm_vision_tower": HONOURED,
    # DataArguments
    "data_path": HONOURED, "lazy_preprocess": ONE_VALUE, "is_multimodal": ONE_VALUE, "image_folder": HONOURED,
    "image_aspect_ratio": HONOURED, "memory_data_path": HONOURED,
    # TrainingArguments: ours, and transformers' with upstream's defaults
    "cache_dir": HONOURED, "optim": TRANSFORMERS, "remove_unused_columns": TRANSFORMERS,
    "freeze_mm_mlp_adapter": HONOURED, "mpt_attn_impl": REFUSED, "model_max_length": HONOURED,
    "double_quant": REFUSED, "quant_type": REFUSED, "bits": ONE_VALUE, "lora_enable": HONOURED, "lora_r": HONOURED,
    "lora_alpha": HONOURED, "lora_dropout": HONOURED, "lora_weight_path": REFUSED, "lora_bias": HONOURED,
    "lora_targets": HONOURED, "mm_projector_lr": HONOURED, "group_by_modality_length": HONOURED,
    "nan_policy": HONOURED, "evaluation_strategy": MAPPED, "warmup_ratio": MAPPED, "group_by_length": MAPPED,
    "dema": MAPPED, "llaca": HONOURED, "llaca_variant": HONOURED, "llaca_multiplier": HONOURED,
    "llaca_fallback": HONOURED, "llaca_init": HONOURED, "llaca_surrogate": HONOURED, "llaca_granularity": HONOURED,
    "llaca_mode": HONOURED, "llaca_ema_dtype": HONOURED, "llaca_arithmetic": HONOURED, "llaca_drift": HONOURED,
    "llaca_log_steps": HONOURED, "llaca_fused_norms": HONOURED,
}

# (flag, what is passed, words the error must contain: the reason and what to use instead). Every ONE_VALUE and
# REFUSED flag has a case, and so do honoured flags with values that are not implemented.
REFUSALS = [
    ("version", ["--version", "v0"], r"'v0' is not a known conversation template.*LLaVA-1.5 uses v1"),
    ("mm_projector_type", ["--mm_projector_type", "linear"], r"'linear' is not supported.*mm_projector_type mlp2x"),
    ("mm_use_im_start_end", ["--mm_use_im_start_end", "True"], r"not supported \(LLaVA-1.5 uses False\)"),
    ("mm_patch_merge_type", ["--mm_patch_merge_type", "spatial_unpad"], r"not implemented.*supports flat"),
    ("mm_vision_select_feature", ["--mm_vision_select_feature", "cls"], r"must be one of \['cls_patch', 'patch'\]"),
    ("lazy_preprocess", ["--lazy_preprocess", "False"], r"eager preprocessing is not .*--lazy_preprocess True"),
    ("is_multimodal", ["--is_multimodal", "False"], r"text-only training is not supported.*Drop the flag"),
    ("image_aspect_ratio", ["--image_aspect_ratio", "anyres"], r"'anyres' is not implemented \(LLaVA-NeXT.*pad \("),
    ("image_aspect_ratio", ["--image_aspect_ratio", "pda"], r"'pda' is not implemented; use one of: pad .*square"),
    ("mpt_attn_impl", ["--mpt_attn_impl", "triton"], r"MPT language models .* not supported.*Drop the flag"),
    ("double_quant", ["--double_quant", "True"], r"QLoRA setting.*--bits 16"),
    ("quant_type", ["--quant_type", "nf4"], r"QLoRA setting.*--bits 16"),
    ("bits", ["--bits", "4"], r"4/8-bit \(QLoRA\) training is not supported.*--bits 16"),
    ("lora_weight_path", ["--lora_weight_path", "lora.bin"], r"not supported.*--previous_task_model_path"),
]

# The value each ONE_VALUE flag accepts (what upstream scripts pass).
ONE_VALUE_ACCEPTED = [
    ["--mm_projector_type", "mlp2x_gelu"], ["--mm_use_im_start_end", "False"], ["--mm_patch_merge_type", "flat"],
    ["--lazy_preprocess", "True"], ["--is_multimodal", "True"], ["--bits", "16"],
]

# (what is passed, attribute of TrainingArguments, value it gets)
MAPPINGS = [
    (["--evaluation_strategy", "no"], "eval_strategy", "no"),
    (["--warmup_ratio", "0.03"], "warmup_steps", 0.03),
    (["--group_by_length", "True"], "train_sampling_strategy", "group_by_length"),
    (["--dema", "True"], "llaca", True),
]

# upstream LLaVA's scripts/v1_5/finetune_lora.sh, verbatim but for the DeepSpeed config's path
UPSTREAM_FINETUNE_LORA = (
    "--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5 --deepspeed {zero3} "
    "--model_name_or_path lmsys/vicuna-13b-v1.5 --version v1 --data_path ./playground/data/llava_v1_5_mix665k.json "
    "--image_folder ./playground/data --vision_tower openai/clip-vit-large-patch14-336 "
    "--pretrain_mm_mlp_adapter ./checkpoints/llava-v1.5-13b-pretrain/mm_projector.bin --mm_projector_type mlp2x_gelu "
    "--mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False --image_aspect_ratio pad "
    "--group_by_modality_length True --bf16 True --output_dir ./checkpoints/llava-v1.5-13b-lora --num_train_epochs 1 "
    "--per_device_train_batch_size 16 --per_device_eval_batch_size 4 --gradient_accumulation_steps 1 "
    "--evaluation_strategy no --save_strategy steps --save_steps 50000 --save_total_limit 1 --learning_rate 2e-4 "
    "--weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine --logging_steps 1 --tf32 True "
    "--model_max_length 2048 --gradient_checkpointing True --dataloader_num_workers 4 --lazy_preprocess True "
    "--report_to wandb")


def declared_flags() -> set[str]:
    """Every flag our three argument classes declare (TrainingArguments: the fields in our class body and in its
    LLaCA mixin, not transformers')."""
    ours = {f.name for cls in (ModelArguments, DataArguments, LLaCAArguments) for f in dataclasses.fields(cls)}
    return ours | set(TrainingArguments.__annotations__)


def test_every_declared_flag_is_decided():
    assert sorted(declared_flags() ^ set(FLAG_OUTCOMES)) == []


def test_honoured_flags_are_read_by_the_code():
    """A flag that nothing reads would be accepted and ignored: each honoured one is read as `<...>args.<flag>`
    outside arguments.py."""
    sources = "\n".join(p.read_text() for root in ("llava", "llaca_plugin") for p in (REPO / root).rglob("*.py")
                        if p.name != "arguments.py")
    unread = [flag for flag, outcome in FLAG_OUTCOMES.items()
              if outcome == HONOURED and not re.search(rf"args\.{flag}\b", sources)]
    assert unread == []


def test_transformers_flags_are_transformers_fields():
    import transformers

    names = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    assert all(flag in names for flag, outcome in FLAG_OUTCOMES.items() if outcome == TRANSFORMERS)


def test_every_refused_value_has_a_case():
    covered = {flag for flag, _, _ in REFUSALS}
    assert {flag for flag, outcome in FLAG_OUTCOMES.items() if outcome in (ONE_VALUE, REFUSED)} <= covered
    assert {a[0][2:] for a in ONE_VALUE_ACCEPTED} == {f for f, o in FLAG_OUTCOMES.items() if o == ONE_VALUE}
    assert {m[0][0][2:] for m in MAPPINGS} == {f for f, o in FLAG_OUTCOMES.items() if o == MAPPED}


@pytest.mark.parametrize("flag, argv, message", REFUSALS, ids=[f"{c[0]}={c[1][1]}" for c in REFUSALS])
def test_refused_values_stop_before_any_model_is_loaded(tiny, flag, argv, message):
    """Parse, check, then build: each refusal comes before anything is loaded (with these tiny paths a value that
    were accepted would load the model and the test would fail)."""
    from llava.train.base_model import explicit_flags, resolve_base
    from llava.train.train import build_model, check_args

    base = ["--model_name_or_path", str(tiny / "lm"), "--vision_tower", str(tiny / "vision"), "--data_path", "d.json",
            "--output_dir", "out", "--report_to", "none"]
    with pytest.raises(ValueError, match=message):
        model_args, data_args, args = parse_args(base + argv)
        check_args(model_args, data_args, args)
        source = resolve_base(model_args, data_args, explicit_flags(base + argv))
        build_model(model_args, args, None, source)


@pytest.mark.parametrize("argv", ONE_VALUE_ACCEPTED, ids=[a[0] for a in ONE_VALUE_ACCEPTED])
def test_the_value_that_names_what_we_do_is_accepted(argv):
    parse_args(BASE + argv)


@pytest.mark.parametrize("argv, attribute, value", MAPPINGS, ids=[m[0][0] for m in MAPPINGS])
def test_mapped_flags_set_the_flag_that_does_the_job(argv, attribute, value):
    _, _, train = parse_args(BASE + argv)
    assert getattr(train, attribute) == value


def test_defaults():
    model, data, train = parse_args(BASE)
    assert (model.version, model.mm_vision_select_layer, model.mm_projector_type, model.mm_use_im_patch_token) == \
        ("v1", -1, "mlp2x_gelu", True)
    assert (data.image_aspect_ratio, data.lazy_preprocess, data.is_multimodal) == ("square", True, None)
    assert (train.lora_r, train.lora_alpha, train.lora_dropout, train.model_max_length, train.optim) == \
        (64, 16, 0.05, 512, "adamw_torch")
    assert train.remove_unused_columns is False and train.llaca is False and train.cache_dir is None


def test_leaving_version_out_trains_with_the_llava_1_5_template_and_help_says_so():
    import transformers

    from llava.conversation import conv_templates

    model, _, _ = parse_args(BASE)
    assert conv_templates[model.version] is conv_templates["vicuna_v1"]  # what LLaVA-1.5's scripts pass as v1
    help_text = " ".join(transformers.HfArgumentParser((ModelArguments,)).format_help().split())
    assert "--version VERSION conversation template; default v1 (Vicuna v1.1" in help_text


@pytest.mark.parametrize("value", ["pad", "square"])
def test_image_aspect_ratio_accepts_what_is_implemented(value):
    _, data, _ = parse_args(BASE + ["--image_aspect_ratio", value])
    assert data.image_aspect_ratio == value


def test_upstream_finetune_lora_flags_parse_unchanged():
    argv = UPSTREAM_FINETUNE_LORA.format(zero3=REPO / "scripts" / "zero3.json").split()
    with mock.patch("transformers.integrations.is_wandb_available", return_value=True):
        model, data, train = parse_args(argv)
    assert (model.version, model.mm_projector_type, model.mm_vision_select_layer, data.image_aspect_ratio) == \
        ("v1", "mlp2x_gelu", -2, "pad")
    assert (train.lora_r, train.lora_alpha, train.mm_projector_lr, train.warmup_steps, train.report_to) == \
        (128, 256, 2e-5, 0.03, ["wandb"])


def test_report_to_wandb_without_wandb_is_one_line_naming_the_extra_and_none():
    from transformers.integrations import is_wandb_available

    argv = UPSTREAM_FINETUNE_LORA.format(zero3=REPO / "scripts" / "zero3.json").split()
    with mock.patch("transformers.integrations.is_wandb_available", return_value=False):
        with pytest.raises(ValueError) as refused:
            parse_args(argv)
    assert str(refused.value) == ("--report_to wandb: the wandb package is not installed; install this package's "
                                  "extra (pip install -e '.[wandb]'; WANDB_MODE=offline without network) or pass "
                                  "--report_to none")
    if not is_wandb_available():  # and the command ends with it, before any model is loaded (no DeepSpeed: faster)
        i = argv.index("--deepspeed")
        proc = run([PYTHON, "-m", "llava.train.train", *argv[:i], *argv[i + 2:]], check=False, timeout=120)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == f"error: {refused.value}"


def test_the_wandb_extra_is_declared():
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [req.split(">")[0] for req in extras["wandb"]] == ["wandb"]


def test_model_name_or_path_is_required():
    from llava.train.train import check_args

    model, data, train = parse_args(["--vision_tower", "v", "--data_path", "d.json", "--output_dir", "o"])
    with pytest.raises(ValueError, match="--model_name_or_path is required"):
        check_args(model, data, train)


def hub_snapshot(cache, repo_id: str, source) -> None:
    """Lay `source`'s files out as the Hugging Face Hub cache holds a downloaded repository."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_cache_dir_is_where_hub_ids_are_found(tiny, colour_data, tmp_path):
    """Models named by hub id load from --cache_dir (offline: nothing downloads); without it they are not found."""
    cache, empty = tmp_path / "cache", tmp_path / "empty"
    empty.mkdir()
    hub_snapshot(cache, "acme/tiny-lm", tiny / "lm")
    hub_snapshot(cache, "acme/tiny-clip", tiny / "vision")
    argv = train_args(tiny, colour_data, tmp_path / "out", "--max_steps", "1", "--save_strategy", "no")
    argv[argv.index("--model_name_or_path") + 1] = "acme/tiny-lm"
    argv[argv.index("--vision_tower") + 1] = "acme/tiny-clip"
    cmd = [PYTHON, "-m", "llava.train.train", *argv]
    missing = run(cmd, check=False, HF_HUB_CACHE=empty)
    assert missing.returncode == 1 and "acme/tiny-lm: not a directory, and not a model in the local Hugging Face cache" in missing.stderr
    run(cmd + ["--cache_dir", str(cache)], HF_HUB_CACHE=empty)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


def test_coin_and_llaca_flags():
    model, data, train = parse_args(BASE + ["--previous_task_model_path", "prev", "--dema", "True",
                                            "--llaca_mode", "fixed", "--memory_data_path", "mem.json"])
    assert model.previous_task_model_path == "prev" and data.memory_data_path == "mem.json"
    assert train.llaca is True and train.llaca_mode == "fixed"


def test_transformers_5_warmup_ratio_is_a_ratio():
    _, _, train = parse_args(BASE + ["--warmup_ratio", "0.03"])
    assert train.get_warmup_steps(1000) == 30


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU behaviour")
def test_tf32_is_ignored_with_one_warning_on_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        _, _, train = parse_args(BASE + ["--tf32", "True"])
    assert train.tf32 is None and train.use_cpu is True
    assert [r.message for r in caplog.records if "tf32" in r.message] == [
        "--tf32 ignored: no CUDA device (it only affects GPU matmul precision)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU behaviour")
def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="--fp16 needs a CUDA device"):
        parse_args(BASE + ["--fp16", "True"])


def test_unknown_flag_is_an_error():
    with pytest.raises(ValueError, match="not used by the HfArgumentParser"):
        parse_args(BASE + ["--no_such_flag", "1"])


@pytest.mark.parametrize("argv, message", [
    (["--llaca_log_steps", "0"], "--llaca_log_steps must be at least 1"),
    (["--llaca", "True", "--llaca_arithmetic", "released", "--llaca_granularity", "layer"], "granularity"),
    (["--llaca", "True", "--llaca_multiplier", "-1"], "multiplier"),
])
def test_llaca_settings_are_checked_when_the_flags_are_parsed(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_args(BASE + argv)
