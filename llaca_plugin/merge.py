"""The LLaCA merge, the math only: per-tensor L1 norms → k → applied weight → foreach lerp. No DeepSpeed here.

Per trainable tensor i at optimizer step t (arXiv 2410.10868; released code JingyangQiao/CoIN):

    θ_t        the weights after the optimizer step (under DeepSpeed: the fp32 master weights)
    θ*_{t-1}   the EMA before this step's merge
    g_t        the gradient the optimizer applied (averaged over ranks and accumulation, unscaled, clipped)

    d = ‖θ_t − θ*_{t-1}‖₁        G = ‖g_t‖₁ ("L′")        H = ‖g_t − g_{t-1}‖₁ ("L″", surrogate "grad_diff")
                                                         or H = ‖g_t − g_{t-1}‖₁ / ‖θ_t − θ_{t-1}‖₁ ("diff_quotient")
    k = c · (1 + G) / (d · H)

    official (c = 2):  α = k is the weight on the NEW weights:   θ*_t = (1 − α)·θ*_{t-1} + α·θ_t
    paper    (c = 1):  β = k is the weight on the OLD EMA:       θ*_t = β·θ*_{t-1} + (1 − β)·θ_t
    k ∉ (0, 1), not finite, or not computable (no g_{t-1} yet) → fallback θ*_t = (1 − f)·θ*_{t-1} + f·θ_t

"applied" below is always the weight w on the new weights: θ*_t = lerp(θ*_{t-1}, θ_t, w). With arithmetic
"released" the same quantities are computed as the released code computes them in bf16 (`released_k`,
`released_update`; docs/llaca_arithmetic.md). With granularity
"layer", d, G, H (and ‖θ_t − θ_{t-1}‖₁) are summed over a transformer block's tensors and every tensor of the
block gets the block's k. A tensor whose g_t or θ_t is not finite is skipped: its EMA is left unchanged.

`MergeState` holds the per-tensor bookkeeping that the plain-torch merger and the DeepSpeed handle share and
runs one merge call over the tensors an optimizer call stepped; the norms of tensors split across ranks are
partial sums that the caller's `reduce` adds up (one all-reduce of an (n, 3|4) float64 table per call).
"""
from __future__ import annotations

import math
import re
from typing import Callable, Sequence

import torch

from .config import LLaCAConfig

# Per-tensor state: no EMA yet / EMA but no g_{t-1} / EMA and g_{t-1} (and θ_{t-1}).
NO_EMA, NO_PREV, READY = 0, 1, 2
# Outcome of one tensor at one step.
INIT, IN_RANGE, FALLBACK, SKIPPED = 0, 1, 2, 3
OUTCOME_NAMES = {IN_RANGE: "in_range", FALLBACK: "fallback", SKIPPED: "skipped"}

_BLOCK = re.compile(r"^(.*?\.(?:layers|layer|blocks|block|h)\.\d+)\.")


def block_key(name: str) -> str:
    """The transformer block a tensor belongs to (`...layers.<i>`), or the tensor's own name outside blocks
    (e.g. the projector), so those keep one coefficient per tensor under granularity "layer"."""
    match = _BLOCK.match(name)
    return match.group(1) if match else name


# ---------------------------------------------------------------------------------------------- norms


def l1_norms(theta: Sequence[torch.Tensor], ema: Sequence[torch.Tensor], grad: Sequence[torch.Tensor],
             prev_grad: Sequence[torch.Tensor], prev_theta: Sequence[torch.Tensor] | None = None,
             fused: bool = False) -> torch.Tensor:
    """Per piece i (1-D, same dtype and length across the lists): the float64 row
    [‖θ−θ*‖₁, ‖g‖₁, ‖g−g_prev‖₁] (+ ‖θ−θ_prev‖₁ when `prev_theta` is given), shape (n, 3|4).

    Also shifts the previous-step buffers: on return `prev_grad` holds g (and `prev_theta` holds θ). The eager
    paths use `prev_grad` / `prev_theta` as scratch first. `fused` (CPU only) runs a torch.compile'd kernel
    per piece that reads θ, θ*, g and g_prev once and writes g_prev ← g in the same pass; on accelerators the
    multi-tensor path below is used either way (a compiled call per tensor costs ~0.1 ms there, on an H200)."""
    if theta[0].device.type != "cpu":
        return _l1_norms_foreach(theta, ema, grad, prev_grad, prev_theta)
    if fused:
        kernel = _fused_kernel(prev_theta is not None)
        extra = (prev_theta,) if prev_theta is not None else ()
        return torch.stack([kernel(*args) for args in zip(theta, ema, grad, prev_grad, *extra)])
    torch._foreach_sub_(prev_grad, grad)                      # g_prev − g
    dg = _abs_sums(prev_grad)
    for scratch, g in zip(prev_grad, grad):
        torch.abs(g, out=scratch)
    g_norm = _sums(prev_grad)
    for scratch, t, e in zip(prev_grad, theta, ema):
        torch.sub(t, e, out=scratch)
    columns = [_abs_sums(prev_grad), g_norm, dg]
    if prev_theta is not None:
        torch._foreach_sub_(prev_theta, theta)                # θ_prev − θ
        columns.append(_abs_sums(prev_theta))
        torch._foreach_copy_(prev_theta, theta)
    torch._foreach_copy_(prev_grad, grad)
    return torch.stack(columns, dim=1)


def _l1_norms_foreach(theta, ema, grad, prev_grad, prev_theta) -> torch.Tensor:
    """Accelerators: multi-tensor kernels only (a few launches per call, whatever the number of tensors);
    `_foreach_norm` reduces in a tree there, unlike its per-tensor CPU fallback."""
    def norms(tensors):
        return torch.stack(torch._foreach_norm(tensors, 1)).double()
    g_norm = norms(grad)
    torch._foreach_sub_(prev_grad, grad)                      # g_prev − g
    dg = norms(prev_grad)
    torch._foreach_copy_(prev_grad, theta)
    torch._foreach_sub_(prev_grad, ema)                       # θ − θ*
    columns = [norms(prev_grad), g_norm, dg]
    if prev_theta is not None:
        torch._foreach_sub_(prev_theta, theta)                # θ_prev − θ
        columns.append(norms(prev_theta))
        torch._foreach_copy_(prev_theta, theta)
    torch._foreach_copy_(prev_grad, grad)
    return torch.stack(columns, dim=1)


def _abs_sums(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    torch._foreach_abs_(tensors)
    return _sums(tensors)


def _sums(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    # A float32 sum on CPU is a cascade sum (relative error ~1e-9 on 1e6 elements); `_foreach_norm(ord=1)`
    # accumulates sequentially per SIMD lane (~1e-4 on 1e6 elements) and is slower, so it is not used here.
    return torch.stack([t.sum(dtype=torch.float32) for t in tensors]).double()


_FUSED: dict[bool, Callable] = {}


def _l1_three(theta, ema, grad, prev_grad):
    out = torch.stack([(theta - ema).double().abs().sum(), grad.double().abs().sum(),
                       (grad - prev_grad).double().abs().sum()])
    prev_grad.copy_(grad)
    return out


def _l1_four(theta, ema, grad, prev_grad, prev_theta):
    d_theta = (theta - prev_theta).double().abs().sum()
    prev_theta.copy_(theta)
    return torch.cat([_l1_three(theta, ema, grad, prev_grad), d_theta[None]])


def _fused_kernel(with_prev_theta: bool) -> Callable:
    """One pass per piece, float64 accumulation; compiled once per process for any length (dynamic shapes)."""
    if with_prev_theta not in _FUSED:
        fn = _l1_four if with_prev_theta else _l1_three
        _FUSED[with_prev_theta] = torch.compile(fn, dynamic=True, fullgraph=True)
    return _FUSED[with_prev_theta]


# ---------------------------------------------------------------------------------------- coefficients


def coefficients(norms: torch.Tensor, status: torch.Tensor, config: LLaCAConfig,
                 blocks: torch.Tensor | None = None, n_blocks: int = 0):
    """From global norms to the step's outcome, for the n tensors of one optimizer call.

    norms: (n, 3|4) float64, columns d = ‖θ_t−θ*_{t-1}‖₁, G = ‖g_t‖₁, ‖g_t−g_{t-1}‖₁ (, ‖θ_t−θ_{t-1}‖₁).
    status: (n,) int64 per-tensor state (NO_EMA, NO_PREV, READY).
    blocks: (n,) int64 block id in [0, n_blocks) for granularity "layer", else None.
    Returns float64 (n,) tensors raw (k; NaN where not computable) and applied (w on the new weights; NaN where
    nothing is merged), and the int64 outcome (INIT, IN_RANGE, FALLBACK, SKIPPED).
    """
    d, G, dg = norms[:, 0], norms[:, 1], norms[:, 2]
    dtheta = norms[:, 3] if config.surrogate == "diff_quotient" else None
    finite = torch.isfinite(d) & torch.isfinite(G)           # θ_t and g_t finite (θ* always is)
    ready = finite & (status == READY)
    if blocks is not None:                                   # sum the block's norms; all members must be ready
        def per_block(x):
            return torch.zeros(n_blocks, dtype=x.dtype, device=x.device).index_add_(0, blocks, x)[blocks]
        ok = per_block((~ready).double()) == 0
        d, G, dg = (per_block(torch.where(ready, x, 0.0)) for x in (d, G, dg))
        dtheta = per_block(torch.where(ready, dtheta, 0.0)) if dtheta is not None else None
    else:
        ok = ready
    H = dg / dtheta if dtheta is not None else dg
    k = released_k(d, G, H, config.c) if config.arithmetic == "released" else config.c * (1.0 + G) / (d * H)
    raw = torch.where(ok, k, math.nan)
    in_range = (raw > 0) & (raw < 1)
    if config.mode == "fixed":
        applied = torch.full_like(raw, config.fallback_new_weight)
        merged_as = torch.full_like(status, FALLBACK)
    else:
        weight = raw if config.variant == "official" else 1.0 - raw
        applied = torch.where(in_range, weight, config.fallback_new_weight)
        merged_as = torch.where(in_range, IN_RANGE, FALLBACK)
    outcome = torch.where(~finite, SKIPPED, torch.where(status == NO_EMA, INIT, merged_as))
    applied = torch.where((outcome == INIT) | (outcome == SKIPPED), math.nan, applied)
    return raw, applied, outcome


def released_k(d: torch.Tensor, G: torch.Tensor, H: torch.Tensor, c: float) -> torch.Tensor:
    """k as the released code computes it, `float((1 + b) / (a * c) * 2)` with bf16 0-dim norms: each norm
    rounded to bf16, then 1 + G, d·H, the quotient and the product with c each rounded to bf16 (in that order).
    Inputs and output float64, (n,)."""
    b16 = torch.bfloat16
    return ((1 + G.to(b16)) / (d.to(b16) * H.to(b16)) * c).double()


def released_update(ema: torch.Tensor, theta: torch.Tensor, w: float) -> None:
    """In place, bf16: ema ← ema·(1 − w) + θ·w, rounded after each of the two products and the sum, as the
    released code's `ema*(1 - alpha) + p.data*alpha` on bf16 tensors (w a Python float)."""
    new = theta * w
    ema.mul_(1 - w).add_(new)


def apply_merge(ema, theta, outcome: Sequence[int], applied: Sequence[float], config: LLaCAConfig) -> None:
    """In place, per piece: θ* ← lerp(θ*, θ, w) where merged (w: weight on the new θ), θ* ← θ where
    initialised; skipped pieces keep their EMA. Arithmetic "released": `released_update` instead of the lerp,
    and an initialised piece is then merged with itself at the fallback weight, as the released code's first
    step does (its missing g_{t-1} sends it to the except branch), which can move an element by one bf16 step."""
    merged = [i for i, o in enumerate(outcome) if o in (IN_RANGE, FALLBACK)]
    init = [i for i, o in enumerate(outcome) if o == INIT]
    if init:
        torch._foreach_copy_([ema[i] for i in init], [theta[i] for i in init])
    if config.arithmetic == "released":
        for i in merged:
            released_update(ema[i], theta[i], applied[i])
        for i in init:
            released_update(ema[i], theta[i], config.fallback_new_weight)
    elif merged:
        torch._foreach_lerp_([ema[i] for i in merged], [theta[i] for i in merged], [applied[i] for i in merged])


def drift_sums(theta0, theta, ema, first=None) -> torch.Tensor:
    """Float64 [Σ|θ_0|, Σ|θ − θ_0|, Σ|θ* − θ_0|, elements of θ* equal to `first`, elements] over the pieces
    (1-D; θ_0 and θ in the masters' dtype, θ* and `first` in the EMA's); partial sums under sharding."""
    out = torch.zeros(5, dtype=torch.float64)
    for i, (t0, t, e) in enumerate(zip(theta0, theta, ema)):
        out[0] += t0.abs().sum(dtype=torch.float64).cpu()
        out[1] += (t - t0).abs().sum(dtype=torch.float64).cpu()
        out[2] += (e.to(t0.dtype) - t0).abs().sum(dtype=torch.float64).cpu()
        if first is not None:
            out[3] += (e == first[i]).sum().cpu()
        out[4] += t.numel()
    return out


def drift_figures(sums: torch.Tensor, low_precision_ema: bool) -> dict[str, float | None]:
    """From the summed `drift_sums`: moved = Σ‖θ_T − θ_0‖₁ / Σ‖θ_0‖₁ (how far training moved the weights),
    followed = Σ‖θ*_T − θ_0‖₁ / Σ‖θ_T − θ_0‖₁ (how much of that the EMA followed), and, with a low-precision
    EMA, ema_unchanged = the share of EMA elements still equal to their first value (None otherwise)."""
    base, moved, followed, unchanged, numel = sums.tolist()
    return {"moved": moved / base if base else None, "followed": followed / moved if moved else None,
            "ema_unchanged": unchanged / numel if low_precision_ema and numel else None,
            "theta0_l1": base, "moved_l1": moved, "followed_l1": followed}


# ------------------------------------------------------------------------------------------ bookkeeping


class MergeState:
    """Names, per-tensor state, counts and the last step's records, shared by both paths.

    Subclasses own the buffers and call `_merge_call` once per optimizer call with the local pieces.
    `coefficients`, `raw_coefficients`, `counts`, `steps` and `tensor_records()` describe the last merge."""

    def __init__(self, names: Sequence[str], shapes: Sequence[torch.Size], config: LLaCAConfig):
        if not names:
            raise ValueError("LLaCA: no trainable tensors to merge")
        if len(set(names)) != len(names):
            raise ValueError("LLaCA: duplicate tensor names")
        self.config = config
        self.names = list(names)
        self.shapes = [torch.Size(s) for s in shapes]
        self.index = {name: i for i, name in enumerate(self.names)}
        first = NO_PREV if config.init_at == "task_start" else NO_EMA
        self.status = [first] * len(self.names)
        self.steps = 0
        self._counts = {"in_range": 0, "fallback": 0, "skipped": 0}
        n = len(self.names)
        self._raw, self._applied = [math.nan] * n, [None] * n
        self._norms = [(math.nan, math.nan, math.nan)] * n
        self.blocks = [block_key(name) for name in self.names]

    # -- the merge of one optimizer call -------------------------------------------------------------

    def _merge_call(self, tensors: Sequence[int], rows: Sequence[int], theta, ema, grad, prev_grad,
                    prev_theta, reduce: Callable[[torch.Tensor], None] | None, device, first=None) -> None:
        """tensors: global indices of the tensors this call steps (identical order on every rank);
        rows[j]: the row in `tensors` of local piece j; theta..prev_theta: the local pieces (1-D views);
        `first`: pieces that receive the EMA's first value where a tensor is initialised (None: not kept).
        `reduce` sums the (len(tensors), m) partial-norm table across ranks in place (None: nothing to sum);
        with arithmetic "released" the summed norms are then rounded to bf16 once (one process: the bf16 of a
        float32 sum, as `torch.norm` of a bf16 tensor gives; shards: the bf16 of the float64 sum of float32
        partial sums, which can differ from one process in the last bf16 bit).
        One host transfer of a small table per call; no per-tensor host sync."""
        cfg = self.config
        width = 4 if cfg.surrogate == "diff_quotient" else 3
        table = torch.zeros(len(tensors), width, dtype=torch.float64, device=device)
        if rows:
            local = l1_norms(theta, ema, grad, prev_grad, prev_theta, fused=cfg.fused_norms)
            table.index_copy_(0, torch.tensor(rows, device=device), local.to(device))
        if reduce is not None:
            reduce(table)
        if cfg.arithmetic == "released":
            table = table.to(torch.bfloat16).double()
        status = torch.tensor([self.status[i] for i in tensors], device=device)
        blocks, n_blocks = None, 0
        if cfg.granularity == "layer":
            ids = {}
            blocks = torch.tensor([ids.setdefault(self.blocks[i], len(ids)) for i in tensors], device=device)
            n_blocks = len(ids)
        raw, applied, outcome = coefficients(table, status, cfg, blocks, n_blocks)
        H = table[:, 2] / table[:, 3] if width == 4 else table[:, 2]     # this tensor's own surrogate
        host = torch.stack([raw, applied, table[:, 0], table[:, 1], H, outcome.double()], 1).cpu().tolist()
        for i, (k, w, d, g, h, out) in zip(tensors, host):
            out = int(out)
            self._raw[i], self._applied[i] = k, (None if math.isnan(w) else w)
            self._norms[i] = (math.nan if self.status[i] == NO_EMA else d, g,     # no θ* / no g_{t-1} yet:
                              math.nan if self.status[i] != READY else h)        # those norms are undefined
            if out in OUTCOME_NAMES:
                self._counts[OUTCOME_NAMES[out]] += 1
            # a skipped tensor keeps its EMA; the non-finite g now in g_prev is dropped with its state
            self.status[i] = min(self.status[i], NO_PREV) if out == SKIPPED else READY
        outcomes = [int(host[r][5]) for r in rows]
        weights = [host[r][1] for r in rows]
        apply_merge(ema, theta, outcomes, weights, cfg)
        if first is not None:
            init = [j for j, o in enumerate(outcomes) if o == INIT]
            if init:
                torch._foreach_copy_([first[j] for j in init], [ema[j] for j in init])

    def _check_blocks_within(self, calls: Sequence[Sequence[int]]) -> None:
        """Granularity "layer" needs each block's tensors stepped in one optimizer call; refuse otherwise."""
        if self.config.granularity != "layer":
            return
        seen: dict[str, int] = {}
        for c, tensors in enumerate(calls):
            for i in tensors:
                block = self.blocks[i]
                if seen.setdefault(block, c) != c:
                    raise ValueError(
                        f"LLaCA granularity='layer': the tensors of block {block!r} are stepped in different "
                        f"optimizer calls (param groups, or ZeRO-3 sub-groups), so their norms cannot be summed "
                        f"before the merge. Put the block's tensors in one param group (and raise ZeRO-3 "
                        f"sub_group_size), or use granularity='tensor'.")

    # -- what the last merge did ----------------------------------------------------------------------

    @property
    def coefficients(self) -> dict[str, float | None]:
        """name → weight the last merge gave the NEW weights (α official, 1 − β paper); None: no merge."""
        return dict(zip(self.names, self._applied))

    @property
    def raw_coefficients(self) -> dict[str, float]:
        """name → k as computed at the last step, before the range check; NaN where not computable."""
        return dict(zip(self.names, self._raw))

    @property
    def counts(self) -> dict[str, int]:
        """Cumulative tensor-step outcomes: in_range, fallback, skipped (initialisation is not counted)."""
        return dict(self._counts)

    def tensor_records(self) -> list[dict]:
        """Per tensor at the last step: name, numel, raw, applied, d, G, H (H = the surrogate in effect)."""
        return [{"name": name, "numel": shape.numel(), "raw": self._raw[i], "applied": self._applied[i],
                 "d": self._norms[i][0], "G": self._norms[i][1], "H": self._norms[i][2]}
                for i, (name, shape) in enumerate(zip(self.names, self.shapes))]

    # -- state ---------------------------------------------------------------------------------------

    def _state_meta(self) -> dict:
        return {"format": "llaca_plugin/1", "config": self.config.resolved(), "names": list(self.names),
                "status": list(self.status), "steps": self.steps, "counts": dict(self._counts)}

    def _load_meta(self, state: dict) -> None:
        if state.get("format") != "llaca_plugin/1":
            raise ValueError(f"LLaCA state: unknown format {state.get('format')!r}")
        if state["config"] != self.config.resolved():
            raise ValueError(f"LLaCA state was saved with config {state['config']}, "
                             f"which differs from the current {self.config.resolved()}")
        if list(state["names"]) != self.names:
            missing = sorted(set(self.names) - set(state["names"]))
            unexpected = sorted(set(state["names"]) - set(self.names))
            raise ValueError(f"LLaCA state names differ: missing {missing[:5]}, unexpected {unexpected[:5]}"
                             f"{'' if missing or unexpected else ' (order differs)'}")
        for key in self._buffer_keys():
            if key not in state:
                raise ValueError(f"LLaCA state has no {key!r} buffer (saved without track_drift); load it with "
                                 f"LLaCAConfig(track_drift=False) (--llaca_drift False)")
            for name, shape in zip(self.names, self.shapes):
                if tuple(state[key][name].shape) != tuple(shape):
                    raise ValueError(f"LLaCA state {key}[{name!r}] has shape {tuple(state[key][name].shape)}, "
                                     f"expected {tuple(shape)}")
        self.status = [int(s) for s in state["status"]]
        self.steps = int(state["steps"])
        self._counts = {k: int(state["counts"][k]) for k in self._counts}

    def _buffer_keys(self) -> tuple[str, ...]:
        """The per-tensor buffers a state holds: EMA, g_{t-1}, θ_{t-1} (diff_quotient), θ_0 and the EMA's first
        value (track_drift; the latter with a low-precision EMA only)."""
        keys = ("ema", "prev_grad")
        if self.config.surrogate == "diff_quotient":
            keys += ("prev_theta",)
        if self.config.track_drift:
            keys += ("theta0",) + (("ema_first",) if self.config.ema_dtype != torch.float32 else ())
        return keys

    def _require_drift(self) -> None:
        if not self.config.track_drift:
            raise RuntimeError("LLaCA: drift() needs LLaCAConfig(track_drift=True), which keeps θ_0")
        self._require_ema()

    def _require_ema(self) -> None:
        missing = [n for n, s in zip(self.names, self.status) if s == NO_EMA]
        if missing:
            raise RuntimeError(f"LLaCA: no EMA yet for {len(missing)} tensor(s) (e.g. {missing[0]!r}); with "
                               f"init='first_step' the EMA exists only after the first optimizer step")
