"""`LLaCAMerger` for plain torch optimizers, and `attach` through the optimizer's step pre/post hooks."""
from __future__ import annotations

from typing import Iterable

import torch

from .config import LLaCAConfig
from .merge import MergeState, drift_figures, drift_sums


def canonical_name(name: str) -> str:
    """Parameter names as the unwrapped (PEFT) model gives them: DDP / DeepSpeed wrappers add `module.`."""
    return name[len("module."):] if name.startswith("module.") else name


class LLaCAMerger(MergeState):
    """The merge on full tensors in one process.

    Call `before_step()` after backward (and clipping), right before `optimizer.step()`: it reads each `.grad`
    (a trainable tensor without `.grad` counts as a zero gradient; none at all is an error). Call
    `after_step()` right after `optimizer.step()`: it merges θ_t into the EMA. `attach()` does both through
    the optimizer's hooks. State: EMA and g_{t-1} (and θ_{t-1} with diff_quotient), each one trainable-sized
    buffer in `config.ema_dtype`; with `track_drift`, θ_0 in the parameters' dtype (and, with a low-precision
    EMA, the EMA's first value). Only tensors with `requires_grad` are merged."""

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], config: LLaCAConfig | None = None):
        config = config or LLaCAConfig()
        named = [(canonical_name(n), p) for n, p in named_params if p.requires_grad]
        super().__init__([n for n, _ in named], [p.shape for _, p in named], config)
        self.params = [p for _, p in named]
        devices = {p.device for p in self.params}
        if len(devices) != 1:
            raise ValueError(f"LLaCAMerger: trainable tensors must share one device, got {sorted(map(str, devices))}")
        self.device = devices.pop()
        dtype = config.ema_dtype
        self._ema = [torch.zeros(p.numel(), dtype=dtype, device=self.device) for p in self.params]
        self._prev_grad = [torch.zeros_like(e) for e in self._ema]
        self._prev_theta = [torch.zeros_like(e) for e in self._ema] \
            if config.surrogate == "diff_quotient" else None
        self._theta0 = [p.detach().reshape(-1).clone() for p in self.params] if config.track_drift else None
        self._first = [torch.zeros_like(e) for e in self._ema] \
            if config.track_drift and dtype != torch.float32 else None
        self._zero_grads: dict[int, torch.Tensor] = {}
        self._grads: list[torch.Tensor] | None = None
        self._hooks: list = []
        self._optimizer: torch.optim.Optimizer | None = None
        if config.init_at == "task_start":
            with torch.no_grad():
                torch._foreach_copy_(self._ema, self._thetas())
                if self._first is not None:
                    torch._foreach_copy_(self._first, self._ema)

    def _thetas(self) -> list[torch.Tensor]:
        return [_flat(p.detach(), self.config.ema_dtype) for p in self.params]

    @torch.no_grad()
    def before_step(self) -> None:
        """Read g_t: each trainable tensor's `.grad` as the optimizer is about to apply it."""
        if all(p.grad is None for p in self.params):
            raise RuntimeError("LLaCA: no trainable tensor has a gradient at this optimizer step")
        self._grads = [_flat(p.grad, self.config.ema_dtype) if p.grad is not None else self._zero_grad(i)
                       for i, p in enumerate(self.params)]

    @torch.no_grad()
    def after_step(self) -> None:
        """Merge θ_t (the parameters after `optimizer.step()`) into the EMA."""
        if self._grads is None:
            raise RuntimeError("LLaCA: after_step() without before_step() for this optimizer step")
        grads, self._grads = self._grads, None
        self.steps += 1
        everything = list(range(len(self.params)))
        self._merge_call(everything, everything, self._thetas(), self._ema, grads, self._prev_grad,
                         self._prev_theta, reduce=None, device=self.device, first=self._first)

    @torch.no_grad()
    def drift(self) -> dict[str, float | None]:
        """How far training moved the weights since attach and how much of it the EMA followed
        (`merge.drift_figures`); call it before `swap_in`. Needs `track_drift` and an EMA."""
        self._require_drift()
        sums = drift_sums(self._theta0, [p.detach().reshape(-1) for p in self.params], self._ema, self._first)
        return drift_figures(sums, self._first is not None)

    def _zero_grad(self, i: int) -> torch.Tensor:
        if i not in self._zero_grads:
            self._zero_grads[i] = torch.zeros_like(self._ema[i])
        return self._zero_grads[i]

    @property
    def ema(self) -> dict[str, torch.Tensor]:
        """name → the EMA (a view shaped like the parameter, in `config.ema_dtype`)."""
        return {n: e.view(s) for n, e, s in zip(self.names, self._ema, self.shapes)}

    @torch.no_grad()
    def swap_in(self) -> None:
        """Write the EMA into the live parameters (at task end, before saving)."""
        self._require_ema()
        for p, e in zip(self.params, self._ema):
            p.copy_(e.view(p.shape))

    def state_dict(self) -> dict:
        """Full tensors (cloned, on CPU) plus counts and per-tensor state; loadable at any world size."""
        state = self._state_meta()
        buffers = self._buffers()
        for key in self._buffer_keys():
            state[key] = {n: b.detach().view(s).cpu().clone() for n, b, s in zip(self.names, buffers[key], self.shapes)}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Restore a state from `state_dict()` of either path (same task resumed)."""
        self._load_meta(state)
        buffers = self._buffers()
        for key in self._buffer_keys():
            for n, b in zip(self.names, buffers[key]):
                b.copy_(state[key][n].reshape(-1))

    def _buffers(self) -> dict[str, list[torch.Tensor] | None]:
        return {"ema": self._ema, "prev_grad": self._prev_grad, "prev_theta": self._prev_theta,
                "theta0": self._theta0, "ema_first": self._first}

    def detach(self) -> None:
        """Remove the optimizer hooks that `attach` registered."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        if self._optimizer is not None:
            self._optimizer._llaca_attached = False
            self._optimizer = None


def attach(optimizer: torch.optim.Optimizer, named_params, config: LLaCAConfig | None = None) -> LLaCAMerger:
    """A `LLaCAMerger` whose before_step/after_step run as `optimizer`'s step pre/post hooks. A step the caller
    skips (e.g. a GradScaler overflow) calls neither hook, so nothing is merged."""
    if getattr(optimizer, "_llaca_attached", False):
        raise RuntimeError("LLaCA: this optimizer already has a merger attached")
    merger = LLaCAMerger(named_params, config)
    merger._hooks = [optimizer.register_step_pre_hook(lambda *_: merger.before_step()),
                     optimizer.register_step_post_hook(lambda *_: merger.after_step())]
    optimizer._llaca_attached = True
    merger._optimizer = optimizer
    return merger


def _flat(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.reshape(-1) if t.dtype == dtype else t.reshape(-1).to(dtype)
