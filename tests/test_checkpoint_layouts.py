"""Checkpoints where users point at them: an upstream LLaVA-1.5 directory (llava_llama; safetensors or .bin, one
file or shards with an index) and a transformers Llava directory load as `--model_name_or_path` and `--model-path`
(`--model-base`), converted on load to the same model; the checkpoint's settings are used unless a flag says
otherwise, and a flag that contradicts them is refused; an unknown layout gets one error line."""
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from checkpoint_layouts import (to_upstream_lora_dir, upstream_config, write_native_checkpoint,
                                write_upstream_checkpoint)
from conftest import PYTHON, run, train_args
from llava.model import sources
from llava.model.builder import (build_llava, load_image_processor, load_pretrained_model, load_pretrained_projector,
                                 load_tokenizer)

LAYOUTS = [("safetensors", 1), ("bin", 2), ("safetensors", 3)]


@pytest.fixture(scope="module")
def model(tiny):
    """A LLaVA built from the tiny parts with every LM and projector weight made distinctive (the tower stays the
    tiny CLIP's: upstream checkpoints do not hold it). The `<image>` rows are the mean of the others, as loading
    an upstream checkpoint (which has no such row) makes them, so the two load to exactly the same model."""
    tokenizer = AutoTokenizer.from_pretrained(tiny / "lm")
    llava = build_llava(str(tiny / "lm"), str(tiny / "vision"), tokenizer)
    load_pretrained_projector(llava, str(tiny / "mm_projector.bin"))
    generator = torch.Generator().manual_seed(0)
    vocab = len(AutoTokenizer.from_pretrained(tiny / "lm"))
    with torch.no_grad():
        for name, param in llava.named_parameters():
            if "vision_tower" not in name:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))
        for emb in (llava.get_input_embeddings().weight, llava.lm_head.weight):
            emb[vocab:] = emb[:vocab].mean(dim=0, keepdim=True)
    llava.config.image_aspect_ratio = "pad"
    return llava.eval(), tokenizer


@pytest.fixture(scope="module")
def checkpoints(model, tiny, tmp_path_factory) -> dict[str, Path]:
    """The same model as upstream checkpoints (each file layout) and as a transformers Llava directory."""
    llava, tokenizer = model
    root = tmp_path_factory.mktemp("layouts")
    out = {f"upstream-{fmt}-{n}": write_upstream_checkpoint(llava, tiny / "lm", root / f"up-{fmt}-{n}",
                                                             str(tiny / "vision"), fmt=fmt, shards=n)
           for fmt, n in LAYOUTS}
    out["native"] = write_native_checkpoint(llava, tokenizer, load_image_processor(str(tiny / "vision")),
                                            root / "native")
    return out


def logits(llava, batch: int = 2):
    token = llava.config.image_token_index
    ids = torch.tensor([[1, 5, 6, 9] + [token] * llava.config.image_seq_length + [7, 8, 11]] * batch)
    size = llava.config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return llava(input_ids=ids, pixel_values=pixels).logits


@pytest.mark.parametrize("fmt,shards", LAYOUTS)
def test_upstream_checkpoint_loads_as_the_model_it_was_written_from(model, checkpoints, tiny, fmt, shards):
    llava, _ = model
    path = checkpoints[f"upstream-{fmt}-{shards}"]
    assert sources.inspect(str(path)).layout == sources.UPSTREAM
    assert json.loads((path / "config.json").read_text())["model_type"] == "llava_llama"
    tokenizer, loaded, processor, context_len = load_pretrained_model(str(path), None, "llava-v1.5-7b")
    torch.testing.assert_close(logits(loaded), logits(llava), rtol=0, atol=0)
    text = "What colour is it? red green blue"
    assert tokenizer(text).input_ids == AutoTokenizer.from_pretrained(tiny / "lm")(text).input_ids
    assert loaded.config.image_aspect_ratio == "pad" and context_len == 2048
    assert loaded.config.mm_vision_tower == str(tiny / "vision") and processor.crop_size["height"] == 28


def test_native_checkpoint_loads_as_the_same_model(model, checkpoints):
    llava, _ = model
    assert sources.inspect(str(checkpoints["native"])).layout == sources.NATIVE
    _, loaded, _, _ = load_pretrained_model(str(checkpoints["native"]), None, "merged")
    torch.testing.assert_close(logits(loaded), logits(llava), rtol=0, atol=0)
    with pytest.raises(ValueError, match="is a full model; --model-base .* would not be used"):
        load_pretrained_model(str(checkpoints["native"]), str(checkpoints["upstream-bin-2"]))


def test_upstream_projector_only_and_lora_directories_load_with_their_base(model, tiny, tmp_path):
    """Upstream's pretrain output (CoIN's zero-shot row) and an upstream LoRA output directory (llava_llama
    config, adapter_model.bin, upstream key names) load with `--model-base` like ours do."""
    from test_model_io import saved_lora_dir

    llava, _ = model
    vocab = len(AutoTokenizer.from_pretrained(tiny / "lm"))
    pretrain = tmp_path / "pretrain"
    pretrain.mkdir()
    torch.save(torch.load(tiny / "mm_projector.bin"), pretrain / "mm_projector.bin")
    (pretrain / "config.json").write_text(json.dumps(upstream_config(
        llava, vocab, str(tiny / "vision"), image_aspect_ratio="square", tune_mm_mlp_adapter=True)))
    _, loaded, _, _ = load_pretrained_model(str(pretrain), str(tiny / "lm"), "llava-pretrain")
    tokenizer = AutoTokenizer.from_pretrained(tiny / "lm")
    expected = build_llava(str(tiny / "lm"), str(tiny / "vision"), tokenizer)
    load_pretrained_projector(expected, str(tiny / "mm_projector.bin"))
    torch.testing.assert_close(logits(loaded), logits(expected.eval()), rtol=0, atol=0)
    assert loaded.config.image_aspect_ratio == "square"

    ours = tmp_path / "lora"
    saved_lora_dir(tiny, ours)
    theirs = to_upstream_lora_dir(ours, tmp_path / "upstream-lora", upstream_config(llava, vocab, str(tiny / "vision")))
    _, want, _, _ = load_pretrained_model(str(ours), str(tiny / "lm"), "llava-lora")
    _, got, _, _ = load_pretrained_model(str(theirs), str(tiny / "lm"), "llava-lora")
    torch.testing.assert_close(logits(got), logits(want), rtol=0, atol=0)


def test_a_tower_the_checkpoint_holds_wins_and_a_different_explicit_one_is_refused(model, tiny, tmp_path):
    llava, tokenizer = model
    trained = type(llava.model.vision_tower).from_pretrained(tiny / "vision")
    with torch.no_grad():
        for param in trained.parameters():
            param.add_(0.05 * torch.randn_like(param))
    llava.model.vision_tower, original = trained, llava.model.vision_tower
    try:
        upstream = write_upstream_checkpoint(llava, tiny / "lm", tmp_path / "up", str(tiny / "vision"),
                                             with_tower=True, unfreeze_mm_vision_tower=True)
        native = write_native_checkpoint(llava, tokenizer, load_image_processor(str(tiny / "vision")),
                                         tmp_path / "native")
        trained.save_pretrained(tmp_path / "trained-tower")
        want = logits(llava)
    finally:
        llava.model.vision_tower = original
    for path in (upstream, native):
        loaded = build_llava(str(path), None, load_tokenizer(str(path)), vision_tower_explicit=False)
        torch.testing.assert_close(logits(loaded.eval()), want, rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"holds its own vision tower, and its tensor \S+ differs from "
                                             r"--vision_tower .*: drop --vision_tower"):
            build_llava(str(path), str(tiny / "vision"), load_tokenizer(str(path)))
        same = build_llava(str(path), str(tmp_path / "trained-tower"), load_tokenizer(str(path)))
        torch.testing.assert_close(logits(same.eval()), want, rtol=0, atol=0)


def test_settings_the_checkpoint_records_cannot_be_contradicted(checkpoints, tiny):
    for path in (checkpoints["upstream-safetensors-1"], checkpoints["native"]):
        tokenizer = load_tokenizer(str(path))
        with pytest.raises(ValueError, match=r"config.json records mm_vision_select_layer = -2 \(its weights were "
                                             r"trained with it\), but -1 was asked for \(--mm_vision_select_layer\)"):
            build_llava(str(path), str(tiny / "vision"), tokenizer, select_layer=-1)
        with pytest.raises(ValueError, match="records mm_vision_select_feature = 'patch'"):
            build_llava(str(path), str(tiny / "vision"), tokenizer, select_feature="cls_patch")


def test_flags_left_out_come_from_the_checkpoint_and_given_ones_are_kept(checkpoints, colour_data, tmp_path):
    from llava.train.arguments import parse_args
    from llava.train.base_model import explicit_flags, resolve_base

    path = str(checkpoints["upstream-bin-2"])
    common = ["--model_name_or_path", path, "--data_path", str(colour_data / "train.json"), "--output_dir",
              str(tmp_path)]
    model_args, data_args, _ = parse_args(common)
    assert (model_args.mm_vision_select_layer, data_args.image_aspect_ratio) == (-1, "square")  # upstream's defaults
    assert model_args.mm_use_im_patch_token is True
    resolve_base(model_args, data_args, explicit_flags(common))
    assert model_args.mm_vision_select_layer == -2 and model_args.mm_projector_type == "mlp2x_gelu"
    assert model_args.mm_use_im_patch_token is False and data_args.image_aspect_ratio == "pad"
    assert model_args.vision_tower is None  # the builder takes the config's mm_vision_tower

    given = common + ["--mm_vision_select_l", "-1", "--image_aspect_ratio=square", "--no_mm_use_im_patch_token"]
    assert {"mm_vision_select_layer", "image_aspect_ratio", "mm_use_im_patch_token"} <= explicit_flags(given)
    model_args, data_args, _ = parse_args(given)
    resolve_base(model_args, data_args, explicit_flags(given))
    assert model_args.mm_vision_select_layer == -1 and data_args.image_aspect_ratio == "square"


def _one_line_error(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_layouts_say_what_was_found_and_what_converts_it(tiny, tmp_path):
    empty = tmp_path / "notes"
    empty.mkdir()
    (empty / "README.md").write_text("weights elsewhere")
    mistral = tmp_path / "mistral"
    mistral.mkdir()
    (mistral / "config.json").write_text(json.dumps({"model_type": "llava_mistral"}))
    (mistral / "model.safetensors").write_bytes(b"")
    cases = [
        (empty, ["unknown layout, found no config.json (files: README.md)", "merge_lora_weights.py",
                 "llava.model.export_base", "llava.model.zero_shot"]),
        (mistral, ["found config.json with model_type 'llava_mistral', model.safetensors",
                   "no command here converts 'llava_mistral'"]),
        (tiny, [f"--model_name_or_path {tiny}/lm --vision_tower {tiny}/vision --pretrain_mm_mlp_adapter "
                f"{tiny}/mm_projector.bin", "python -m llava.model.zero_shot"]),
        (tiny / "vision", ["model_type 'clip_vision_model'", "merge_lora_weights.py"]),
    ]
    for path, parts in cases:
        with pytest.raises(sources.LayoutError) as error:
            sources.inspect(str(path))
        message = _one_line_error(error)
        assert all(part in message for part in parts), message
    with pytest.raises(FileNotFoundError, match="not a directory, and not a model in the local Hugging Face cache"):
        sources.inspect(str(tmp_path / "nowhere"))


def test_training_and_eval_refuse_an_unknown_layout_with_one_error_line(tmp_path, colour_data):
    mistral = tmp_path / "mistral"
    mistral.mkdir()
    (mistral / "config.json").write_text(json.dumps({"model_type": "llava_mistral"}))
    (mistral / "model.safetensors").write_bytes(b"")
    proc = run([PYTHON, "-m", "llava.train.train", "--model_name_or_path", str(mistral), "--version", "v1",
                "--data_path", str(colour_data / "train.json"), "--output_dir", str(tmp_path / "out")], check=False)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --model_name_or_path {mistral}: unknown layout, found config.json with "
                           "model_type 'llava_mistral'"), last
    assert not (tmp_path / "out").exists()
    proc = run([PYTHON, "-m", "llava.eval.model_vqa_loader", "--model-path", str(mistral), "--question-file",
                str(colour_data / "test.json"), "--image-folder", str(colour_data), "--answers-file",
                str(tmp_path / "answers.jsonl")], check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith(f"error: --model-path {mistral}: unknown layout"), last


def test_a_lora_directory_as_base_names_the_merge_command(tiny, tmp_path):
    from llava.train.arguments import parse_args
    from llava.train.base_model import resolve_base
    from test_model_io import saved_lora_dir

    saved_lora_dir(tiny, tmp_path / "lora")
    model_args, data_args, _ = parse_args(["--model_name_or_path", str(tmp_path / "lora"), "--output_dir", "x"])
    with pytest.raises(sources.LayoutError) as error:
        resolve_base(model_args, data_args, set())
    message = _one_line_error(error)
    assert "a LoRA output directory" in message and "scripts/merge_lora_weights.py --model-path" in message
    assert "--previous_task_model_path" in message


def test_an_upstream_tower_that_is_not_here_is_one_clear_error(model, tiny, tmp_path):
    llava, _ = model
    path = write_upstream_checkpoint(llava, tiny / "lm", tmp_path / "up", "openai/clip-vit-large-patch14-336")
    with pytest.raises(FileNotFoundError) as error:
        load_pretrained_model(str(path), None)
    message = _one_line_error(error)
    assert message.startswith(f"{path}/config.json mm_vision_tower openai/clip-vit-large-patch14-336: not a "
                              "directory, and not a model in the local Hugging Face cache")
    assert "set it to the local CLIP directory (training: or pass --vision_tower)" in message


def answer(model_path: Path, data: Path, out: Path, *extra: str) -> list[dict]:
    """`python -m llava.eval.model_vqa_loader ...` (in this process: the same code, without another start-up)."""
    from llava.eval import model_vqa_loader, run_vqa

    run_vqa.main(model_vqa_loader.DEFAULTS, [
        "--model-path", str(model_path), "--question-file", str(data / "test.json"), "--image-folder", str(data),
        "--answers-file", str(out), "--temperature", "0", "--conv-mode", "vicuna_v1", "--batch-size", "4", *extra])
    return [json.loads(line) for line in out.read_text().splitlines()]


def upstream_finetune_task_lora(model_path: Path, vision_tower: Path, data: Path, output_dir: Path) -> list[str]:
    """haotian-liu/LLaVA scripts/v1_5/finetune_task_lora.sh, with only its paths changed (and --report_to: wandb
    is not installed here)."""
    return [
        "deepspeed", "llava/train/train_mem.py",
        "--lora_enable", "True", "--lora_r", "128", "--lora_alpha", "256", "--mm_projector_lr", "2e-5",
        "--deepspeed", "./scripts/zero3.json",
        "--model_name_or_path", str(model_path),
        "--version", "v1",
        "--data_path", str(data / "train.json"),
        "--image_folder", str(data),
        "--vision_tower", str(vision_tower),
        "--mm_projector_type", "mlp2x_gelu",
        "--mm_vision_select_layer", "-2",
        "--mm_use_im_start_end", "False",
        "--mm_use_im_patch_token", "False",
        "--image_aspect_ratio", "pad",
        "--group_by_modality_length", "True",
        "--bf16", "True",
        "--output_dir", str(output_dir),
        "--num_train_epochs", "1",
        "--per_device_train_batch_size", "16",
        "--per_device_eval_batch_size", "4",
        "--gradient_accumulation_steps", "1",
        "--evaluation_strategy", "no",
        "--save_strategy", "steps",
        "--save_steps", "50000",
        "--save_total_limit", "1",
        "--learning_rate", "2e-4",
        "--weight_decay", "0.",
        "--warmup_ratio", "0.03",
        "--lr_scheduler_type", "cosine",
        "--logging_steps", "1",
        "--tf32", "True",
        "--model_max_length", "2048",
        "--gradient_checkpointing", "True",
        "--dataloader_num_workers", "4",
        "--lazy_preprocess", "True",
        "--report_to", "none",
    ]


def without(args: list[str], *flags: str) -> list[str]:
    out = list(args)
    for flag in flags:
        i = out.index(flag)
        del out[i:i + 2]
    return out


def checkpoint_train_args(base: Path, data: Path, output_dir: Path, *extra: str, leave_out=()) -> list[str]:
    """The tests' LoRA command line with a checkpoint as --model_name_or_path and the flags it makes optional
    (the vision tower, the pretrain projector, settings its config records) left out."""
    args = train_args(base, data, output_dir, *extra)
    args[args.index("--model_name_or_path") + 1] = str(base)
    return without(args, "--vision_tower", "--pretrain_mm_mlp_adapter", *leave_out)


def test_upstream_checkpoint_trains_with_finetune_task_lora_and_evaluates(checkpoints, tiny, colour_data, tmp_path):
    """Upstream's command from a full LLaVA-1.5 checkpoint (ZeRO-3), a CoIN-style next task on top of it
    (--previous_task_model_path), then upstream's eval script with --model-base and on the checkpoint itself."""
    base = checkpoints["upstream-bin-2"]
    first, second = tmp_path / "task1-lora", tmp_path / "task2-lora"
    run(upstream_finetune_task_lora(base, tiny / "vision", colour_data, first))
    assert {"adapter_config.json", "adapter_model.safetensors", "non_lora_trainables.bin"} <= \
        {p.name for p in first.iterdir()}
    assert json.loads((first / "config.json").read_text())["llava_lm_path"] == str(base)
    args = checkpoint_train_args(base, colour_data, second, "--max_steps", "2", "--previous_task_model_path",
                                 str(first), leave_out=("--mm_vision_select_layer", "--image_aspect_ratio",
                                                        "--lora_r", "--lora_alpha"))
    args += ["--lora_r", "128", "--lora_alpha", "256"]  # the first task's rank
    run([PYTHON, "-m", "llava.train.train", *args])
    questions = json.loads((colour_data / "test.json").read_text())
    for model_path, extra in ((second, ("--model-base", str(base))), (base, ())):
        lines = answer(model_path, colour_data, tmp_path / "answers.jsonl", *extra)
        assert [x["question_id"] for x in lines] == [q["question_id"] for q in questions]


def test_native_checkpoint_trains_with_and_without_previous_task_and_evaluates(checkpoints, colour_data, tmp_path):
    base = checkpoints["native"]
    first, second = tmp_path / "task1-lora", tmp_path / "task2-lora"
    run([PYTHON, "-m", "llava.train.train", *checkpoint_train_args(base, colour_data, first, "--max_steps", "2")])
    run([PYTHON, "-m", "llava.train.train",
         *checkpoint_train_args(base, colour_data, second, "--max_steps", "2", "--previous_task_model_path", str(first),
                                leave_out=("--mm_vision_select_layer",))])
    questions = json.loads((colour_data / "test.json").read_text())
    for model_path, extra in ((second, ("--model-base", str(base))), (base, ())):
        lines = answer(model_path, colour_data, tmp_path / "answers.jsonl", *extra)
        assert [x["question_id"] for x in lines] == [q["question_id"] for q in questions]


def test_zero3_full_finetune_keeps_the_tower_an_upstream_checkpoint_holds(model, tiny, colour_data, tmp_path):
    """Under ZeRO-3 (partitioned weights) the checkpoint's own tower tensors are copied into the tower."""
    from transformers import LlavaForConditionalGeneration

    llava, _ = model
    tower = type(llava.model.vision_tower).from_pretrained(tiny / "vision")
    with torch.no_grad():
        for param in tower.parameters():
            param.add_(0.05 * torch.randn_like(param))
    llava.model.vision_tower, original = tower, llava.model.vision_tower
    try:
        path = write_upstream_checkpoint(llava, tiny / "lm", tmp_path / "up", str(tiny / "vision"), with_tower=True)
    finally:
        llava.model.vision_tower = original
    out = tmp_path / "full"
    args = without(upstream_finetune_task_lora(path, tiny / "vision", colour_data, out), "--vision_tower",
                   "--lora_enable", "--lora_r", "--lora_alpha")
    run([*args[:2], "--max_steps", "1", *args[2:]])
    saved = LlavaForConditionalGeneration.from_pretrained(out).model.vision_tower.state_dict()
    for name, value in tower.state_dict().items():
        torch.testing.assert_close(saved[name].float(), value.to(torch.bfloat16).float(), rtol=0, atol=0)
