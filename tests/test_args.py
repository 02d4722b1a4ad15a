"""Upstream LLaVA/CoIN command lines parse unchanged: renamed Trainer flags are mapped, GPU-only flags that do not
change results are dropped with a warning on CPU, flags that would change results are refused."""
import logging

import pytest
import torch

from llava.train.arguments import parse_args

BASE = ["--model_name_or_path", "lm", "--output_dir", "out", "--report_to", "none"]


def test_upstream_defaults():
    model, data, train = parse_args(BASE)
    assert (model.version, model.mm_vision_select_layer, model.mm_projector_type, model.mm_use_im_patch_token) == \
        ("v0", -1, "linear", True)
    assert (data.image_aspect_ratio, data.lazy_preprocess) == ("square", False)
    assert (train.lora_r, train.lora_alpha, train.lora_dropout, train.model_max_length, train.optim) == \
        (64, 16, 0.05, 512, "adamw_torch")
    assert train.remove_unused_columns is False and train.llaca is False


def test_transformers_5_renamed_flags_are_mapped():
    _, _, train = parse_args(BASE + ["--evaluation_strategy", "no", "--warmup_ratio", "0.03", "--group_by_length", "True"])
    assert train.eval_strategy == "no" and train.warmup_steps == 0.03
    assert train.get_warmup_steps(1000) == 30
    assert train.train_sampling_strategy == "group_by_length"


def test_coin_and_llaca_flags():
    model, data, train = parse_args(BASE + ["--previous_task_model_path", "prev", "--dema", "True",
                                            "--llaca_mode", "fixed", "--memory_data_path", "mem.json"])
    assert model.previous_task_model_path == "prev" and data.memory_data_path == "mem.json"
    assert train.llaca is True and train.llaca_mode == "fixed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU behaviour")
def test_tf32_is_ignored_with_one_warning_on_cpu(caplog):
    with caplog.at_level(logging.WARNING):
        _, _, train = parse_args(BASE + ["--tf32", "True"])
    assert train.tf32 is None and train.use_cpu is True
    assert [r.message for r in caplog.records if "tf32" in r.message] == [
        "--tf32 ignored: no CUDA device (it only affects GPU matmul precision)"]


@pytest.mark.parametrize("bits", ["4", "8"])
def test_quantised_training_is_refused(bits):
    with pytest.raises(ValueError, match="4/8-bit"):
        parse_args(BASE + ["--bits", bits])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU behaviour")
def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="--fp16 needs a CUDA device"):
        parse_args(BASE + ["--fp16", "True"])


def test_unknown_flag_is_an_error():
    with pytest.raises(ValueError, match="not used by the HfArgumentParser"):
        parse_args(BASE + ["--no_such_flag", "1"])
