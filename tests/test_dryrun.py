"""`python -m llava.model.dryrun`: LLaVA-1.5-7B built at its real shapes on the meta device (no weights, no real
memory), one forward and backward through the image path, state sizes per GPU, and upstream's checkpoint names."""
import json
import math

import pytest

from conftest import PYTHON, run
from llava.model import upstream_names
from llava.model.presets import PRESETS, training_argv

H, MLP, LAYERS, VOCAB, VISION, R, GPUS = 4096, 11008, 32, 32000, 1024, 128, 8
# (fan_in, fan_out) of the LM's linear layers: LoRA's targets.
LINEARS = {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H), "gate": (H, MLP), "up": (H, MLP), "down": (MLP, H)}


@pytest.fixture(scope="module")
def seven_b():
    proc = run([PYTHON, "-m", "llava.model.dryrun", "--preset", "llava-v1.5-7b", "--lora_r", "128", "--lora_alpha",
                "256", "--zero", "2", "--gpus", "8"], timeout=300)
    return json.loads(proc.stdout)


def lora_tensor_numels() -> list[int]:
    """A (r x fan_in) and B (fan_out x r) of every targeted linear layer."""
    return [n for _ in range(LAYERS) for fan_in, fan_out in LINEARS.values() for n in (R * fan_in, fan_out * R)]


PROJECTOR_WEIGHTS, PROJECTOR_BIASES = [H * VISION, H * H], [H, H]


def test_7b_trainable_tensors(seven_b):
    assert seven_b["lora_tensors"] == LAYERS * len(LINEARS) * 2 == 448
    assert seven_b["projector_tensors"] == 4 and seven_b["trainable_tensors"] == 452
    assert seven_b["lora_params"] == sum(lora_tensor_numels())
    assert seven_b["projector_params"] == sum(PROJECTOR_WEIGHTS + PROJECTOR_BIASES)
    trainable = sum(lora_tensor_numels() + PROJECTOR_WEIGHTS + PROJECTOR_BIASES)
    assert seven_b["trainable_params"] == trainable == 340_795_392
    assert seven_b["weights_dtype"] == "bfloat16" and seven_b["vocab_size"] == VOCAB + 1     # + <image>
    assert [g["lr"] for g in seven_b["param_groups"]] == [2e-4, 2e-5, 2e-5]     # LoRA, projector (mm_projector_lr)


def test_7b_shape_path(seven_b):
    path = seven_b["shape_path"]
    assert path["pixel_values"] == [1, 3, 336, 336] and path["sample_image"] == [640, 480]
    assert path["vision_feature_layer"] == -2 and path["vision_feature_select_strategy"] == "default"
    assert path["image_features"] == [1, 576, VISION]                   # 24 x 24 patches, CLS dropped
    assert path["projected_image_features"] == [1, 576, H]
    assert path["image_tokens_per_sequence"] == [576] and path["sequence"] == [1, 2048]
    assert path["inputs_embeds"] == [1, 2048, H] and path["logits"] == [1, 2048, VOCAB + 1]
    assert path["loss"] == [] and 0 < path["labelled_tokens"] < 2048 - 576
    assert path["trainable_with_gradient"] == 452 and path["frozen_with_gradient"] == 0


def expected_masters(stage: int) -> int:
    """fp32 master elements per GPU: DeepSpeed's layouts, from the architecture."""
    groups = [lora_tensor_numels(), PROJECTOR_WEIGHTS, PROJECTOR_BIASES]     # the Trainer's param groups
    if stage == 0:
        return sum(map(sum, groups))
    if stage == 2:
        return sum(math.ceil(sum(g) / (2 * GPUS)) * 2 * GPUS // GPUS for g in groups)
    return sum(math.ceil(n / GPUS) for g in groups for n in g)


@pytest.mark.parametrize("stage", [0, 2, 3])
def test_7b_state_bytes_per_gpu(seven_b, stage):
    n = expected_masters(stage)
    row = seven_b["by_zero_stage"][str(stage)]
    assert row["master_numel_per_rank"] == n
    assert row["optimizer_state_bytes_per_rank"] == {"fp32_master": 4 * n, "exp_avg": 4 * n, "exp_avg_sq": 4 * n,
                                                     "total": 12 * n}
    # fp32 EMA and g_{t-1}, and θ_0 because --llaca_drift is on by default
    assert seven_b["llaca_config"]["track_drift"] is True and seven_b["llaca_config"]["ema_dtype"] == "float32"
    assert row["llaca_state_bytes_per_rank"] == {"ema": 4 * n, "prev_grad": 4 * n, "theta0": 4 * n, "total": 12 * n}
    if stage == 2:
        assert seven_b["llaca_state_bytes_per_rank"] == seven_b["optimizer_state_bytes_per_rank"] == 12 * n


def test_7b_checkpoint_names_convert_both_ways(seven_b):
    keys = seven_b["checkpoint_keys"]
    lm = 2 + LAYERS * 9 + 1                            # embed, lm_head, norm; 7 linears + 2 norms per layer
    clip = 5 + 24 * 16 + 2                             # embeddings + pre-norm, 16 tensors per layer, post-norm
    assert keys["upstream_parameters"] == lm + clip + 4 == keys["our_parameters"] == keys["mapped_both_ways"] == 686
    assert keys["vocabulary_rows_added"] == {name: {"upstream": [VOCAB, H], "ours": [VOCAB + 1, H]}
                                             for name in ("model.embed_tokens.weight", "lm_head.weight")}
    assert keys["same_shape"] == 684 and keys["non_lora_trainables_checked"] == 4
    assert keys["ok"] and seven_b["ok"]


def converted(upstream: dict, added: int) -> dict:
    from llava.model.convert import upstream_to_hf_key

    ours = {upstream_to_hf_key(k): v for k, v in upstream.items()}
    for name in upstream_names.VOCAB_TENSORS:
        ours[upstream_to_hf_key(name)] = (upstream[name][0] + added, upstream[name][1])
    return ours


def test_conversion_check_finds_what_is_wrong(monkeypatch):
    upstream = upstream_names.upstream_parameter_shapes(PRESETS["tiny"])
    projector = ["base_model.model.model.multi_modal_projector.linear_1.weight"]
    assert upstream_names.check_conversion(upstream, converted(upstream, 1), 1, projector)["ok"]

    ours = converted(upstream, 1)
    del ours["model.vision_tower.post_layernorm.bias"]
    ours["model.vision_tower.post_layernorm.gain"] = (32,)
    report = upstream_names.check_conversion(upstream, ours, 1, projector)
    assert report["missing_in_ours"] == ["model.vision_tower.vision_tower.vision_model.post_layernorm.bias -> "
                                         "model.vision_tower.post_layernorm.bias"]
    assert report["ours_not_reached"] == ["model.vision_tower.post_layernorm.gain"] and not report["ok"]

    report = upstream_names.check_conversion(upstream, converted(upstream, 2), 1, projector)
    assert set(report["shape_mismatch"]) == set(upstream_names.VOCAB_TENSORS) and not report["ok"]

    # the inverse this package had before: no `vision_model` level
    inverse = upstream_names.hf_to_upstream_key
    monkeypatch.setattr(upstream_names, "hf_to_upstream_key", lambda k: inverse(k).replace(".vision_model.", "."))
    report = upstream_names.check_conversion(upstream, converted(upstream, 1), 1, [])
    assert len(report["wrong_inverse"]) == sum("vision_tower" in k for k in upstream) and not report["ok"]


def test_meta_build_is_the_training_build(tiny, tmp_path):
    """build_untrained (configs only, meta device) gives train.py's model: build_llava on the real directories,
    then set_trainable, with the same flags: same names, shapes, dtypes, trainable set and Llava settings."""
    from transformers import AutoTokenizer

    from llava.model.builder import build_llava
    from llava.model.untrained import build_untrained
    from llava.train.arguments import parse_args
    from llava.train.train import set_trainable, training_dtype

    argv = training_argv(PRESETS["tiny"], tiny / "lm", tiny / "vision", tmp_path, lora_r=4, lora_alpha=8, zero=2)
    model_args, data_args, args = parse_args(argv)
    meta, _, processor = build_untrained(model_args, data_args, args, device="meta")
    tokenizer = AutoTokenizer.from_pretrained(tiny / "lm")
    real = set_trainable(build_llava(str(tiny / "lm"), str(tiny / "vision"), tokenizer, dtype=training_dtype(args),
                                     select_layer=model_args.mm_vision_select_layer), model_args, args)

    def layout(model):
        return {n: (tuple(p.shape), p.dtype, p.requires_grad) for n, p in model.named_parameters()}

    assert layout(meta) == layout(real) and any(trainable for *_, trainable in layout(meta).values())
    assert all(p.is_meta for p in meta.parameters())
    for key in ("image_token_index", "image_seq_length", "vision_feature_layer", "vision_feature_select_strategy"):
        assert getattr(meta.config, key) == getattr(real.config, key), key
    assert meta.config.image_aspect_ratio == "pad" and processor.crop_size == {"height": 28, "width": 28}
