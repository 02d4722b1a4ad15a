"""LLaCA merge math on plain torch: every variant against hand-computed numbers, fallbacks, first steps,
surrogates, granularity, fixed mode, precision, non-finite guards, state, swap_in, logs and config checks."""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llaca_plugin import LLaCAConfig, LLaCAMerger, attach
from llaca_plugin import log as llaca_log
from llaca_plugin.merge import l1_norms

ROOT = Path(__file__).resolve().parents[1]


def params(**values) -> dict[str, torch.nn.Parameter]:
    return {name: torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for name, v in values.items()}


def step(merger: LLaCAMerger, ps: dict, theta: dict, grad: dict) -> None:
    """One optimizer step by hand: g_t set before, θ_t written by "the optimizer", then merged."""
    for name, g in grad.items():
        ps[name].grad = None if g is None else torch.tensor(g, dtype=torch.float32)
    merger.before_step()
    with torch.no_grad():
        for name, t in theta.items():
            ps[name].copy_(torch.tensor(t, dtype=torch.float32))
    merger.after_step()


def ema(merger, name):
    return merger.ema[name].tolist()


# ------------------------------------------------------------------------------------ the two variants


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused_norms"])
def test_official_formula_by_hand(fused):
    """α = 2(1+G)/(d·H) on the NEW weights; EMA created after step 1 (no merge); fallback 0.01 on new."""
    ps = params(w=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig(fused_norms=fused))
    step(m, ps, {"w": [1.0, 2.0]}, {"w": [0.5, -0.5]})
    assert m.coefficients == {"w": None} and math.isnan(m.raw_coefficients["w"])
    assert ema(m, "w") == [1.0, 2.0] and m.counts == {"in_range": 0, "fallback": 0, "skipped": 0}
    # d = |3-1| + |6-2| = 6, G = 2, H = |1.5-0.5| + |0.5+0.5| = 2: α = 2·3/(6·2) = 0.5
    step(m, ps, {"w": [3.0, 6.0]}, {"w": [1.5, 0.5]})
    assert m.raw_coefficients["w"] == pytest.approx(0.5) and m.coefficients["w"] == pytest.approx(0.5)
    assert ema(m, "w") == pytest.approx([2.0, 4.0])
    rec = m.tensor_records()[0]
    assert (rec["d"], rec["G"], rec["H"], rec["numel"]) == pytest.approx((6.0, 2.0, 2.0, 2))
    # same gradient again: H = 0, α = inf -> fallback θ* = 0.99 θ* + 0.01 θ
    step(m, ps, {"w": [2.5, 4.0]}, {"w": [1.5, 0.5]})
    assert m.raw_coefficients["w"] == math.inf and m.coefficients["w"] == 0.01
    assert ema(m, "w") == pytest.approx([2.005, 4.0])
    # d = 1, G = 3, H = 1: α = 8 >= 1 -> fallback
    step(m, ps, {"w": [3.005, 4.0]}, {"w": [2.5, 0.5]})
    assert m.raw_coefficients["w"] == pytest.approx(8.0) and m.coefficients["w"] == 0.01
    assert ema(m, "w") == pytest.approx([2.015, 4.0])
    assert m.counts == {"in_range": 1, "fallback": 2, "skipped": 0} and m.steps == 4


def test_paper_formula_by_hand():
    """β = (1+G)/(d·H) on the OLD EMA; EMA = θ_0 at attach; step 1 has no g_{t-1} -> fallback."""
    ps = params(w=[1.0, 2.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig(variant="paper"))
    assert ema(m, "w") == [1.0, 2.0]
    step(m, ps, {"w": [2.0, 2.0]}, {"w": [1.0, 1.0]})
    assert math.isnan(m.raw_coefficients["w"]) and m.coefficients["w"] == 0.01
    assert ema(m, "w") == pytest.approx([1.01, 2.0])
    assert m.counts["fallback"] == 1
    # d = |5.01-1.01| + |8-2| = 10, G = 2, H = |2-1| + |0-1| = 2: β = 3/20 = 0.15, weight on new 0.85
    step(m, ps, {"w": [5.01, 8.0]}, {"w": [2.0, 0.0]})
    assert m.raw_coefficients["w"] == pytest.approx(0.15, rel=1e-6)
    assert m.coefficients["w"] == pytest.approx(0.85, rel=1e-6)
    assert ema(m, "w") == pytest.approx([0.15 * 1.01 + 0.85 * 5.01, 0.15 * 2 + 0.85 * 8], rel=1e-6)
    assert m.counts == {"in_range": 1, "fallback": 1, "skipped": 0}


def test_init_and_multiplier_can_be_overridden():
    ps = params(w=[1.0, 2.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig(variant="official", init="task_start", multiplier=0.5))
    step(m, ps, {"w": [2.0, 2.0]}, {"w": [1.0, 1.0]})          # θ_0 known, no g_0: fallback, counted
    assert m.coefficients["w"] == 0.01 and m.counts["fallback"] == 1
    step(m, ps, {"w": [5.01, 8.0]}, {"w": [2.0, 0.0]})         # k = 0.5·3/(10·2) = 0.075 on the new
    assert m.coefficients["w"] == pytest.approx(0.075, rel=1e-6)


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused_norms"])
def test_diff_quotient_and_nan_fallback(fused):
    """H = ‖g_t − g_{t-1}‖₁ / ‖θ_t − θ_{t-1}‖₁; 0/0 gives NaN -> fallback."""
    ps = params(w=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig(surrogate="diff_quotient", multiplier=0.1, fused_norms=fused))
    step(m, ps, {"w": [1.0, 2.0]}, {"w": [0.5, -0.5]})
    # d = 6, ‖θ_2 − θ_1‖ = 6, H = 2/6: k = 0.1·3/(6/3) = 0.15
    step(m, ps, {"w": [3.0, 6.0]}, {"w": [1.5, 0.5]})
    assert m.raw_coefficients["w"] == pytest.approx(0.15)
    assert m.tensor_records()[0]["H"] == pytest.approx(1 / 3)
    before = ema(m, "w")
    step(m, ps, {"w": [3.0, 6.0]}, {"w": [1.5, 0.5]})          # nothing moved: H = 0/0
    assert math.isnan(m.raw_coefficients["w"]) and m.coefficients["w"] == 0.01
    assert ema(m, "w") == pytest.approx([0.99 * b + 0.01 * t for b, t in zip(before, [3.0, 6.0])])
    assert m.counts == {"in_range": 1, "fallback": 1, "skipped": 0}


def test_zero_distance_gives_inf_then_fallback():
    ps = params(w=[1.0, 1.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig())
    step(m, ps, {"w": [1.0, 1.0]}, {"w": [1.0, 1.0]})
    step(m, ps, {"w": [1.0, 1.0]}, {"w": [2.0, 2.0]})          # d = 0
    assert m.raw_coefficients["w"] == math.inf and m.coefficients["w"] == 0.01


def test_layer_granularity_sums_a_blocks_norms():
    ps = params(**{"model.layers.0.q.weight": [0.0, 0.0], "model.layers.0.k.weight": [0.0, 0.0],
                   "proj.weight": [0.0, 0.0]})
    q, k, proj = ps
    results = {}
    for granularity in ("tensor", "layer"):
        for p in ps.values():
            p.data.zero_()
        m = LLaCAMerger(ps.items(), LLaCAConfig(granularity=granularity))
        step(m, ps, {q: [0, 0], k: [0, 0], proj: [0, 0]}, {q: [0, 0], k: [0, 0], proj: [0, 0]})
        # q: d 2, G 1, H 1; k: d 4, G 1, H 1; proj: d 1, G 1, H 1
        step(m, ps, {q: [1, 1], k: [2, 2], proj: [0.5, 0.5]}, {q: [1, 0], k: [0, 1], proj: [1, 0]})
        results[granularity] = m.raw_coefficients
    assert results["tensor"] == pytest.approx({q: 2 * 2 / 2, k: 2 * 2 / 4, proj: 2 * 2 / 1})
    block = 2 * (1 + 2) / ((2 + 4) * (1 + 1))                    # 0.5 for both tensors of layers.0
    assert results["layer"] == pytest.approx({q: block, k: block, proj: 4.0})


def test_fixed_mode_always_uses_the_fallback_weight():
    ps = params(w=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig(mode="fixed", fallback_new_weight=0.05))
    step(m, ps, {"w": [1.0, 2.0]}, {"w": [0.5, -0.5]})
    step(m, ps, {"w": [3.0, 6.0]}, {"w": [1.5, 0.5]})          # k = 0.5 would be in range
    assert m.raw_coefficients["w"] == pytest.approx(0.5) and m.coefficients["w"] == 0.05
    assert ema(m, "w") == pytest.approx([1.1, 2.2])
    assert m.counts == {"in_range": 0, "fallback": 1, "skipped": 0}


def test_missing_grad_counts_as_zero_and_no_grad_at_all_is_an_error():
    ps = params(a=[0.0, 0.0], b=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig())
    step(m, ps, {"a": [1.0, 1.0], "b": [1.0, 1.0]}, {"a": [1.0, 1.0], "b": None})
    step(m, ps, {"a": [2.0, 2.0], "b": [2.0, 2.0]}, {"a": [2.0, 1.0], "b": None})
    assert m.tensor_records()[1]["G"] == 0.0 and m.tensor_records()[1]["H"] == 0.0
    for p in ps.values():
        p.grad = None
    with pytest.raises(RuntimeError, match="no trainable tensor has a gradient"):
        m.before_step()
    with pytest.raises(RuntimeError, match="before_step"):
        m.after_step()


# ------------------------------------------------------------------------------------ precision, guards


def test_fp32_ema_moves_where_a_bf16_ema_stalls():
    """At weight 0.01 the update 0.01·(θ − θ*) ≈ 1e-5 is far below bf16's resolution near 1 (2^-8)."""
    emas = {}
    for dtype in ("float32", "bf16"):
        ps = params(w=[1.0] * 64)
        m = LLaCAMerger(ps.items(), LLaCAConfig(mode="fixed", init="task_start", ema_dtype=dtype))
        for t in range(1, 11):
            step(m, ps, {"w": [1.0 + 1e-3 * t] * 64}, {"w": [1e-3] * 64})
        emas[dtype] = m.ema["w"]
    assert emas["bf16"].dtype == torch.bfloat16 and torch.all(emas["bf16"] == 1.0)
    assert emas["float32"].dtype == torch.float32 and torch.all(emas["float32"] > 1.0 + 4e-4)


@pytest.mark.parametrize("where,value", [("grad", math.inf), ("grad", math.nan), ("theta", math.inf),
                                         ("theta", -math.inf), ("theta", math.nan)])
def test_non_finite_tensor_is_skipped_and_counted(where, value):
    ps = params(a=[0.0, 0.0], b=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig())
    step(m, ps, {"a": [1.0, 1.0], "b": [1.0, 1.0]}, {"a": [1.0, 0.0], "b": [1.0, 0.0]})
    bad = [5.0, value]
    step(m, ps, {"a": bad if where == "theta" else [5.0, 5.0], "b": [5.0, 5.0]},
         {"a": bad if where == "grad" else [3.0, 0.0], "b": [3.0, 0.0]})
    assert ema(m, "a") == [1.0, 1.0] and m.coefficients["a"] is None
    assert ema(m, "b") != [1.0, 1.0] and m.coefficients["b"] is not None
    assert m.counts["skipped"] == 1
    step(m, ps, {"a": [6.0, 6.0], "b": [6.0, 6.0]}, {"a": [4.0, 1.0], "b": [4.0, 1.0]})
    assert math.isnan(m.raw_coefficients["a"]) and m.coefficients["a"] == 0.01   # its g_{t-1} was dropped
    assert all(math.isfinite(x) for x in ema(m, "a"))
    step(m, ps, {"a": [7.0, 7.0], "b": [7.0, 7.0]}, {"a": [1.0, 1.0], "b": [1.0, 1.0]})
    assert math.isfinite(m.raw_coefficients["a"])                      # the formula again


def test_nan_gradients_through_a_real_optimizer_are_never_merged():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    m = attach(opt, model.named_parameters(), LLaCAConfig(variant="paper"))
    for t in range(4):
        model(torch.randn(8, 4)).pow(2).mean().backward()
        if t == 2:
            model.weight.grad[0, 0] = math.nan                   # AdamW then writes NaN into the weight
            before = m.ema["weight"].clone()
        opt.step()
        opt.zero_grad()
        if t == 2:
            assert torch.equal(m.ema["weight"], before) and m.coefficients["weight"] is None
            assert m.coefficients["bias"] is not None
    assert m.counts["skipped"] == 3           # step 2: the weight; step 3: NaN output -> weight and bias
    assert torch.isnan(model.weight).any() and torch.isfinite(m.ema["weight"]).all()
    assert m.steps == 4


# ------------------------------------------------------------------------------------- state, swap_in


def train(merger_model_opt, steps, seed):
    model, opt = merger_model_opt
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        model(torch.randn(8, 6, generator=gen)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()


def fresh(seed=0, config=None):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    return model, opt, attach(opt, model.named_parameters(), config or LLaCAConfig(variant="paper",
                                                                                   surrogate="diff_quotient"))


def test_state_dict_round_trip_continues_identically(tmp_path):
    model_a, opt_a, m_a = fresh()
    train((model_a, opt_a), 3, seed=1)
    state = m_a.state_dict()
    assert set(state["ema"]) == {n for n, _ in model_a.named_parameters()} and state["steps"] == 3
    assert state["ema"]["0.weight"].shape == (5, 6) and set(state) >= {"prev_grad", "prev_theta", "counts"}
    model_b, opt_b, m_b = fresh(seed=123)
    model_b.load_state_dict(model_a.state_dict())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))      # (torch would share the moments)
    torch.save(state, tmp_path / "llaca_state.pt")
    m_b.load_state_dict(torch.load(tmp_path / "llaca_state.pt", weights_only=True))
    train((model_a, opt_a), 3, seed=2)
    train((model_b, opt_b), 3, seed=2)
    assert m_b.coefficients == m_a.coefficients and m_b.counts == m_a.counts and m_b.steps == 6
    for n in m_a.ema:
        assert torch.equal(m_a.ema[n], m_b.ema[n])


def test_load_state_dict_refuses_another_config_or_model():
    _, _, m = fresh()
    state = m.state_dict()
    _, _, other = fresh(config=LLaCAConfig(variant="official"))
    with pytest.raises(ValueError, match="config"):
        other.load_state_dict(state)
    ps = params(w=[1.0])
    with pytest.raises(ValueError, match="names differ"):
        LLaCAMerger(ps.items(), LLaCAConfig(variant="paper", surrogate="diff_quotient")).load_state_dict(state)


def test_swap_in_writes_the_ema_into_the_parameters():
    model, opt, m = fresh()
    train((model, opt), 4, seed=3)
    assert any(not torch.equal(p.detach(), m.ema[n]) for n, p in model.named_parameters())
    m.swap_in()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), m.ema[n])
    early = LLaCAMerger(params(w=[1.0]).items(), LLaCAConfig())  # official: no EMA before the first step
    with pytest.raises(RuntimeError, match="no EMA yet"):
        early.swap_in()


def test_attach_names_hooks_and_detach():
    model = torch.nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    m = attach(opt, [("module." + n, p) for n, p in model.named_parameters()], LLaCAConfig())
    assert m.names == ["weight"]                                 # wrapper prefix dropped, frozen skipped
    with pytest.raises(RuntimeError, match="already"):
        attach(opt, model.named_parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    assert m.steps == 1
    m.detach()
    opt.step()
    assert m.steps == 1
    attach(opt, model.named_parameters())


# ------------------------------------------------------------------------------------ norms, logs, config


def test_l1_norms_eager_and_fused_agree():
    gen = torch.Generator().manual_seed(0)
    sizes = [1, 7, 4096, 100_003]
    lists = [[torch.randn(n, generator=gen) for n in sizes] for _ in range(5)]
    expected = torch.tensor([[float((t - e).double().abs().sum()), float(g.double().abs().sum()),
                              float((g - p).double().abs().sum()), float((t - q).double().abs().sum())]
                             for t, e, g, p, q in zip(*lists)], dtype=torch.float64)   # fp32 differences
    originals = [[x.clone() for x in lst] for lst in lists]
    for fused, rtol in ((False, 1e-6), (True, 1e-12)):
        work = [[x.clone() for x in lst] for lst in lists]
        torch.testing.assert_close(l1_norms(*work, fused=fused), expected, rtol=rtol, atol=0)
        for i in (0, 1, 2):                                      # θ, θ*, g untouched
            assert all(torch.equal(a, b) for a, b in zip(work[i], originals[i]))
        assert all(torch.equal(a, b) for a, b in zip(work[3], originals[2]))    # g_prev <- g
        assert all(torch.equal(a, b) for a, b in zip(work[4], originals[0]))    # θ_prev <- θ


def test_summary_and_jsonl(tmp_path):
    ps = params(a=[0.0, 0.0], b=[0.0, 0.0])
    m = LLaCAMerger(ps.items(), LLaCAConfig())
    step(m, ps, {"a": [1.0, 2.0], "b": [1.0, 2.0]}, {"a": [0.5, -0.5], "b": [0.5, -0.5]})
    s = llaca_log.summary(m)
    assert math.isnan(s["llaca/raw_median"]) and s["llaca/steps"] == 1.0 and s["llaca/in_range"] == 0.0
    step(m, ps, {"a": [3.0, 6.0], "b": [2.5, 4.0]}, {"a": [1.5, 0.5], "b": [1.5, 0.5]})
    s = llaca_log.summary(m)
    assert set(s) == {f"llaca/{k}_{q}" for k in ("raw", "applied") for q in ("median", "p10", "p90", "min", "max")} \
        | {"llaca/in_range", "llaca/fallback", "llaca/skipped", "llaca/steps"}
    assert (s["llaca/raw_min"], s["llaca/raw_max"]) == pytest.approx((0.5, 6 / 7))       # b: d = 3.5
    assert s["llaca/applied_median"] == pytest.approx((0.5 + 6 / 7) / 2)
    path = tmp_path / "llaca_log.jsonl"
    llaca_log.append_jsonl(path, m, step=2)
    step(m, ps, {"a": [3.0, 6.0], "b": [2.5, 4.0]}, {"a": [1.5, 0.5], "b": [1.5, 0.5]})
    llaca_log.append_jsonl(path, m, step=3)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 3]
    assert set(lines[0]) == {"step", "summary", "tensors"} and lines[0]["summary"]["in_range"] == 2
    assert lines[0]["tensors"][0] == {"name": "a", "numel": 2, "raw": pytest.approx(0.5),
                                      "applied": pytest.approx(0.5), "d": 6.0, "G": 2.0, "H": 2.0}
    assert lines[1]["tensors"][0]["raw"] is None                  # same gradient: H = 0, k = inf -> null


@pytest.mark.parametrize("kwargs", [{"variant": "Paper"}, {"multiplier": 0}, {"multiplier": float("nan")},
                                    {"multiplier": True}, {"fallback_new_weight": 1.5}, {"init": "start"},
                                    {"surrogate": "hessian"}, {"granularity": "block"}, {"ema_dtype": "int8"},
                                    {"ema_dtype": torch.int32}, {"mode": "static"}, {"fused_norms": "yes"}])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="LLaCAConfig"):
        LLaCAConfig(**kwargs)


def test_config_defaults_resolve_per_variant():
    official, paper = LLaCAConfig(), LLaCAConfig(variant="paper")
    assert (official.c, official.init_at, paper.c, paper.init_at) == (2.0, "first_step", 1.0, "task_start")
    assert LLaCAConfig(ema_dtype="bf16").ema_dtype == torch.bfloat16
    assert LLaCAConfig(multiplier=0.01).resolved()["multiplier"] == 0.01


def test_import_is_light():
    """`import llaca_plugin` pulls in neither DeepSpeed nor the grouping module."""
    code = ("import sys, llaca_plugin; bad = [m for m in ('deepspeed', 'llaca_plugin.grouping') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
