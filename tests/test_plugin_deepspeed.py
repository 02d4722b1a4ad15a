"""LLaCA under DeepSpeed: the handle agrees with `LLaCAMerger` on plain torch at ZeRO 0-3, 1 and 2 processes.

Every DeepSpeed run happens in tests/plugin_ds_worker.py: one `torchrun` launch (2 processes) and one plain
launch (1 process) run a whole plan of specs in sequence; the test computes the plain-torch reference
(`plugin_ds_worker.reference_run`: same tiny LLaVA + LoRA + projector, data, seeds, 2 param groups, clipping
0.5, accumulation 2, gradients summed in DeepSpeed's order) in this process and compares per-step raw and
applied coefficients, counts and the final EMA with relative tolerance 1e-5.

Tolerances: ZeRO 0-2 agree bitwise here. ZeRO-3's autograd hooks change the order in which a layer's input
gradient contributions are summed (~3e-7 relative at step 0), and training amplifies that a little per step;
AdamW runs with eps=1e-4 so that near-zero gradient elements do not turn it into sign flips.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import plugin_ds_worker as W

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-5
FP32 = {"clip": 0.5, "ga": 2, "steps": 6, "lr": 5e-3, "eps": 1e-4}
COMBOS = [(v, g) for v in ("official", "paper") for g in ("tensor", "layer")]


def fp32_specs(stages, world_tag):
    specs = []
    for stage in stages:
        for variant, granularity in COMBOS:
            spec = dict(FP32, name=f"z{stage}_{variant}_{granularity}_np{world_tag}", stage=stage, variant=variant,
                        granularity=granularity)
            if stage == 3 and granularity == "tensor":
                spec["sub_group_size"] = 2000        # several ZeRO-3 sub-groups per param group
            specs.append(spec)
    return specs


def bf16_specs():
    """Every bf16 configuration, 2 processes: an inf loss at step 2 must be skipped by the engine."""
    base = {"dtype": "bf16", "variant": "paper", "clip": 0.5, "ga": 2, "steps": 5, "check_bf16": True,
            "inject_inf_at": 2}
    return [dict(base, name="bf16_z0", stage=0), dict(base, name="bf16_z1", stage=1),
            dict(base, name="bf16_z1_bf16opt", stage=1, bf16_optimizer=True),
            dict(base, name="bf16_z2", stage=2), dict(base, name="bf16_z3", stage=3, sub_group_size=2000)]


RESUME = {"stage": 3, "optimizer": "sgd", "lr": 0.05, "clip": 0.5, "ga": 2, "steps": 6, "variant": "official",
          "surrogate": "diff_quotient", "sub_group_size": 2000}

CI2 = fp32_specs([2, 3], 2) + [
    dict(FP32, name="z3_paper_tensor_dq_np2", stage=3, variant="paper", surrogate="diff_quotient",
         sub_group_size=2000),
    dict(FP32, name="z2_official_layer_fused_np2", stage=2, variant="official", granularity="layer",
         surrogate="diff_quotient", fused_norms=True),
] + bf16_specs()
RELEASED = dict(FP32, name="z2_released_np2", stage=2, variant="official", arithmetic="released", lr=2e-2)
OFFLOAD = [dict(FP32, name="z2_offload_official_tensor_np2", stage=2, variant="official", granularity="tensor",
                offload=True),
           dict(FP32, name="z3_offload_paper_tensor_np2", stage=3, variant="paper", granularity="tensor",
                offload=True, sub_group_size=2000)]
CI2 = CI2 + [RELEASED] + OFFLOAD
SLOW2 = fp32_specs([0, 1], 2)
SLOW1 = fp32_specs([0, 1, 2, 3], 1)


def launch(tiny: Path, plan: list[dict], out: Path, nproc: int) -> dict:
    """Run the worker on `plan`; fail with its log if it does not finish cleanly."""
    from llava.train.dist import free_port

    plan_path = out.with_suffix(".plan.json")
    plan_path.write_text(json.dumps(plan))
    args = [str(ROOT / "tests" / "plugin_ds_worker.py"), "--tiny", str(tiny), "--plan", str(plan_path),
            "--out", str(out)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_port", str(free_port())] + args
    else:
        cmd = [sys.executable] + args
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0 and out.exists(), f"worker failed (rc {proc.returncode}):\n{proc.stderr[-6000:]}"
    results = json.loads(out.read_text())
    errors = {k: v["error"] for k, v in results.items() if "error" in v and not k.startswith("refuse")}
    assert not errors, errors
    return results


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from llava.model.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), size="test")


@pytest.fixture(scope="module")
def base_model(tiny):
    return W.build_model(tiny)


@pytest.fixture(scope="module")
def ci_runs(tiny, tmp_path_factory) -> dict:
    """The default set: ZeRO-2/3 x variants x granularities and bf16 at every stage with 2 processes, the
    resume source (2 processes); then, in one process, the resume at world size 1 and the refusals."""
    work = tmp_path_factory.mktemp("ds")
    state = work / "resume_state.pt"
    two = launch(tiny, CI2 + [dict(RESUME, name="resume_src", save_state_at=3, state_path=str(state))],
                 work / "ci2.json", 2)
    one = launch(tiny, [
        dict(RESUME, name="resume_dst", stage=2, load_state=str(state), data_world=2),
        dict(FP32, name="refuse_layer_z3_subgroups", stage=3, granularity="layer", sub_group_size=2000),
        dict(FP32, name="refuse_layer_split_group", stage=1, granularity="layer",
             split_group="layers.0.self_attn.q_proj.lora_A"),
    ], work / "ci1.json", 1)
    return {**two, **one, "_state_path": state}


@pytest.fixture(scope="module")
def slow_runs(tiny, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("ds_slow")
    return {**launch(tiny, SLOW2, work / "slow2.json", 2), **launch(tiny, SLOW1, work / "slow1.json", 1)}


@pytest.fixture
def one_thread():
    """The reference must compute exactly like the 1-thread workers."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def assert_matches_reference(base_model, spec: dict, got: dict, world: int) -> None:
    ref = W.reference_run(base_model, spec, world)
    assert len(got["steps"]) == len(ref["steps"]) == spec["steps"]
    in_range = 0
    for t, (r, g) in enumerate(zip(ref["steps"], got["steps"])):
        assert g["counts"] == r["counts"], f"step {t}"
        assert g["handle_steps"] == r["handle_steps"] == t + 1
        for name, k in r["raw"].items():
            k_ds = g["raw"][name]
            assert (math.isnan(k) and math.isnan(k_ds)) or k_ds == pytest.approx(k, rel=RTOL), (t, name, k, k_ds)
            w, w_ds = r["applied"][name], g["applied"][name]
            assert (w is None) == (w_ds is None), (t, name)
            if w is not None:     # the pair (w, 1 - w) to relative 1e-5: paper's 1 - beta is tiny near beta = 1
                assert abs(w_ds - w) <= RTOL * max(w, 1 - w), (t, name, w, w_ds)
        in_range = r["counts"]["in_range"]
    assert in_range > 0 and r["counts"]["fallback"] > 0, "both outcomes must occur for the comparison to mean much"
    assert sorted(got["final_ema"]) == sorted(ref["final_ema"])
    for name, ema in ref["final_ema"].items():
        ema = torch.tensor(ema)
        torch.testing.assert_close(torch.tensor(got["final_ema"][name]), ema, rtol=RTOL,
                                   atol=RTOL * float(ema.abs().max()), msg=name)
    assert got["swap_in_master_err"] == 0.0 and got["swap_in_saved_err"] == 0.0
    for key in ("moved", "followed"):
        assert got["drift"][key] == pytest.approx(ref["drift"][key], rel=RTOL), key


@pytest.mark.parametrize("spec", [s for s in CI2 if "dtype" not in s and "arithmetic" not in s],
                         ids=lambda s: s["name"])
def test_zero23_two_processes_match_plain_torch(ci_runs, base_model, one_thread, spec):
    """Also with the optimizer offloaded to CPU (ZeRO-2; ZeRO-3 with the parameters offloaded too): the EMA and
    g_{t-1} then live in CPU memory beside the fp32 masters."""
    got = ci_runs[spec["name"]]
    assert got["kind"] == {2: "zero12", 3: "zero3"}[spec["stage"]]
    assert got["ema_device"] == "cpu"
    assert_matches_reference(base_model, spec, got, world=2)
    # EMA (and g_{t-1}) are shards like the fp32 masters: half the trainable elements per rank, plus padding
    assert got["trainable_numel"] / 2 <= got["ema_numel_this_rank"] <= got["trainable_numel"] / 2 + 64


@pytest.mark.parametrize("spec", bf16_specs(), ids=lambda s: s["name"])
def test_bf16_ema_is_fp32_and_moves_by_applied_weight(ci_runs, spec):
    """The EMA is fp32; EMA_t = lerp(EMA_{t-1}, θ_t, w_t) with θ_t the fp32 MASTER (exactly), not the bf16
    weights; the inf-loss step is skipped by the engine and merges nothing."""
    got = ci_runs[spec["name"]]
    assert got["kind"] == {"bf16_z0": "stage0_unfused", "bf16_z1_bf16opt": "bf16", "bf16_z3": "zero3"}.get(
        spec["name"], "zero12")
    assert got["ema_dtype"] == "torch.float32"
    skipped = spec["inject_inf_at"]
    for t, step in enumerate(got["steps"]):
        if t == skipped:
            assert not step["applied_step"] and step["unchanged"] and step["ema_unchanged"]
            assert step["handle_steps"] == got["steps"][t - 1]["handle_steps"]
            continue
        assert step["applied_step"] and step["ema_is_fp32"]
        assert step["ema_err_fp32_master"] <= 1e-7, step
        if t > 0:
            assert step["ema_moved"] > 0
            assert step["ema_err_bf16_weights"] > 100 * max(step["ema_err_fp32_master"], 1e-9), step
    assert got["steps"][-1]["handle_steps"] == spec["steps"] - 1
    assert got["steps"][-1]["counts"]["skipped"] == 0
    assert got["swap_in_master_err"] == 0.0 and got["swap_in_saved_err"] == 0.0


def test_released_arithmetic_at_zero2_two_processes_matches_one_process(ci_runs, base_model, one_thread):
    """arithmetic="released" on shards: each L1 norm is the float64 sum of the ranks' float32 partial sums,
    rounded to bf16 once, where one process rounds one float32 sum; so k may differ in its last bf16 bit. Here:
    every raw k within one bf16 step (2^-7 relative) of the one-process k, the EMA (bf16) within a few bf16
    steps, both outcomes present, the drift figures close."""
    got = ci_runs[RELEASED["name"]]
    ref = W.reference_run(base_model, RELEASED, world=2)
    assert got["kind"] == "zero12" and got["ema_dtype"] == "torch.bfloat16"
    computed = exact = 0
    for r, g in zip(ref["steps"], got["steps"]):
        assert g["counts"] == r["counts"]
        for name, k in r["raw"].items():
            if math.isnan(k):
                assert math.isnan(g["raw"][name])
                continue
            computed += 1
            exact += g["raw"][name] == k
            assert g["raw"][name] == pytest.approx(k, rel=2 ** -7), name
    assert r["counts"]["in_range"] > 0 and r["counts"]["fallback"] > 0
    assert exact >= 0.9 * computed, (exact, computed)
    for name, ema in ref["final_ema"].items():
        ema = torch.tensor(ema)
        torch.testing.assert_close(torch.tensor(got["final_ema"][name]), ema, rtol=2 ** -6,
                                   atol=2 ** -6 * float(ema.abs().max()), msg=name)
    assert got["drift"]["followed"] == pytest.approx(ref["drift"]["followed"], rel=1e-2)
    assert 0 <= got["drift"]["ema_unchanged"] <= 1


def test_state_saved_at_two_processes_continues_at_one(ci_runs, base_model, one_thread):
    """ZeRO-3 x 2 processes saves after step 3; a ZeRO-2 engine in ONE process (same data, accumulation 4)
    loads it and continues like the uninterrupted run; so does LLaCAMerger on plain torch."""
    src, dst = ci_runs["resume_src"], ci_runs["resume_dst"]
    saved = torch.load(ci_runs["_state_path"], weights_only=False)
    assert saved["step"] == 3 and saved["llaca"]["steps"] == 3
    assert set(saved["llaca"]) >= {"ema", "prev_grad", "prev_theta"}
    plain = W.reference_run(base_model, dict(RESUME, name="resume_plain"), world=2, first_step=3, state=saved)
    for cont in (dst, plain):
        assert len(cont["steps"]) == 3
        for a, b in zip(src["steps"][3:], cont["steps"]):
            assert a["counts"] == b["counts"] and a["handle_steps"] == b["handle_steps"]
            for name, k in a["raw"].items():
                assert b["raw"][name] == pytest.approx(k, rel=RTOL, nan_ok=True), name
                if a["applied"][name] is not None:
                    assert b["applied"][name] == pytest.approx(a["applied"][name], rel=RTOL), name
        for name, ema in src["final_ema"].items():
            ema = torch.tensor(ema)
            torch.testing.assert_close(torch.tensor(cont["final_ema"][name]), ema, rtol=RTOL,
                                       atol=RTOL * float(ema.abs().max()), msg=name)


def test_layer_granularity_refuses_blocks_split_across_optimizer_calls(ci_runs):
    for name in ("refuse_layer_z3_subgroups", "refuse_layer_split_group"):
        error = ci_runs[name].get("error", "")
        assert error.startswith("ValueError") and "granularity='layer'" in error and "layers.0" in error, error


@pytest.mark.slow
@pytest.mark.parametrize("spec", SLOW2 + SLOW1, ids=lambda s: s["name"])
def test_grid_matches_plain_torch(slow_runs, base_model, one_thread, spec):
    got = slow_runs[spec["name"]]
    assert got["kind"] == {0: "stage0_fp32", 1: "zero12", 2: "zero12", 3: "zero3"}[spec["stage"]]
    world = 1 if spec["name"].endswith("np1") else 2
    assert_matches_reference(base_model, spec, got, world=world)
    shards = world if spec["stage"] > 0 else 1               # stage 0: every rank holds full tensors
    assert got["trainable_numel"] / shards <= got["ema_numel_this_rank"] <= got["trainable_numel"] / shards + 64
