"""LLaCAConfig(arithmetic="released"): the released code's bf16 arithmetic, bit for bit in one process, and the
drift figures (how far training moved the weights, how much of it the EMA followed)."""
from __future__ import annotations

import pytest
import torch

from llaca_plugin import LLaCAConfig, LLaCAMerger


class ReleasedEMA:
    """The released `ema_update` (JingyangQiao/CoIN, CoIN/peft/tuners/lora.py) written out independently, on the
    bf16 tensors the released model holds: `copy` of θ on first sight, three bf16 L1 norms, alpha as the float
    of the bf16 expression (1 + b) / (a * c) * 2, the range check, `ema*(1 - alpha) + p*alpha` in bf16; a
    missing previous gradient (the first step) lands in the bare except, which merges at 0.99 / 0.01."""

    def __init__(self):
        self.ema, self.prev = {}, {}

    def update(self, named: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float | None]:
        alphas = {}
        for n, (p, g) in named.items():
            if n not in self.ema:
                self.ema[n] = p.clone()
            try:
                a = torch.norm(p - self.ema[n], p=1)
                b = torch.norm(g, p=1)
                c = torch.norm(g - self.prev[n], p=1)
                alpha = float((1 + b) / (a * c) * 2)
                if not 0 < alpha < 1:
                    alpha = 0.01
                self.ema[n] = self.ema[n] * (1 - alpha) + p * alpha
            except KeyError:
                alpha = None
                self.ema[n] = self.ema[n] * 0.99 + p * 0.01
            alphas[n] = alpha
            self.prev[n] = g.clone()
        return alphas


def random_walk(config: LLaCAConfig, steps: int = 45, seed: int = 0):
    """fp32 weights of three sizes walked by noisy gradients (every 7th step a large one); yields the merger
    and, per step, the fp32 weights and gradients after the step."""
    gen = torch.Generator().manual_seed(seed)
    scales = {"a": (16, 1.0), "b": (300, 0.05), "c": (2048, 0.01)}
    ps = {n: torch.nn.Parameter(torch.randn(k, generator=gen) * s) for n, (k, s) in scales.items()}
    merger = LLaCAMerger(ps.items(), config)
    for t in range(steps):
        grads = {n: torch.randn(k, generator=gen) * (0.5 if t % 7 else 3.0) for n, (k, _) in scales.items()}
        for n, p in ps.items():
            p.grad = grads[n].clone()
        merger.before_step()
        with torch.no_grad():
            for n, p in ps.items():
                p.add_(-0.02 * scales[n][1] * grads[n] * (1 + t % 5))
        merger.after_step()
        yield merger, ps, grads


def test_released_arithmetic_is_bit_equal_to_the_released_code():
    reference = ReleasedEMA()
    for t, (merger, ps, grads) in enumerate(random_walk(LLaCAConfig(arithmetic="released"))):
        alphas = reference.update({n: (p.detach().bfloat16(), grads[n].bfloat16()) for n, p in ps.items()})
        for n in ps:
            assert merger.ema[n].dtype == torch.bfloat16
            assert torch.equal(merger.ema[n], reference.ema[n]), (t, n)
            if alphas[n] is not None:
                assert merger.coefficients[n] == alphas[n], (t, n)
    assert t == 44
    counts = merger.counts
    assert counts["in_range"] > 0 and counts["fallback"] > 0 and counts["skipped"] == 0


def test_exact_arithmetic_differs_from_the_released_code():
    """The default is not the released arithmetic: fp32 EMA and one lerp give other values."""
    reference = ReleasedEMA()
    for merger, ps, grads in random_walk(LLaCAConfig(), steps=10):
        reference.update({n: (p.detach().bfloat16(), grads[n].bfloat16()) for n, p in ps.items()})
    assert merger.ema["c"].dtype == torch.float32
    assert not torch.equal(merger.ema["c"].bfloat16(), reference.ema["c"])


def test_released_update_is_a_relative_dead_band():
    """At weight 0.01 a bf16 element moves only when its gap to θ is large against its own size; a bf16 lerp
    (one rounding) moves none at a 10 % gap, the released expression (three roundings) some."""
    gen = torch.Generator().manual_seed(0)
    ema = torch.randn(100_000, generator=gen).bfloat16()
    moved = {}
    for gap in (0.05, 0.1, 0.2, 1.0):
        theta = (ema.float() * (1 + gap)).bfloat16()
        released = ema * 0.99 + theta * 0.01
        lerp = torch.lerp(ema, theta, 0.01)
        moved[gap] = (float((released != ema).float().mean()), float((lerp != ema).float().mean()))
    assert moved[0.1][1] == 0.0 and 0.1 < moved[0.1][0] < 0.5
    assert moved[0.05][0] < moved[0.2][0] < moved[1.0][0] == 1.0
    ps = {"w": torch.nn.Parameter(ema.float().clone())}
    merger = LLaCAMerger(ps.items(), LLaCAConfig(arithmetic="released", mode="fixed"))
    for gap in (0.0, 0.1):                                 # step 1 creates the EMA, step 2 merges at 0.01
        ps["w"].grad = torch.ones_like(ps["w"])
        merger.before_step()
        with torch.no_grad():
            ps["w"].copy_((ema.float() * (1 + gap)).bfloat16().float())
        merger.after_step()
    assert float((merger.ema["w"] != ema).float().mean()) == pytest.approx(moved[0.1][0], abs=0.01)


@pytest.mark.parametrize("kwargs", [{"ema_dtype": "float32"}, {"granularity": "layer"},
                                    {"surrogate": "diff_quotient"}, {"track_drift": "yes"}])
def test_released_config_refuses_what_the_released_code_lacks(kwargs):
    with pytest.raises(ValueError, match="LLaCAConfig"):
        LLaCAConfig(arithmetic="released", **kwargs)


def test_arithmetic_and_ema_dtype_defaults():
    assert LLaCAConfig().ema_dtype == torch.float32
    assert LLaCAConfig(arithmetic="released").ema_dtype == torch.bfloat16
    assert LLaCAConfig(arithmetic="released").resolved()["arithmetic"] == "released"
    with pytest.raises(ValueError, match="arithmetic"):
        LLaCAConfig(arithmetic="bf16")


def test_drift_by_hand():
    """moved = Σ‖θ_T − θ_0‖₁ / Σ‖θ_0‖₁, followed = Σ‖θ* − θ_0‖₁ / Σ‖θ_T − θ_0‖₁, over every tensor."""
    ps = {"a": torch.nn.Parameter(torch.tensor([1.0, -1.0])), "b": torch.nn.Parameter(torch.tensor([2.0, 0.0]))}
    merger = LLaCAMerger(ps.items(), LLaCAConfig(variant="paper", mode="fixed", fallback_new_weight=0.5))
    for theta in ({"a": [3.0, -1.0], "b": [2.0, 2.0]},):
        for p in ps.values():
            p.grad = torch.ones_like(p)
        merger.before_step()
        with torch.no_grad():
            for n, v in theta.items():
                ps[n].copy_(torch.tensor(v))
        merger.after_step()
    # θ_0 = EMA_0; EMA_1 = (θ_0 + θ_1) / 2: moved 4 of |θ_0| 4, followed 2 of 4
    assert merger.drift() == {"moved": 1.0, "followed": 0.5, "ema_unchanged": None, "theta0_l1": 4.0,
                              "moved_l1": 4.0, "followed_l1": 2.0}


def test_drift_counts_bf16_ema_elements_still_at_their_first_value():
    for merger, _, _ in random_walk(LLaCAConfig(arithmetic="released"), steps=12):
        pass
    drift = merger.drift()
    assert 0.0 < drift["ema_unchanged"] < 1.0 and 0.0 < drift["followed"] < 1.5 and drift["moved"] > 0
    first = merger.state_dict()["ema_first"]
    equal = sum(int((merger.ema[n] == first[n]).sum()) for n in first)
    assert drift["ema_unchanged"] == pytest.approx(equal / sum(f.numel() for f in first.values()))


def test_drift_state_round_trip_and_opt_out():
    runs = list(random_walk(LLaCAConfig(arithmetic="released"), steps=6))
    merger, ps, _ = runs[-1]
    state = merger.state_dict()
    assert set(state) >= {"ema", "prev_grad", "theta0", "ema_first"}
    again = LLaCAMerger(ps.items(), LLaCAConfig(arithmetic="released"))
    again.load_state_dict(state)
    assert again.drift() == merger.drift()
    lean = LLaCAMerger(ps.items(), LLaCAConfig(track_drift=False))
    assert "theta0" not in lean.state_dict()
    with pytest.raises(RuntimeError, match="track_drift"):
        lean.drift()
    with pytest.raises(ValueError, match="track_drift"):
        LLaCAMerger(ps.items(), LLaCAConfig()).load_state_dict(
            {**LLaCAMerger(ps.items(), LLaCAConfig(track_drift=False)).state_dict()})
