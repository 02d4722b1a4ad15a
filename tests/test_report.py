"""The benchmark report: figures averaged over seeds, one-row baselines, coefficient statistics and plots."""
import json

import pytest

from llava.eval import report
from llava.eval.matrix import summarize

TASKS = ["A", "B"]


def write_run(root, seed, matrix, zero_shot, log_lines):
    summary = {"tasks": TASKS, "matrix": matrix, **summarize(matrix)}
    (root / "results" / "LLaCA").mkdir(parents=True)
    (root / "results" / "LLaCA" / "summary.json").write_text(json.dumps(summary))
    for task, acc in zip(TASKS, zero_shot):
        (root / "results" / "Zero_shot" / task).mkdir(parents=True)
        (root / "results" / "Zero_shot" / task / "score.json").write_text(json.dumps({"accuracy": acc}))
    task_dir = root / "checkpoints" / "LLaCA" / "B"
    task_dir.mkdir(parents=True)
    (task_dir / "llaca_log.jsonl").write_text("".join(json.dumps(x) + "\n" for x in log_lines) + '{"step": 9, "summ')


def line(step, raws, counts):
    tensors = [{"name": f"t{i}", "numel": 100, "raw": r, "applied": (r if r is not None and 0 < r < 1 else 0.01),
                "d": 1.0, "G": 2.0, "H": 3.0} for i, r in enumerate(raws)]
    return {"step": step, "summary": dict(zip(("in_range", "fallback", "skipped"), counts)), "tensors": tensors}


def test_report_over_two_seeds(tmp_path):
    write_run(tmp_path / "s0", 0, [[80, None], [40, 90]], [10, 20], [line(1, [0.5, 2.0], (1, 1, 0)),
                                                                    line(2, [0.5, 4.0], (2, 2, 0))])
    write_run(tmp_path / "s1", 1, [[60, None], [50, 70]], [30, 20], [line(2, [None, 8.0], (1, 2, 1))])
    out = tmp_path / "out"
    result = report.main(["--runs", str(tmp_path / "s0"), str(tmp_path / "s1"), "--methods", "LLaCA",
                          "--one-row", "Zero_shot", "--out", str(out), "--lr", "2e-3"])
    table = result["table"]
    assert table["LLaCA"]["avg"] == (pytest.approx(62.5), pytest.approx(3.5355339), 2)  # mean(40, 90), mean(50, 70)
    assert table["LLaCA"]["forgetting"][0] == pytest.approx(25.0)                         # 80 - 40 and 60 - 50
    assert table["Zero_shot"]["avg"][0] == pytest.approx(20.0)
    stats = result["coefficients"]["LLaCA"]["tasks"]["B"]
    assert stats["tensor_steps"] == 8 and stats["in_range_fraction"] == pytest.approx(3 / 8)  # last lines: 2+2+0, 1+2+1
    assert stats["skipped_fraction"] == pytest.approx(1 / 8)
    assert stats["raw"]["median"] == pytest.approx(2.0)                # 0.5, 0.5, 2, 4, 8
    text = (out / "report.md").read_text()
    assert "| LLaCA | 62.5 ± 3.5 |" in text and "| Zero_shot | 20.0 ± 7.1 |" in text
    for name in ("figures.png", "forgetting_curves.png", "coefficients.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("mode, heading", [("fixed", "## Coefficients: LLaCA (fixed EMA: applied 0.01 at every step"),
                                           ("dynamic", "## Coefficients: LLaCA (multiplier c = 0.2)")])
def test_coefficient_heading_names_the_rule_the_run_applied(tmp_path, mode, heading):
    import torch

    write_run(tmp_path / "s0", 0, [[80, None], [40, 90]], [10, 20], [line(1, [0.5, 2.0], (1, 1, 0))])
    state = tmp_path / "s0" / "checkpoints" / "LLaCA" / "B" / "llaca_state.pt"
    torch.save({"config": {"multiplier": 0.2, "mode": mode, "fallback_new_weight": 0.01}}, state)
    report.main(["--runs", str(tmp_path / "s0"), "--methods", "LLaCA", "--out", str(tmp_path / "out"), "--lr", "2e-3"])
    assert heading in (tmp_path / "out" / "report.md").read_text()


def test_a_report_of_one_row_baselines_only(tmp_path):
    # `scripts/mini/run.sh --methods Multitask`: no chain summary, so the task order comes from --tasks.
    write_run(tmp_path / "s0", 0, [[80, None], [40, 90]], [10, 30], [])
    args = ["--runs", str(tmp_path / "s0"), "--methods", "--one-row", "Zero_shot", "--out", str(tmp_path / "out")]
    with pytest.raises(FileNotFoundError, match="no --tasks"):
        report.main(args)
    result = report.main(args + ["--tasks", *TASKS])
    assert set(result["table"]) == {"Zero_shot"} and result["table"]["Zero_shot"]["avg"][0] == pytest.approx(20.0)
    assert "| Zero_shot | 10.0 | 30.0 |" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "forgetting_curves.png").exists()


def test_a_method_run_on_fewer_seeds_shows_its_count(tmp_path):
    write_run(tmp_path / "s0", 0, [[80, None], [40, 90]], [10, 20], [line(1, [0.5, 2.0], (1, 1, 0))])
    write_run(tmp_path / "s1", 1, [[60, None], [50, 70]], [30, 20], [line(1, [0.5, 2.0], (1, 1, 0))])
    (tmp_path / "s1" / "results" / "LLaCA" / "summary.json").unlink()  # LLaCA finished on seed 0 only
    out = tmp_path / "out"
    report.main(["--runs", str(tmp_path / "s0"), str(tmp_path / "s1"), "--methods", "LLaCA", "--one-row", "Zero_shot",
                 "--out", str(out), "--lr", "2e-3"])
    text = (out / "report.md").read_text()
    assert "| LLaCA | 65.0 (1/2) |" in text and "| Zero_shot | 20.0 ± 7.1 |" in text


def write_chain(root, method, matrix, drift=None):
    (root / "results" / method).mkdir(parents=True)
    summary = {"tasks": TASKS, "matrix": matrix, **summarize(matrix)}
    (root / "results" / method / "summary.json").write_text(json.dumps(summary))
    if drift is not None:
        (root / "checkpoints" / method / "B").mkdir(parents=True)
        (root / "checkpoints" / method / "B" / "llaca_drift.json").write_text(json.dumps(drift))


def test_decomposition_pairs_rows_seed_by_seed_and_names_noise(tmp_path):
    # LoRA forgets 40 and 20 on the two seeds; grouping 10 and 0 (removes 30 and 20: a finding); the EMA 38, 22
    # (removes 2 and -2: mean 0, under the seeds' spread of 14.1: noise)
    for seed, (lora, grouped, ema) in enumerate([(40, 10, 38), (20, 0, 22)]):
        run = tmp_path / f"s{seed}"
        write_chain(run, "LoRA", [[80, None], [80 - lora, 90]])
        write_chain(run, "Grouped_LoRA", [[80, None], [80 - grouped, 90]])
        write_chain(run, "LLaCA", [[80, None], [80 - ema, 85]],
                    drift={"steps": 5, "moved": 0.2 + seed / 10, "followed": 0.5, "ema_unchanged": None})
    result = report.main(["--runs", str(tmp_path / "s0"), str(tmp_path / "s1"), "--methods", "LoRA", "Grouped_LoRA",
                          "LLaCA", "--one-row", "--out", str(tmp_path / "out")])
    rows = {r["row"]: r for r in result["decomposition"]}
    assert set(rows) == {"Grouped_LoRA", "LLaCA"}
    assert rows["Grouped_LoRA"]["forgetting_removed"] == (pytest.approx(25.0), pytest.approx(7.0710678), 2)
    assert not rows["Grouped_LoRA"]["noise"]
    assert rows["LLaCA"]["forgetting_removed"][0] == pytest.approx(0.0) and rows["LLaCA"]["noise"]
    assert rows["LLaCA"]["new_gained"][0] == pytest.approx(-2.5)          # (80 + 85) / 2 against (80 + 90) / 2
    assert result["drift"] == {"LLaCA": {"B": {"moved": pytest.approx(0.25), "followed": 0.5, "ema_unchanged": None,
                                               "seeds": 2}}}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Where the forgetting removed comes from" in text and "noise (spread 14.1)" in text
    assert "## What the EMA did, per task" in text and "| followed | 0.5 |" in text
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["drift"]["LLaCA"]["B"]["seeds"] == 2 and len(saved["decomposition"]) == 2


def test_one_seed_summary_says_how_large_a_difference_must_be(tmp_path, capsys):
    from llava.coin import summary

    table = {"LoRA": {"avg": [20.0, 1.0, 3], "new": [70.0, 2.0, 3], "forgetting": [60.0, 1.5, 3]},
             "LLaCA": {"avg": [22.0, 1.0, 3], "new": [71.0, 2.0, 3], "forgetting": [58.0, 4.25, 3]}}
    (tmp_path / "report.json").write_text(json.dumps({"table": table}))
    summary.main([str(tmp_path / "report.json"), "--methods", "LoRA", "LLaCA", "--benchmark",
                  str(tmp_path / "report.json")])
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["LoRA", "20.0", "70.0", "60.0"]
    assert out[3].startswith("One seed: differences under 4.2 points of Forgetting are noise")
    assert "LoRA ± 1.5, LLaCA ± 4.2" in out[3] and out[3].endswith(str(tmp_path / "report.md"))
    (tmp_path / "other.json").write_text("[]")
    with pytest.raises(SystemExit):
        summary.main([str(tmp_path / "report.json"), "--methods", "LoRA", "--benchmark", str(tmp_path / "other.json")])
    assert "not a report" in capsys.readouterr().err


def test_a_report_of_runs_that_hold_nothing_is_an_error(tmp_path):
    (tmp_path / "s0").mkdir()
    with pytest.raises(FileNotFoundError, match="nothing to report"):
        report.main(["--runs", str(tmp_path / "s0"), "--methods", "LoRA", "--one-row", "Zero_shot", "--tasks", *TASKS,
                     "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_rows_carried_from_an_earlier_report_are_marked_and_compared_unpaired(tmp_path):
    # The earlier report holds LLaCA (F 30 ± 3 over 3 seeds) and LoRA; these runs hold LoRA and LLaCA_bf16 only.
    for seed, (lora, bf16) in enumerate([(40, 38), (20, 18)]):
        write_chain(tmp_path / f"s{seed}", "LoRA", [[80, None], [80 - lora, 90]])
        write_chain(tmp_path / f"s{seed}", "LLaCA_bf16", [[80, None], [80 - bf16, 90]])
    earlier = {"tasks": TASKS, "table": {
        "LoRA": {"avg": [1.0, 0.0, 3], "new": [1.0, 0.0, 3], "forgetting": [99.0, 0.0, 3], "seeds": 3},
        "LLaCA": {"avg": [60.0, 2.0, 3], "new": [84.0, 4.0, 3], "forgetting": [30.0, 3.0, 3], "bwt": [-30.0, 3.0, 3],
                  "maa": [70.0, 1.0, 3], "final": [[50.0, 1.0, 3], [70.0, 2.0, 3]],
                  "curves": [[80.0, 50.0], [None, 70.0]], "seeds": 3}},
        "coefficients": {"LLaCA": {"multiplier": 2.0, "tasks": {}}}}
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    result = report.main(["--runs", str(tmp_path / "s0"), str(tmp_path / "s1"), "--methods", "LoRA", "LLaCA",
                          "LLaCA_bf16", "--one-row", "--out", str(tmp_path / "out"),
                          "--carry", str(tmp_path / "earlier.json")])
    table = result["table"]
    assert table["LLaCA"]["carried"] == str(tmp_path / "earlier.json") and "carried" not in table["LoRA"]
    assert table["LoRA"]["forgetting"][0] == pytest.approx(30.0)      # these runs' LoRA, not the earlier one
    rows = {(r["row"], r["base"]): r for r in result["decomposition"]}
    assert rows[("LLaCA_bf16", "LLaCA")]["paired"] is False
    assert rows[("LLaCA_bf16", "LLaCA")]["forgetting_removed"] == (pytest.approx(2.0), pytest.approx(14.4568323), 2)
    assert rows[("LLaCA", "LoRA")]["new_gained"][0] == pytest.approx(84.0 - 85.0)
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| LLaCA † | 60.0 ± 2.0 |" in text and "† carried from" in text and "| unpaired; noise" in text
    with pytest.raises(ValueError, match="its tasks"):
        (tmp_path / "other.json").write_text(json.dumps({**earlier, "tasks": ["X", "Y"]}))
        report.main(["--runs", str(tmp_path / "s0"), "--methods", "LLaCA", "LoRA", "--one-row", "--out",
                     str(tmp_path / "out2"), "--carry", str(tmp_path / "other.json")])
