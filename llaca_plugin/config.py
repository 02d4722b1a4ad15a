"""`LLaCAConfig`: the options of the gradient-informed EMA, validated when constructed."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

VARIANTS = ("official", "paper")
INITS = ("first_step", "task_start")
SURROGATES = ("grad_diff", "diff_quotient")
GRANULARITIES = ("tensor", "layer")
MODES = ("dynamic", "fixed")
ARITHMETICS = ("exact", "released")
_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16,
}


@dataclass(frozen=True)
class LLaCAConfig:
    """Options of the merge (see design.md, "The plugin").

    variant: "official" (released code: k weights the new weights, c = 2, EMA created after step 1) or
        "paper" (published formula: k weights the old EMA, c = 1, EMA = θ_0 at attach).
    multiplier: c in k = c·(1 + G)/(d·H); None → 2.0 (official) or 1.0 (paper).
    fallback_new_weight: weight on the new weights when k is outside (0, 1), not finite, or not computable
        (0.01, i.e. 0.99 on the old EMA). Also the constant weight of mode "fixed".
    init: "first_step" (EMA ← θ_1 after the first step, no merge at step 1) or "task_start" (EMA ← θ_0 at
        attach; a step without g_{t-1} takes the fallback); None → the variant's choice.
    surrogate: H = ‖g_t − g_{t-1}‖₁ ("grad_diff") or that divided by ‖θ_t − θ_{t-1}‖₁ ("diff_quotient").
    granularity: one k per tensor ("tensor") or per transformer block ("layer", norms summed over the block).
    ema_dtype: dtype of the EMA and of the stored g_{t-1} (θ_{t-1}); None → the arithmetic's (float32 for
        "exact", bfloat16 for "released"). A bf16 EMA updated with one lerp stalls at small weights. Strings such
        as "bf16" are accepted.
    mode: "dynamic" (the method) or "fixed" (always fallback_new_weight: the fixed-EMA baseline).
    arithmetic: "exact" (norms in float64 of the weights and gradients as the optimizer holds them, one lerp in
        ema_dtype) or "released" (the released code's bf16 arithmetic, bit for bit in one process: θ_t and g_t
        rounded to bf16, the EMA and g_{t-1} in bf16, each L1 norm of a bf16 difference rounded to bf16, k the
        bf16 expression (1 + G) / (d·H) · c, the update ema·(1 − w) + θ·w with three bf16 roundings, and at
        the first step the released code's merge of θ_1 with itself). Needs a bf16 EMA, per-tensor granularity
        and the grad_diff surrogate, which is all the released code has. docs/llaca_arithmetic.md.
    track_drift: keep θ_0 (the weights at attach, in the masters' dtype: one more trainable-sized buffer per
        rank, sharded like the EMA) and, with a low-precision EMA, its first value, so that `drift()` can say
        how far training moved the weights and how much of that the EMA followed.
    fused_norms: on CPU, compute a tensor's L1 norms in one pass with a torch.compile'd kernel (needs a C++
        compiler; ~20 s to compile once per machine, cached on disk); same results to ~1e-7 relative. On
        accelerators the multi-tensor (foreach) kernels are used whatever this says: they are faster there.
    """

    variant: str = "official"
    multiplier: float | None = None
    fallback_new_weight: float = 0.01
    init: str | None = None
    surrogate: str = "grad_diff"
    granularity: str = "tensor"
    ema_dtype: torch.dtype | str | None = None
    mode: str = "dynamic"
    fused_norms: bool = False
    arithmetic: str = "exact"
    track_drift: bool = True

    def __post_init__(self):
        _choice("variant", self.variant, VARIANTS)
        _choice("init", self.init, INITS + (None,))
        _choice("surrogate", self.surrogate, SURROGATES)
        _choice("granularity", self.granularity, GRANULARITIES)
        _choice("mode", self.mode, MODES)
        _choice("arithmetic", self.arithmetic, ARITHMETICS)
        if self.multiplier is not None and not (_is_real(self.multiplier) and math.isfinite(self.multiplier)
                                                and self.multiplier > 0):
            raise ValueError(f"LLaCAConfig.multiplier must be a finite number > 0 or None, got {self.multiplier!r}")
        if not (_is_real(self.fallback_new_weight) and 0.0 <= self.fallback_new_weight <= 1.0):
            raise ValueError("LLaCAConfig.fallback_new_weight must be a number in [0, 1], "
                             f"got {self.fallback_new_weight!r}")
        dtype = self.ema_dtype
        if dtype is None:
            dtype = torch.bfloat16 if self.arithmetic == "released" else torch.float32
            object.__setattr__(self, "ema_dtype", dtype)
        if isinstance(dtype, str):
            if dtype.lower() not in _DTYPES:
                raise ValueError(f"LLaCAConfig.ema_dtype must be one of {sorted(_DTYPES)} or a torch dtype, "
                                 f"got {dtype!r}")
            object.__setattr__(self, "ema_dtype", _DTYPES[dtype.lower()])
        elif dtype not in set(_DTYPES.values()):
            raise ValueError(f"LLaCAConfig.ema_dtype must be float32, bfloat16 or float16, got {dtype!r}")
        for flag in ("fused_norms", "track_drift"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"LLaCAConfig.{flag} must be a bool, got {getattr(self, flag)!r}")
        if self.arithmetic == "released":
            unlike = {"ema_dtype": (self.ema_dtype, torch.bfloat16), "granularity": (self.granularity, "tensor"),
                      "surrogate": (self.surrogate, "grad_diff")}
            for field, (value, needed) in unlike.items():
                if value != needed:
                    raise ValueError(f"LLaCAConfig.arithmetic='released' reproduces the released code, which has "
                                     f"{field}={needed!r} only; got {field}={value!r}")

    @property
    def c(self) -> float:
        """The multiplier in effect."""
        if self.multiplier is not None:
            return float(self.multiplier)
        return 2.0 if self.variant == "official" else 1.0

    @property
    def init_at(self) -> str:
        """The EMA initialisation in effect: "first_step" or "task_start"."""
        if self.init is not None:
            return self.init
        return "first_step" if self.variant == "official" else "task_start"

    def resolved(self) -> dict:
        """The options that define the method, defaults resolved: what a saved state must agree with
        (fused_norms, a speed option, and track_drift, a diagnostic, are left out)."""
        out = asdict(self)
        out.update(multiplier=self.c, init=self.init_at, ema_dtype=str(self.ema_dtype).replace("torch.", ""))
        del out["fused_norms"], out["track_drift"]
        return out


def _choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"LLaCAConfig.{field} must be one of {[a for a in allowed if a is not None]}"
                         f"{' or None' if None in allowed else ''}, got {value!r}")


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
