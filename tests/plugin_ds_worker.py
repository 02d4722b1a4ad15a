"""DeepSpeed worker for tests/test_plugin_deepspeed.py, and the helpers both sides share.

    torchrun --nproc_per_node 2 tests/plugin_ds_worker.py --tiny DIR --plan PLAN.json --out OUT.json
    python tests/plugin_ds_worker.py ...            (one process)

Runs every spec of the plan in sequence in one process group (a fresh model and DeepSpeed engine per spec) and
writes, on rank 0, per spec: the per-step raw/applied coefficients and counts of the attached LLaCA handle,
the final EMA (full tensors) and the checks described at `run_spec`. The test computes the plain-torch
reference (`reference_run`, same model, data, seeds, clipping, param groups, accumulation) and compares.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llaca_plugin import LLaCAConfig, attach  # noqa: E402

BATCH, SEQ = 2, 16             # per micro-batch
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

# ------------------------------------------------------------------------------------ model and data


def build_model(tiny_dir: str | os.PathLike, seed: int = 0):
    """LlavaForConditionalGeneration from build_tiny's lm/, vision/ and mm_projector.bin; PEFT LoRA (r=4, no
    dropout, A and B random) on the language model only, the projector trainable. Deterministic in `seed`."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, CLIPVisionModel, LlavaConfig, LlavaForConditionalGeneration

    from llava.model.convert import projector_from_upstream

    tiny = Path(tiny_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny / "lm", dtype=torch.float32)
    vision = CLIPVisionModel.from_pretrained(tiny / "vision", dtype=torch.float32)
    vocab = lm.config.vocab_size
    config = LlavaConfig(text_config=lm.config, vision_config=vision.config, image_token_index=vocab - 1,
                         image_seq_length=image_tokens(vision.config), projector_hidden_act="gelu",
                         vision_feature_layer=-2, vision_feature_select_strategy="default",
                         multimodal_projector_bias=True, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(lm.model.state_dict())
    model.lm_head.load_state_dict(lm.lm_head.state_dict())
    model.model.vision_tower.load_state_dict(vision.state_dict())
    projector = projector_from_upstream(torch.load(tiny / "mm_projector.bin", weights_only=True))
    model.model.multi_modal_projector.load_state_dict(projector)
    lora = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS, init_lora_weights=False)
    model = get_peft_model(model, lora)
    for p in model.base_model.model.model.multi_modal_projector.parameters():
        p.requires_grad_(True)
    return model


def image_tokens(vision_config) -> int:
    return (vision_config.image_size // vision_config.patch_size) ** 2


def micro_batch(model, step: int, rank: int, micro: int) -> dict:
    """Deterministic micro-batch (step, data-parallel rank, accumulation index): BOS, the image tokens,
    random text; loss on the text."""
    cfg = model.config
    n_img, vocab = cfg.image_seq_length, cfg.text_config.vocab_size
    g = torch.Generator().manual_seed(1000 + 97 * step + 13 * rank + micro)
    ids = torch.randint(3, vocab - 1, (BATCH, SEQ), generator=g)
    ids[:, 0] = 1
    ids[:, 1:1 + n_img] = cfg.image_token_index
    labels = ids.clone()
    labels[:, :1 + n_img] = -100
    size = cfg.vision_config.image_size
    return {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
            "pixel_values": torch.randn(BATCH, 3, size, size, generator=g)}


def param_groups(model, spec: dict) -> list[dict]:
    """HF-Trainer-like: weights with decay, biases without; an optional extra group (e.g. to split a block)."""
    split = spec.get("split_group")
    groups = {"decay": [], "no_decay": [], "split": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = "split" if split and split in name else ("no_decay" if name.endswith("bias") else "decay")
        groups[key].append(p)
    out = [{"params": groups["decay"], "weight_decay": 0.01}, {"params": groups["no_decay"], "weight_decay": 0.0}]
    if groups["split"]:
        out.append({"params": groups["split"], "weight_decay": 0.01})
    return out


def make_optimizer(model, spec: dict):
    groups = param_groups(model, spec)
    if spec.get("optimizer", "adamw") == "sgd":
        return torch.optim.SGD(groups, lr=spec.get("lr", 0.05))
    return torch.optim.AdamW(groups, lr=spec.get("lr", 5e-3), eps=spec.get("eps", 1e-8))


def llaca_config(spec: dict) -> LLaCAConfig:
    keys = ("variant", "multiplier", "granularity", "surrogate", "init", "mode", "fused_norms", "arithmetic")
    return LLaCAConfig(**{k: spec[k] for k in keys if k in spec})


def reference_run(base_model, spec: dict, world: int, first_step: int = 0, state: dict | None = None) -> dict:
    """Plain torch: each step's gradient is the mean over `world` ranks x `ga` micro-batches, summed in the
    order DeepSpeed sums them (ZeRO-0/1/3: each rank's micro-batches, then across ranks; ZeRO-2 reduces every
    micro-batch across ranks, then accumulates; the 1/ga and 1/world scalings are powers of two here, hence
    exact), clipped with torch.nn.utils.clip_grad_norm_, stepped; LLaCAMerger through the optimizer hooks.
    ZeRO-0..2 then see bitwise the same gradients; ZeRO-3's module hooks also reorder the summation of a
    layer's input-gradient contributions inside backward (~3e-7 relative), which no reference reproduces."""
    model = copy.deepcopy(base_model)
    if state is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in state["weights"]:
                    p.copy_(state["weights"][name])
    opt = make_optimizer(model, spec)
    merger = attach(opt, model.named_parameters(), llaca_config(spec))
    if state is not None:
        merger.load_state_dict(state["llaca"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    ga = spec.get("ga", 2)
    if spec["stage"] == 2:
        order = [[(rank, micro) for rank in range(world)] for micro in range(ga)]
    else:
        order = [[(rank, micro) for micro in range(ga)] for rank in range(world)]
    steps = []
    for step in range(first_step, spec["steps"]):
        grads = {}
        for rank in range(world):
            for micro in range(ga):
                model(**micro_batch(model, step, rank, micro)).loss.backward()
                grads[rank, micro] = [p.grad for p in trainable]
                opt.zero_grad(set_to_none=True)
        partial = [_sum_in_order([grads[key] for key in group]) for group in order]
        for p, g in zip(trainable, _sum_in_order(partial)):
            p.grad = g / (world * ga)
        if spec.get("clip"):
            torch.nn.utils.clip_grad_norm_(trainable, spec["clip"])
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps.append(step_record(merger))
    return {"steps": steps, "final_ema": {n: e.float().tolist() for n, e in merger.ema.items()},
            "drift": merger.drift()}


def _sum_in_order(lists: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    total = lists[0]
    for more in lists[1:]:
        total = torch._foreach_add(total, more)
    return total


def step_record(handle) -> dict:
    return {"raw": handle.raw_coefficients, "applied": handle.coefficients, "counts": handle.counts,
            "handle_steps": handle.steps,
            "norms": {r["name"]: (r["d"], r["G"], r["H"]) for r in handle.tensor_records()}}


# ----------------------------------------------------------------------------------------- DeepSpeed


def ds_config(spec: dict, world: int) -> dict:
    stage = spec["stage"]
    ga = spec.get("ga", 2) * spec.get("data_world", world) // world     # micro-batches per process and step
    zero = {"stage": stage}
    if stage in (1, 2):
        zero.update(reduce_bucket_size=3000, allgather_bucket_size=3000)
    if stage == 3:
        zero.update(reduce_bucket_size=3000, stage3_param_persistence_threshold=100,
                    sub_group_size=spec.get("sub_group_size", 1_000_000), stage3_prefetch_bucket_size=3000,
                    stage3_max_live_parameters=100_000, stage3_gather_16bit_weights_on_model_save=True,
                    memory_efficient_linear=False)
    if spec.get("offload"):                  # ZeRO-Offload with the test's torch optimizer (no CPU Adam to build)
        zero["offload_optimizer"] = {"device": "cpu"}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu"}
    cfg = {"train_micro_batch_size_per_gpu": BATCH, "gradient_accumulation_steps": ga,
           "train_batch_size": BATCH * ga * world, "gradient_clipping": spec.get("clip", 0.0),
           "zero_optimization": zero, "zero_allow_untested_optimizer": True,      # SGD runs
           "steps_per_print": 10 ** 9, "wall_clock_breakdown": False,
           "zero_force_ds_cpu_optimizer": not spec.get("offload")}
    if spec.get("dtype") == "bf16":
        cfg["bf16"] = {"enabled": True}
        if spec.get("bf16_optimizer"):                    # ZeRO-1 + fp32 accumulation -> BF16_Optimizer
            cfg["data_types"] = {"grad_accum_dtype": "fp32"}
    return cfg


def gathered_module_weights(engine, names: list[str]) -> dict[str, torch.Tensor]:
    """The model's (low-precision) trainable weights as a save would see them, in full (collective; at
    ZeRO-3 only rank 0 gets them, the other ranks get {})."""
    if engine.zero_optimization_stage() == 3:
        state = engine._zero3_consolidated_16bit_state_dict() or {}
    else:
        state = engine.module.state_dict()
    return {name: state[name].detach().float().cpu() for name in names if name in state}


def run_spec(base_model, spec: dict, world: int, rank: int) -> dict:
    """One DeepSpeed run. Records per step the handle's coefficients and counts, and with `check_bf16` the
    largest |EMA_t − lerp(EMA_{t−1}, θ_t, w)| with θ_t the fp32 master and with θ_t the bf16 weights.
    `inject_inf_at`: that step's first micro-batch on rank 0 gets an inf loss (the engine must skip the step).
    `save_state_at`: after that step, save the handle's state_dict and the full fp32 trainable weights.
    `load_state`: start from such a file at its step (weights and LLaCA state). At the end: swap_in and the
    largest difference of the fp32 masters and of the saved model weights from the EMA."""
    import deepspeed

    model = copy.deepcopy(base_model)
    first_step = 0
    if spec.get("load_state"):
        saved = torch.load(spec["load_state"], weights_only=False)
        first_step = saved["step"]
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in saved["weights"]:
                    p.copy_(saved["weights"][name])
    opt = make_optimizer(model, spec)
    engine, *_ = deepspeed.initialize(model=model, optimizer=opt, config=ds_config(spec, world))
    from llaca_plugin import attach_deepspeed

    try:
        handle = attach_deepspeed(engine, llaca_config(spec))
    except (ValueError, NotImplementedError) as err:
        engine.destroy()
        return {"error": f"{type(err).__name__}: {err}"}
    if spec.get("load_state"):
        handle.load_state_dict(saved["llaca"])
    names = handle.names
    ga, local_world = spec.get("ga", 2), spec.get("data_world", world)
    per_rank = local_world // world                    # data ranks each process plays (1-proc resume: 2)
    steps = []
    for step in range(first_step, spec["steps"]):
        before = {n: handle.full_ema(n) for n in names} if spec.get("check_bf16") else None
        state_before = (handle.steps, handle.counts, handle.coefficients)
        for data_rank in range(rank * per_rank, (rank + 1) * per_rank):
            for micro in range(ga):
                loss = engine(**micro_batch(engine.module, step, data_rank, micro)).loss
                if spec.get("inject_inf_at") == step and data_rank == 0 and micro == 0:
                    loss = loss * float("inf")
                engine.backward(loss)
                engine.step()
        record = step_record(handle)
        record["applied_step"] = bool(engine.was_step_applied())
        record["grad_norm"] = float(engine.get_global_grad_norm() or 0.0)
        if not record["applied_step"]:
            record["unchanged"] = state_before == (handle.steps, handle.counts, handle.coefficients)
            if before is not None:
                record["ema_unchanged"] = all(torch.equal(before[n], handle.full_ema(n)) for n in names)
        elif before is not None:
            record.update(bf16_check(handle, before, names))
        steps.append(record)
        if spec.get("save_state_at") == step + 1:
            state = {"step": step + 1, "llaca": handle.state_dict(),
                     "weights": {n: handle.full_master(n) for n in names}}
            if rank == 0:
                torch.save(state, spec["state_path"])
    ema = {n: handle.full_ema(n) for n in names}
    result = {"kind": handle.kind, "steps": steps, "final_ema": {n: e.float().tolist() for n, e in ema.items()},
              "drift": handle.drift(), "ema_device": str(handle.calls[0].buffers["ema"][0].device),
              "ema_dtype": str(ema[names[0]].dtype), "trainable_numel": sum(s.numel() for s in handle.shapes),
              "ema_numel_this_rank": sum(b.numel() for call in handle.calls for b in call.buffers["ema"])}
    handle.swap_in()
    masters = {n: handle.full_master(n) for n in names}
    saved_weights = gathered_module_weights(engine, names)
    lp_dtype = torch.bfloat16 if spec.get("dtype") == "bf16" else torch.float32
    result["swap_in_master_err"] = max(float((masters[n] - ema[n]).abs().max()) for n in names)
    result["swap_in_saved_err"] = max([float((w - ema[n].to(lp_dtype).float()).abs().max())
                                       for n, w in saved_weights.items()], default=math.nan)
    engine.destroy()
    return result


def bf16_check(handle, before: dict, names: list[str]) -> dict:
    """|EMA_t − lerp(EMA_{t−1}, θ_t, w)| with the fp32 master θ_t (must be ~0) and with the bf16 weights."""
    err_fp32, err_bf16, moved = 0.0, 0.0, 0.0
    for n in names:
        w = handle.coefficients[n]
        if w is None:
            continue
        after, master = handle.full_ema(n), handle.full_master(n)
        err_fp32 = max(err_fp32, float((after - torch.lerp(before[n], master, w)).abs().max()))
        lp = master.to(torch.bfloat16).float()
        err_bf16 = max(err_bf16, float((after - torch.lerp(before[n], lp, w)).abs().max()))
        moved = max(moved, float((after - before[n]).abs().max()))
    return {"ema_err_fp32_master": err_fp32, "ema_err_bf16_weights": err_bf16, "ema_moved": moved,
            "ema_is_fp32": handle.full_ema(names[0]).dtype == torch.float32}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    from llava.train.dist import ensure_single_process_env, prepare_deepspeed_on_cpu

    ensure_single_process_env()
    prepare_deepspeed_on_cpu()
    import deepspeed
    import torch.distributed as dist

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    deepspeed.utils.logger.setLevel(logging.WARNING)
    deepspeed.init_distributed(dist_backend="gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    base = build_model(args.tiny)
    plan = json.loads(Path(args.plan).read_text())
    results, status = {}, 0
    for spec in plan:
        t0 = time.perf_counter()
        try:
            results[spec["name"]] = run_spec(base, spec, world, rank)
        except Exception:                                  # reported to the test, which fails on it
            results[spec["name"]] = {"error": traceback.format_exc()}
            print(f"rank {rank}, spec {spec['name']}:\n{results[spec['name']]['error']}", file=sys.stderr)
            status = 1
        results[spec["name"]]["seconds"] = time.perf_counter() - t0
        if status:
            break                                          # ranks may now disagree on collectives: stop
    if rank == 0:
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(results))
        tmp.replace(args.out)
    if not status:
        dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
