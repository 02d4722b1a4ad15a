"""`attach_deepspeed(engine, config)`: the LLaCA merge inside a DeepSpeed 0.19 engine, on the fp32 master shards.

Where it hooks in (docs/deepspeed_seam.md): a step post-hook on the client torch optimizer that DeepSpeed wraps
(yours, or the one DeepSpeed builds from the config's `optimizer` block, e.g. DeepSpeedCPUAdam under offload). DeepSpeed calls that optimizer once per optimizer "call" — the whole step at stage 0 and for
BF16_Optimizer, once per param group at ZeRO-1/2, once per sub-group at ZeRO-3 — with the fp32 master shard of
the call just updated and its `.grad` (averaged over ranks and accumulation, unscaled, clipped) still set, and
copies the masters to the low-precision model weights only after the hook. So each call is merged in its own
hook: partial L1 norms of this rank's pieces, ONE all-reduce of the call's (n, 3|4) float64 table, the
coefficients, a foreach lerp into the EMA shard. A step the engine skips (overflow) calls no hook: nothing is
merged and nothing counted. EMA and g_{t-1} (and θ_0 for the drift figures) are shards laid out like the master
shards, on the masters' device (CPU memory under optimizer offload): 2 (3) × trainable fp32 / world size per rank
at ZeRO ≥ 1; full tensors at stage 0. The norm table travels to the communication backend's device for the
all-reduce (NCCL: the accelerator, also when the masters are offloaded).

Per engine.optimizer (found by class; DeepSpeed is imported lazily):
  stage 0 fp32       the client optimizer itself; masters = the module parameters
  stage 0 bf16       FP16_UnfusedOptimizer; masters = its per-tensor fp32_groups
  ZeRO-1/2           DeepSpeedZeroOptimizer; masters = single_partition_of_fp32_groups[i], pieces via _hp_mapping
  ZeRO-1 bf16 + fp32 grad accumulation   BF16_Optimizer; fp32_groups_flat_partition[i], pieces via _hp_mapping
  ZeRO-3             DeepSpeedZeroOptimizer_Stage3; fp32_partitioned_groups_flat[j], pieces via grad_position
                     (rank r holds elements [r·n, r·n + n) of the flattened tensor, the rest is padding)
  CPU offload (ZeRO-1/2 `offload_optimizer`, ZeRO-3 `offload_optimizer` and `offload_param` to cpu): the same
  layouts with the fp32 masters and their gradients in CPU memory. Refused: NVMe optimizer offload (the masters
  are swapped out between steps) and ZeRO-3 partial offload (a second optimizer steps part of the sub-groups).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .config import LLaCAConfig
from .merge import MergeState, drift_figures, drift_sums
from .torch_hooks import canonical_name


@dataclass
class _Piece:
    """This rank's elements [full_start, full_start + numel) of tensor `tensor` (flattened), stored at
    [start, start + numel) of master `master` of its call."""
    tensor: int
    row: int
    master: int
    start: int
    numel: int
    full_start: int


@dataclass
class _Call:
    """What one inner optimizer call steps: its tensors (table rows, same order on every rank), this rank's
    master tensors and pieces, our state buffers shaped like the masters, the all-reduce group."""
    tensors: list[int]
    masters: list[torch.Tensor]
    group: object | None
    pieces: list[_Piece] = field(default_factory=list)
    buffers: dict[str, list[torch.Tensor]] = field(default_factory=dict)


class DeepSpeedLLaCA(MergeState):
    """The handle `attach_deepspeed` returns: `coefficients`, `raw_coefficients`, `counts`, `steps`,
    `tensor_records()`, `full_ema(name)`, `swap_in()`, `state_dict()` / `load_state_dict()`.
    `full_ema`, `swap_in` and `state_dict` are collective: every rank calls them."""

    def __init__(self, engine, config: LLaCAConfig):
        self.engine = engine
        module = engine.module
        named = [(canonical_name(n), p) for n, p in module.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        super().__init__([n for n, _ in named], [_full_shape(p) for p in self.params], config)
        self.kind, self.inner, self.calls = _layout(engine, self.params)
        if getattr(self.inner, "_llaca_attached", False):
            raise RuntimeError("LLaCA: this engine's optimizer already has a merger attached")
        self._check_blocks_within([c.tensors for c in self.calls])
        self._call_of_master = {id(m): c for c, call in enumerate(self.calls) for m in call.masters}
        self._call_of_tensor = {i: c for c, call in enumerate(self.calls) for i in call.tensors}
        self._zero: dict[int, torch.Tensor] = {}
        for call in self.calls:           # state shaped like this rank's masters: shards at ZeRO >= 1
            for key in self._buffer_keys():
                call.buffers[key] = [torch.zeros(m.numel(), dtype=m.dtype if key == "theta0" else config.ema_dtype,
                                                 device=m.device) for m in call.masters]
        if config.track_drift:
            self._copy_masters_into("theta0")
        if config.init_at == "task_start":
            self._copy_masters_into("ema")
            if "ema_first" in self._buffer_keys():
                self._copy_masters_into("ema_first")
        self._hook = self.inner.register_step_post_hook(self._post_hook)
        self.inner._llaca_attached = True

    # -- the hook ------------------------------------------------------------------------------------

    @torch.no_grad()
    def _post_hook(self, optimizer, args, kwargs) -> None:
        active = [p for g in optimizer.param_groups for p in g["params"]]
        calls = {self._call_of_master.get(id(p)) for p in active}
        if len(calls) != 1 or None in calls:
            raise RuntimeError(f"LLaCA: DeepSpeed stepped tensors that do not form one known call ({calls}); "
                               f"the optimizer layout changed after attach_deepspeed")
        c = calls.pop()
        if c == 0:
            self.steps += 1
        call = self.calls[c]
        dtype = self.config.ema_dtype
        theta = [_cast(self._view(call.masters, p), dtype) for p in call.pieces]
        grads = [_cast(self._grad_view(call, p), dtype) for p in call.pieces]
        ema, prev_grad, prev_theta, first = (self._state_views(call, key)
                                             for key in ("ema", "prev_grad", "prev_theta", "ema_first"))
        self._merge_call(call.tensors, [p.row for p in call.pieces], theta, ema, grads, prev_grad, prev_theta,
                         reduce=self._reducer(call.group), device=call.masters[0].device, first=first)

    def _grad_view(self, call: _Call, piece: _Piece) -> torch.Tensor:
        master = call.masters[piece.master]
        if master.grad is None:
            if self.kind != "stage0_fp32":
                raise RuntimeError(f"LLaCA: no gradient on the master shard of {self.names[piece.tensor]!r} "
                                   f"inside the optimizer step ({self.kind})")
            key = id(master)        # stage 0: a parameter unused by the batch; DeepSpeed steps it with zeros
            if key not in self._zero:
                self._zero[key] = torch.zeros(master.numel(), dtype=master.dtype, device=master.device)
            return self._zero[key].narrow(0, piece.start, piece.numel)
        return master.grad.view(-1).narrow(0, piece.start, piece.numel)

    @staticmethod
    def _view(tensors: list[torch.Tensor], piece: _Piece) -> torch.Tensor:
        return tensors[piece.master].view(-1).narrow(0, piece.start, piece.numel)

    def _state_views(self, call: _Call, key: str) -> list[torch.Tensor] | None:
        if key not in call.buffers:
            return None
        return [self._view(call.buffers[key], p) for p in call.pieces]

    @staticmethod
    def _reducer(group):
        """In-place SUM across `group` of a tensor that may live on the CPU (offloaded masters): it travels to the
        backend's device (gloo: CPU; NCCL and the like: this rank's accelerator) and back."""
        if group is None or dist.get_world_size(group=group) == 1:
            return None
        if dist.get_backend(group) == "gloo":
            device = torch.device("cpu")
        else:
            from deepspeed.accelerator import get_accelerator

            device = torch.device(get_accelerator().current_device_name())

        def reduce(table: torch.Tensor) -> None:
            moved = table.to(device)
            dist.all_reduce(moved, op=dist.ReduceOp.SUM, group=group)
            if moved is not table:
                table.copy_(moved)
        return reduce

    # -- full tensors --------------------------------------------------------------------------------

    @torch.no_grad()
    def _full(self, i: int, key: str) -> torch.Tensor:
        """Tensor i of buffer `key` ("ema", "prev_grad", "prev_theta" or "master") gathered in full, on CPU.
        Collective over the call's group: pieces are disjoint, so a SUM of zero-filled copies is exact."""
        call = self.calls[self._call_of_tensor[i]]
        sources = call.masters if key == "master" else call.buffers[key]
        out = torch.zeros(self.shapes[i].numel(), dtype=sources[0].dtype, device=sources[0].device)
        for piece in call.pieces:
            if piece.tensor == i:
                out[piece.full_start:piece.full_start + piece.numel] = self._view(sources, piece)
        reduce = self._reducer(call.group)
        if reduce is not None:
            reduce(out)
        return out.view(self.shapes[i]).cpu()

    def full_ema(self, name: str) -> torch.Tensor:
        """The EMA of one tensor, gathered in full (collective)."""
        return self._full(self.index[canonical_name(name)], "ema")

    def full_master(self, name: str) -> torch.Tensor:
        """The fp32 master weights of one tensor (θ_t as the merge reads it), gathered in full (collective)."""
        return self._full(self.index[canonical_name(name)], "master")

    def state_dict(self) -> dict:
        """Full tensors gathered from every rank (collective), loadable at any world size and stage and by
        `LLaCAMerger`; every rank gets the same dict (save it on one)."""
        state = self._state_meta()
        for key in self._buffer_keys():
            state[key] = {name: self._full(i, key) for i, name in enumerate(self.names)}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Take this rank's pieces of the full tensors of a `state_dict()` (same task resumed)."""
        self._load_meta(state)
        for call in self.calls:
            for key in self._buffer_keys():
                for piece in call.pieces:
                    full = state[key][self.names[piece.tensor]].reshape(-1)
                    self._view(call.buffers[key], piece).copy_(
                        full[piece.full_start:piece.full_start + piece.numel])

    @torch.no_grad()
    def swap_in(self) -> None:
        """Write the EMA into the fp32 masters and the model's (low-precision) weights, so that the next
        save — a DeepSpeed checkpoint or a gathered 16-bit / PEFT state dict, ZeRO-3 included — holds it."""
        self._require_ema()
        for call in self.calls:
            for piece in call.pieces:
                self._view(call.masters, piece).copy_(self._view(call.buffers["ema"], piece))
        eo = self.engine.optimizer
        if self.kind == "stage0_unfused":
            for lp_group, hp_group in zip(eo.fp16_groups, eo.fp32_groups):
                for lp, hp in zip(lp_group, hp_group):
                    lp.data.copy_(hp.data)
        elif self.kind in ("zero12", "bf16"):
            eo.update_lp_params()
        elif self.kind == "zero3":
            from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

            for j in range(len(eo.fp16_groups)):
                eo._reassign_or_swap_out_partitioned_parameters(j)
            for i, p in enumerate(self.params):       # parameters held in full (persistent ones)
                if p.ds_status == ZeroParamStatus.AVAILABLE:
                    p.data.copy_(self._full(i, "ema").to(device=p.device, dtype=p.dtype))

    @torch.no_grad()
    def _copy_masters_into(self, key: str) -> None:
        for call in self.calls:
            for piece in call.pieces:
                self._view(call.buffers[key], piece).copy_(self._view(call.masters, piece))

    @torch.no_grad()
    def drift(self) -> dict[str, float | None]:
        """How far training moved the weights since attach and how much of it the EMA followed
        (`merge.drift_figures`), from this rank's shards and one all-reduce per call; collective (every rank
        calls it, before `swap_in`). Needs `track_drift` and an EMA."""
        self._require_drift()
        total = torch.zeros(5, dtype=torch.float64)
        for call in self.calls:
            views = {key: self._state_views(call, key) for key in ("theta0", "ema", "ema_first")}
            sums = drift_sums(views["theta0"], [self._view(call.masters, p) for p in call.pieces], views["ema"],
                              views["ema_first"]).to(call.masters[0].device)
            reduce = self._reducer(call.group)
            if reduce is not None:
                reduce(sums)
            total += sums.cpu()
        return drift_figures(total, "ema_first" in self._buffer_keys())

    def detach(self) -> None:
        """Remove the step hook (the state stays readable)."""
        self._hook.remove()
        self.inner._llaca_attached = False

    @property
    def engine_skipped_steps(self) -> int:
        """Optimizer steps the engine skipped (overflow): no hook ran, nothing was merged or counted."""
        return int(getattr(self.engine, "skipped_steps", 0))


def attach_deepspeed(engine, config: LLaCAConfig | None = None) -> DeepSpeedLLaCA:
    """Attach the merge to a `DeepSpeedEngine` after `deepspeed.initialize` (also in a resumed process, then
    `load_state_dict`). The Trainer keeps calling the engine as before; the merge runs inside `engine.step()`."""
    return DeepSpeedLLaCA(engine, config or LLaCAConfig())


# ------------------------------------------------------------------------------------------- layouts


def _layout(engine, params: list[torch.nn.Parameter]) -> tuple[str, torch.optim.Optimizer, list[_Call]]:
    """(kind, the client torch optimizer to hook, the calls in the order DeepSpeed steps them)."""
    kind, inner, calls = _find_calls(engine, params)
    stepped = sorted(i for call in calls for i in call.tensors)
    if stepped != list(range(len(params))):
        raise ValueError(f"LLaCA: {len(params) - len(set(stepped))} trainable tensor(s) are not stepped by the "
                         f"engine's optimizer; pass every trainable parameter to the optimizer")
    return kind, inner, calls


def _find_calls(engine, params):
    from deepspeed.runtime.bf16_optimizer import BF16_Optimizer
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer
    from deepspeed.runtime.zero.stage3 import DeepSpeedZeroOptimizer_Stage3
    from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer

    eo = engine.optimizer
    index = {id(p): i for i, p in enumerate(params)}
    if isinstance(eo, DeepSpeedZeroOptimizer_Stage3):
        if eo.swap_optimizer:
            raise NotImplementedError("LLaCA: ZeRO-3 optimizer offload to NVMe is not supported (the fp32 masters "
                                      "are swapped out between steps); offload the optimizer to cpu instead")
        if eo.offload_optimizer and eo.partial_offload != 1.0:
            raise NotImplementedError(f"LLaCA: ZeRO-3 partial optimizer offload (ratio {eo.partial_offload}) is not "
                                      f"supported: a second optimizer steps part of the sub-groups; use ratio 1.0")
        return "zero3", eo.optimizer, _zero3_calls(eo, index)
    if isinstance(eo, DeepSpeedZeroOptimizer):
        calls = [_hp_mapped_call([eo.single_partition_of_fp32_groups[i]], [group], eo.real_dp_process_group[i],
                                 index) for i, group in enumerate(eo.bit16_groups)]
        return "zero12", eo.optimizer, calls
    if isinstance(eo, BF16_Optimizer):
        groups = {id(g) for g in eo.real_dp_process_group}
        if len(groups) != 1:
            raise NotImplementedError("LLaCA: BF16_Optimizer with several data-parallel groups (MoE)")
        call = _hp_mapped_call(eo.fp32_groups_flat_partition, eo.bf16_groups, eo.real_dp_process_group[0], index)
        return "bf16", eo.optimizer, [call]
    if isinstance(eo, FP16_UnfusedOptimizer):
        if eo.low_precision_dtype != torch.bfloat16:
            raise NotImplementedError("LLaCA: stage 0 fp16 is not supported (DeepSpeed 0.19 hands the client "
                                      "optimizer loss-scaled, unclipped gradients there); use bf16 or ZeRO")
        lp = [p for group in eo.fp16_groups for p in group]
        hp = [p for group in eo.fp32_groups for p in group]
        return "stage0_unfused", eo.optimizer, [_whole_tensor_call(lp, hp, index)]
    if isinstance(eo, torch.optim.Optimizer) and engine.zero_optimization_stage() == 0 \
            and not (engine.bfloat16_enabled() or engine.fp16_enabled()):
        own = [p for group in eo.param_groups for p in group["params"]]
        return "stage0_fp32", eo, [_whole_tensor_call(own, own, index)]
    raise NotImplementedError(f"LLaCA: unsupported DeepSpeed optimizer {type(eo).__name__}")


def _whole_tensor_call(lp: list, hp: list, index: dict) -> _Call:
    """Stage 0: every rank holds every tensor; masters are per tensor (lp[k] ↔ hp[k])."""
    call = _Call(tensors=[], masters=[], group=None)
    for p_lp, p_hp in zip(lp, hp):
        i = index.get(id(p_lp))
        if i is None:
            continue
        call.pieces.append(_Piece(tensor=i, row=len(call.tensors), master=len(call.masters), start=0,
                                  numel=p_hp.numel(), full_start=0))
        call.tensors.append(i)
        call.masters.append(p_hp)
    return call


def _hp_mapped_call(masters: list, lp_groups: list, group, index: dict) -> _Call:
    """ZeRO-1/2 and BF16_Optimizer: `lp._hp_mapping` locates this rank's fragment of each tensor (None: none
    here) inside the flat fp32 partition of its param group."""
    call = _Call(tensors=[], masters=list(masters), group=group)
    for m, lp_group in enumerate(lp_groups):
        for p in lp_group:
            i = index.get(id(p))
            if i is None:
                continue
            row = len(call.tensors)
            call.tensors.append(i)
            mapping = p._hp_mapping
            if mapping is not None:
                call.pieces.append(_Piece(tensor=i, row=row, master=m, start=mapping.hp_fragment_address.start,
                                          numel=mapping.hp_fragment_address.numel,
                                          full_start=mapping.lp_fragment_address.start))
    return call


def _zero3_calls(eo, index: dict) -> list[_Call]:
    """ZeRO-3: sub-group j's flat fp32 partition holds, at grad_position offset `off`, this rank's
    partition_numel() elements of each tensor: flattened elements [r·n, r·n + n), padding past ds_numel."""
    calls = []
    for j, sub_group in enumerate(eo.fp16_groups):
        call = _Call(tensors=[], masters=[eo.fp32_partitioned_groups_flat[j]], group=eo.sub_group_process_groups[j])
        for p in sub_group:
            i = index.get(id(p))
            if i is None:
                continue
            row = len(call.tensors)
            call.tensors.append(i)
            sub, off, n = eo.grad_position[eo.get_param_id(p)]
            assert sub == j, f"ZeRO-3 grad_position of {p.ds_id} points at sub-group {sub}, expected {j}"
            r = dist.get_rank(group=eo._get_param_partition_group(p))
            valid = max(0, min(n, p.ds_numel - r * n))
            if valid:
                call.pieces.append(_Piece(tensor=i, row=row, master=0, start=off, numel=valid, full_start=r * n))
        calls.append(call)
    return calls


def _full_shape(p: torch.nn.Parameter) -> torch.Size:
    return p.ds_shape if hasattr(p, "ds_shape") else p.shape


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t if t.dtype == dtype else t.to(dtype)
