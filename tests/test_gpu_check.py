"""`bash scripts/gpu_check.sh`, the GPU check, run on the CPU at the tiny preset: both variants train through
LLaVATrainer + DeepSpeed ZeRO-2 in bf16, the timings and memory are recorded, and the plugin's and the optimizer's
state on the device equal what `llava.model.dryrun` predicts for that layout."""
import json

from conftest import run

STEPS, WARMUP = 2, 1


def test_gpu_check_on_cpu_at_the_tiny_preset(tmp_path):
    proc = run(["bash", "scripts/gpu_check.sh", "--preset", "tiny", "--steps", str(STEPS), "--warmup", str(WARMUP),
                "--per_device_batch", "2", "--lora_r", "8", "--lora_alpha", "16", "--out", str(tmp_path)], timeout=600)
    report = json.loads((tmp_path / "tiny.json").read_text())
    table = (tmp_path / "tiny.md").read_text()
    assert table in proc.stdout and "| LLaCA merge | – |" in table
    assert report["meta"]["preset"] == "tiny" and report["meta"]["lora_r"] == 8
    for variant in ("lora", "llaca"):
        r = report["runs"][variant]
        assert r["world_size"] == 1 and len(r["steps"]) == STEPS + WARMUP
        assert all(s["optimizer_calls"] == 3 and 0 < s["optimizer_s"] < s["step_s"] for s in r["steps"])  # 3 groups
        assert r["optimizer_state_bytes"]["measured"] == r["optimizer_state_bytes"]["dryrun"]
        assert r["memory"]["peak_bytes"] >= r["memory"]["first_step_bytes"] > 0
        assert r["losses"]
    llaca = report["runs"]["llaca"]
    assert llaca["llaca_state_bytes"]["measured"] == llaca["llaca_state_bytes"]["dryrun"]
    assert set(llaca["llaca_state_bytes"]["measured"]) == {"ema", "prev_grad", "theta0", "total"}
    assert sum(llaca["llaca_counts"].values()) == 32 * (STEPS + WARMUP - 1)   # 32 tensors, merged from step 2 on
    summary = report["summary"]
    assert summary["llaca"]["merge_s"] > 0 and summary["llaca_vs_lora"]["merge_over_optimizer_step"] > 0
