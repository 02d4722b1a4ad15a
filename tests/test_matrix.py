"""Chain figures (Avg, New, Forgetting, BWT, MAA, FWT) on hand-computed matrices, and the matrix CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llava.eval import matrix as matrix_mod
from llava.eval.matrix import summarize

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Task 1 peaks after stage 2 (80), not on the diagonal (60), before dropping to 50.
A3 = [[60.0],
      [80.0, 70.0],
      [50.0, 75.0, 90.0]]


def test_summarize_3x3_by_hand():
    figures = summarize(A3)
    assert figures["avg"] == pytest.approx((50 + 75 + 90) / 3)
    assert figures["new"] == pytest.approx((60 + 70 + 90) / 3)
    assert figures["forgetting"] == pytest.approx(((80 - 50) + (70 - 75)) / 2)  # max over stages 1..2, not A[1][1]
    assert figures["bwt"] == pytest.approx(((50 - 60) + (75 - 70)) / 2)
    assert figures["maa"] == pytest.approx((60 + (80 + 70) / 2 + (50 + 75 + 90) / 3) / 3)
    assert figures["fwt"] is None  # needs both next and zero-shot


def test_summarize_1x1():
    assert summarize([[42.0]]) == {"avg": 42.0, "new": 42.0, "forgetting": None, "bwt": None, "maa": 42.0,
                                   "fwt": None}


def test_summarize_fwt_with_next_and_zero_shot():
    next_task = [None, 30.0, 40.0]
    zero_shot = [10.0, 20.0, 25.0]
    assert summarize(A3, next_task, zero_shot)["fwt"] == pytest.approx(((30 - 20) + (40 - 25)) / 2)
    assert summarize(A3, next_task)["fwt"] is None
    assert summarize(A3, [None, 30.0, None], zero_shot)["fwt"] is None  # a missing N[i]: null, not a partial mean


def test_summarize_partial_chain_uses_the_stages_done():
    partial = [[60.0, None, None, None],
               [80.0, 70.0, None, None]]  # 2 of 4 stages
    figures = summarize(partial, next_task=[None, 30.0, 10.0, None], zero_shot=[5.0, 20.0, 0.0, 0.0])
    assert figures["avg"] == pytest.approx(75.0)
    assert figures["new"] == pytest.approx(65.0)
    assert figures["forgetting"] == pytest.approx(60 - 80)  # gained: negative forgetting
    assert figures["bwt"] == pytest.approx(20.0)
    assert figures["maa"] == pytest.approx((60 + 75) / 2)
    assert figures["fwt"] == pytest.approx(30 - 20)  # only task 2: task 3 is not trained yet


def test_summarize_missing_cells_give_null_not_guesses():
    figures = summarize([[60.0], [None, 70.0], [50.0, 75.0, 90.0]])
    assert figures["forgetting"] is None and figures["maa"] is None
    assert figures["avg"] == pytest.approx(215 / 3) and figures["bwt"] == pytest.approx(-2.5)


@pytest.mark.parametrize("bad, message", [
    ([[60.0, 5.0]], "above the diagonal"),
    ([[0.6], [101.0, 1.0]], "not a percentage"),
    ([], "no stages"),
])
def test_summarize_rejects_bad_matrices(bad, message):
    with pytest.raises(ValueError, match=message):
        summarize(bad)


# --------------------------------------------------------------------------------------------------- CLI

def write_score(root: Path, stage: str, task: str, accuracy: float, checkpoint: str = "") -> None:
    path = root / stage / task / "score.json" if stage else root / task / "score.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": task, "stage": stage or "Zero_shot", "metric": "m", "accuracy": accuracy,
                                "n": 10, "checkpoint": checkpoint or f"ckpt/{stage}"}))


@pytest.fixture
def results_tree(tmp_path):
    """Two CoIN stages done (ScienceQA, TextVQA), ImageNet scored after TextVQA (its `next`), zero-shot row."""
    results, zero = tmp_path / "results", tmp_path / "zero"
    write_score(results, "ScienceQA", "ScienceQA", 60.0)
    write_score(results, "ScienceQA", "TextVQA", 30.0)
    write_score(results, "TextVQA", "ScienceQA", 50.0)
    write_score(results, "TextVQA", "TextVQA", 70.0)
    write_score(results, "TextVQA", "ImageNet", 40.0)
    for task, accuracy in (("ScienceQA", 10.0), ("TextVQA", 20.0), ("ImageNet", 25.0)):
        write_score(zero, "", task, accuracy, "base")
    return results, zero


def test_cli_end_to_end(results_tree, tmp_path):
    results, zero = results_tree
    out = tmp_path / "out"
    summary = matrix_mod.main(["--results", str(results), "--zero-shot", str(zero), "--out", str(out)])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert set(on_disk) == {"tasks", "matrix", "next", "zero_shot", "avg", "new", "forgetting", "bwt", "maa", "fwt",
                            "checkpoints"}
    assert on_disk["tasks"] == ["ScienceQA", "TextVQA", "ImageNet"]
    assert on_disk["matrix"] == [[60.0, None, None], [50.0, 70.0, None]]
    assert on_disk["next"] == [None, 30.0, 40.0]
    assert on_disk["zero_shot"] == [10.0, 20.0, 25.0]
    assert on_disk["checkpoints"] == [["ckpt/ScienceQA", None, None], ["ckpt/TextVQA", "ckpt/TextVQA", None]]
    assert (on_disk["avg"], on_disk["forgetting"], on_disk["bwt"]) == (60.0, 10.0, -10.0)
    assert on_disk["fwt"] == pytest.approx(30 - 20)
    markdown = (out / "summary.md").read_text()
    assert "| TextVQA | 50.00 | 70.00 | – |" in markdown and "| Forgetting | 10.00 |" in markdown
    for name in ("matrix.png", "curves.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_cli_tasks_order_and_default_out(results_tree):
    results, _ = results_tree
    summary = matrix_mod.main(["--results", str(results), "--tasks", "ScienceQA", "TextVQA"])
    assert summary["tasks"] == ["ScienceQA", "TextVQA"] and summary["zero_shot"] is None
    assert (results / "summary.json").is_file() and (results / "matrix.png").is_file()


def test_cli_rejects_misplaced_score_and_stage_gaps(results_tree):
    results, _ = results_tree
    (results / "GQA").mkdir()
    with pytest.raises(ValueError, match="stage folder GQA exists but the earlier stage ImageNet does not"):
        matrix_mod.collect(results)
    (results / "GQA").rmdir()
    write_score(results, "TextVQA", "TextVQA", 70.0)
    misplaced = results / "TextVQA" / "TextVQA" / "score.json"
    misplaced.write_text(misplaced.read_text().replace('"task": "TextVQA"', '"task": "GQA"'))
    with pytest.raises(ValueError, match="records task 'GQA' but sits in the folder of task 'TextVQA'"):
        matrix_mod.collect(results)


def test_cli_runs_as_module(results_tree, tmp_path):
    results, zero = results_tree
    run = subprocess.run([sys.executable, "-m", "llava.eval.matrix", "--results", str(results), "--zero-shot",
                          str(zero), "--out", str(tmp_path / "m")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "| Avg (Last) | 60.00 |" in run.stdout
