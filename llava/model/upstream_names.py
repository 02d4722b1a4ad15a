"""The parameter names and shapes of an upstream LLaVA-1.5 checkpoint (`LlavaLlamaForCausalLM` of
haotian-liu/LLaVA), generated from the architecture, and the check that `llava.model.convert` maps each of them
onto this package's model and back.

Upstream's module tree (llava/model/language_model/llava_llama.py, llava_arch.py, multimodal_encoder/
clip_encoder.py, multimodal_projector/builder.py, on transformers 4.37's Llama and CLIP modules):

    model.embed_tokens.weight                              (vocab, hidden)
    model.layers.N.self_attn.{q,k,v,o}_proj.weight         no biases; k, v: (kv_heads x head_dim, hidden)
    model.layers.N.mlp.{gate,up,down}_proj.weight
    model.layers.N.{input,post_attention}_layernorm.weight
    model.norm.weight, lm_head.weight                      (untied)
    model.mm_projector.{0,2}.{weight,bias}                 nn.Sequential(Linear, GELU, Linear)
    model.vision_tower.vision_tower.vision_model.*         CLIPVisionTower.vision_tower = CLIPVisionModel:
        embeddings.{class_embedding, patch_embedding.weight (no bias), position_embedding.weight}
        pre_layrnorm.*  encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2, layer_norm2}.*
        post_layernorm.*

The vocabulary is the LM's own: upstream marks images with the id -200 and adds no token, while this package
adds `<image>` to the tokenizer (`build_llava`), so its embedding and lm_head have the added rows on top.
"""
from __future__ import annotations

from llava.model.convert import hf_to_upstream_key, upstream_to_hf_key
from llava.model.presets import LlavaPreset

PEFT_PREFIX = "base_model.model."
VOCAB_TENSORS = ("model.embed_tokens.weight", "lm_head.weight")


def upstream_parameter_shapes(preset: LlavaPreset) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter of upstream's LlavaLlamaForCausalLM for `preset` (mlp2x_gelu projector)."""
    lm, vt = preset.language_model, preset.vision_tower
    h, mlp, vocab = lm.hidden_size, lm.intermediate_size, lm.vocab_size
    kv = lm.num_key_value_heads * (h // lm.num_attention_heads)
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for i in range(lm.num_hidden_layers):
        layer = f"model.layers.{i}"
        shapes.update({
            f"{layer}.self_attn.q_proj.weight": (h, h), f"{layer}.self_attn.k_proj.weight": (kv, h),
            f"{layer}.self_attn.v_proj.weight": (kv, h), f"{layer}.self_attn.o_proj.weight": (h, h),
            f"{layer}.mlp.gate_proj.weight": (mlp, h), f"{layer}.mlp.up_proj.weight": (mlp, h),
            f"{layer}.mlp.down_proj.weight": (h, mlp),
            f"{layer}.input_layernorm.weight": (h,), f"{layer}.post_attention_layernorm.weight": (h,),
        })
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (vocab, h)
    vh = vt.hidden_size
    shapes.update({"model.mm_projector.0.weight": (h, vh), "model.mm_projector.0.bias": (h,),
                   "model.mm_projector.2.weight": (h, h), "model.mm_projector.2.bias": (h,)})
    clip = "model.vision_tower.vision_tower.vision_model"
    positions = (vt.image_size // vt.patch_size) ** 2 + 1
    shapes.update({f"{clip}.embeddings.class_embedding": (vh,),
                   f"{clip}.embeddings.patch_embedding.weight": (vh, 3, vt.patch_size, vt.patch_size),
                   f"{clip}.embeddings.position_embedding.weight": (positions, vh),
                   f"{clip}.pre_layrnorm.weight": (vh,), f"{clip}.pre_layrnorm.bias": (vh,)})
    for i in range(vt.num_hidden_layers):
        layer = f"{clip}.encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            shapes.update({f"{layer}.self_attn.{proj}.weight": (vh, vh), f"{layer}.self_attn.{proj}.bias": (vh,)})
        vmlp = vt.intermediate_size
        shapes.update({f"{layer}.layer_norm1.weight": (vh,), f"{layer}.layer_norm1.bias": (vh,),
                       f"{layer}.mlp.fc1.weight": (vmlp, vh), f"{layer}.mlp.fc1.bias": (vmlp,),
                       f"{layer}.mlp.fc2.weight": (vh, vmlp), f"{layer}.mlp.fc2.bias": (vh,),
                       f"{layer}.layer_norm2.weight": (vh,), f"{layer}.layer_norm2.bias": (vh,)})
    shapes.update({f"{clip}.post_layernorm.weight": (vh,), f"{clip}.post_layernorm.bias": (vh,)})
    return shapes


def check_conversion(upstream: dict[str, tuple[int, ...]], ours: dict[str, tuple[int, ...]],
                     added_tokens: int, trainable_non_lora: list[str]) -> dict:
    """Map every upstream name to ours (`upstream_to_hf_key`) and back (`hf_to_upstream_key`), compare shapes,
    and require every name of ours to be reached. `ours`: the base model's (unwrapped) name -> shape.
    The vocabulary tensors may have exactly `added_tokens` more rows in ours. `trainable_non_lora`: PEFT-wrapped
    names of the trainable non-LoRA tensors, which `non_lora_trainables.bin` stores under upstream's names
    with PEFT's prefix; they must convert both ways too. Returns counts, every failure, and `ok`."""
    missing, wrong_inverse, shape_mismatch, vocab_rows = [], [], {}, {}
    reached = set()
    for name, shape in upstream.items():
        mapped = upstream_to_hf_key(name)
        if mapped not in ours:
            missing.append(f"{name} -> {mapped}")
            continue
        reached.add(mapped)
        if hf_to_upstream_key(mapped) != name:
            wrong_inverse.append(f"{name} -> {mapped} -> {hf_to_upstream_key(mapped)}")
        got = tuple(ours[mapped])
        if got == tuple(shape):
            continue
        if name in VOCAB_TENSORS and got[1:] == tuple(shape[1:]) and got[0] - shape[0] == added_tokens:
            vocab_rows[name] = {"upstream": list(shape), "ours": list(got)}
        else:
            shape_mismatch[name] = {"upstream": list(shape), "ours": list(got)}
    not_reached = sorted(set(ours) - reached)
    wrapped_failures = []
    for name in trainable_non_lora:
        saved = hf_to_upstream_key(name)
        if not name.startswith(PEFT_PREFIX) or saved[len(PEFT_PREFIX):] not in upstream \
                or upstream_to_hf_key(saved) != name:
            wrapped_failures.append(f"{name} -> {saved} -> {upstream_to_hf_key(saved)}")
    ok = not (missing or wrong_inverse or shape_mismatch or not_reached or wrapped_failures)
    return {"upstream_parameters": len(upstream), "our_parameters": len(ours),
            "mapped_both_ways": len(reached) - len(wrong_inverse), "same_shape": len(reached) - len(vocab_rows)
            - len(shape_mismatch), "vocabulary_rows_added": vocab_rows, "non_lora_trainables_checked":
            len(trainable_non_lora), "missing_in_ours": missing, "wrong_inverse": wrong_inverse,
            "shape_mismatch": shape_mismatch, "ours_not_reached": not_reached,
            "non_lora_trainables_failures": wrapped_failures, "ok": ok}
