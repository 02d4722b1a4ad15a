"""Per-GPU bytes of the optimizer state and of the LLaCA state under DeepSpeed ZeRO, from the trainable tensors'
sizes and the optimizer's param groups, without allocating them (everything on the meta device).

DeepSpeed (0.19) keeps fp32 master weights of the trainable tensors, one rank's share each:
    ZeRO 0     every tensor in full (bf16: FP16_UnfusedOptimizer's per-tensor fp32 copies)
    ZeRO 1, 2  per param group one flat partition: the group's elements padded to a multiple of
               2 x world size (nccl_start_alignment_factor), split evenly (stage_1_and_2.py)
    ZeRO 3     per tensor ceil(numel / world size) elements (padded partitions, partition_parameters.py),
               flattened per sub-group
The torch optimizer then runs on those masters, and the LLaCA plugin's buffers are laid out like them
(`deepspeed_patch.DeepSpeedLLaCA`: one buffer per master and key of `_buffer_keys()`). So both are measured by
building the optimizer (one step) and an `LLaCAMerger` over meta fp32 masters of one rank's sizes: the plugin's
and torch's own allocation rules decide the bytes, nothing is typed in. `optimizer_bytes` and `llaca_bytes` count
the same on live objects (`llava.train.gpu_check` sets a real DeepSpeed engine's against these predictions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STAGES = (0, 2, 3)                 # the stages of the shipped configs (scripts/zero{0,2,3}.json)
ALIGNMENT = 2                      # DeepSpeed ZeRO-1/2 nccl_start_alignment_factor


@dataclass(frozen=True)
class ParamGroup:
    """One optimizer param group: the element counts of its tensors and its hyper-parameters (lr, ...)."""

    numels: tuple[int, ...]
    options: dict


def param_groups(optimizer) -> list[ParamGroup]:
    """The groups of a torch optimizer (as the Trainer built it), sizes only."""
    return [ParamGroup(tuple(p.numel() for p in g["params"]), {k: v for k, v in g.items() if k != "params"})
            for g in optimizer.param_groups]


def master_numels(groups: list[ParamGroup], stage: int, world: int) -> list[list[int]]:
    """Per param group, the element counts of the fp32 master tensors one rank holds (see the module doc)."""
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    if stage == 0:
        return [list(g.numels) for g in groups]
    if stage in (1, 2):
        step = ALIGNMENT * world
        return [[math.ceil(sum(g.numels) / step) * step // world] for g in groups]
    if stage == 3:
        return [[sum(math.ceil(n / world) for n in g.numels)] for g in groups]
    raise ValueError(f"ZeRO stage must be 0-3, got {stage}")


def _meta_masters(numels: list[list[int]]) -> list[list[torch.nn.Parameter]]:
    return [[torch.nn.Parameter(torch.empty(n, dtype=torch.float32, device="meta")) for n in group]
            for group in numels]


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def optimizer_bytes(optimizer) -> dict[str, int]:
    """Bytes of a torch optimizer's parameters (the fp32 masters, under DeepSpeed) and of each state entry shaped
    like its parameter (AdamW: exp_avg, exp_avg_sq; scalars such as `step` are left out), and the total."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {"fp32_master": sum(_nbytes(p) for p in params)}
    for p in params:
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                out[key] = out.get(key, 0) + _nbytes(value)
    out["total"] = sum(out.values())
    return out


def llaca_bytes(handle) -> dict[str, int]:
    """Bytes of an attached LLaCA handle's buffers on this rank, per buffer (EMA, g_{t-1}, and θ_{t-1} / θ_0 / the
    EMA's first value where its config keeps them) and in total: `LLaCAMerger` or `DeepSpeedLLaCA`."""
    keys = handle._buffer_keys()
    if hasattr(handle, "calls"):                       # DeepSpeed: one buffer per master and key, per call
        buffers = {key: [b for call in handle.calls for b in call.buffers[key]] for key in keys}
    else:
        buffers = handle._buffers()
    out = {key: sum(_nbytes(b) for b in buffers[key]) for key in keys}
    out["total"] = sum(out.values())
    return out


def optimizer_state_bytes(groups: list[ParamGroup], numels: list[list[int]], optimizer_class) -> dict[str, int]:
    """`optimizer_bytes` of an `optimizer_class` with `groups`' options over meta fp32 masters of `numels`,
    after one step (which creates its state)."""
    masters = _meta_masters(numels)
    optimizer = optimizer_class([{"params": ms, **g.options} for ms, g in zip(masters, groups)])
    for group in masters:
        for p in group:
            p.grad = torch.empty_like(p)
    optimizer.step()
    return optimizer_bytes(optimizer)


def llaca_state_bytes(numels: list[list[int]], config) -> dict[str, int]:
    """`llaca_bytes` of the plugin's merger over meta fp32 masters of `numels` under `config`."""
    from llaca_plugin import LLaCAMerger

    masters = [p for group in _meta_masters(numels) for p in group]
    return llaca_bytes(LLaCAMerger([(f"master{i}", p) for i, p in enumerate(masters)], config))


def by_stage(groups: list[ParamGroup], world: int, optimizer_class, llaca_config) -> dict[str, dict]:
    """Per shipped ZeRO stage at `world` GPUs: master elements, optimizer state bytes and LLaCA state bytes per
    rank (keys "0", "2", "3")."""
    out = {}
    for stage in STAGES:
        numels = master_numels(groups, stage, world)
        out[str(stage)] = {"master_numel_per_rank": sum(map(sum, numels)),
                           "optimizer_state_bytes_per_rank": optimizer_state_bytes(groups, numels, optimizer_class),
                           "llaca_state_bytes_per_rank": llaca_state_bytes(numels, llaca_config)}
    return out
