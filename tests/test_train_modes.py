"""The other upstream training modes: projector-only pretraining (`--tune_mm_mlp_adapter`, plain template) writes
an upstream `mm_projector.bin` that the next stage reads; a full fine-tune with `--unfreeze_mm_vision_tower` trains the
tower and writes a full model directory that the builder loads."""
import torch

from conftest import PYTHON, run, train_args


def args_without_lora(tiny, data, out, *extra):
    args = train_args(tiny, data, out, *extra)
    i = args.index("--lora_enable")
    del args[i:i + 2]
    return args


def test_projector_pretraining_writes_an_upstream_projector(tiny, colour_data, tmp_path):
    out = tmp_path / "pretrain"
    args = args_without_lora(tiny, colour_data, out, "--tune_mm_mlp_adapter", "True", "--max_steps", "3")
    args[args.index("--version") + 1] = "plain"
    run([PYTHON, "-m", "llava.train.train", *args])
    state = torch.load(out / "mm_projector.bin")
    assert set(state) == {f"model.mm_projector.{i}.{w}" for i in (0, 2) for w in ("weight", "bias")}
    before = torch.load(tiny / "mm_projector.bin")
    assert any(not torch.equal(state[k], before[k]) for k in state)
    assert (out / "config.json").is_file()
    run([PYTHON, "-m", "llava.train.train",
         *train_args(tiny, colour_data, tmp_path / "next", "--max_steps", "1", "--pretrain_mm_mlp_adapter",
                     str(out / "mm_projector.bin"))])


def test_full_finetune_with_unfrozen_tower(tiny, colour_data, tmp_path):
    from llava.model.builder import load_pretrained_model
    from transformers import CLIPVisionModel

    out = tmp_path / "full"
    run([PYTHON, "-m", "llava.train.train",
         *args_without_lora(tiny, colour_data, out, "--unfreeze_mm_vision_tower", "True", "--max_steps", "3")])
    _, model, processor, _ = load_pretrained_model(str(out), None, "full")
    tower = CLIPVisionModel.from_pretrained(tiny / "vision")
    trained = model.model.vision_tower.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in tower.state_dict().items())
    assert model.config.image_aspect_ratio == "pad" and processor.crop_size["height"] == 28
