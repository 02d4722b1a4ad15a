"""The forgetting-shape checks of the calibrated profile: a chain that forgets the way real CoIN forgets passes them,
each way of forgetting differently fails the check it should, and the report shows them per seed."""
import json

import pytest

from llava.eval.forgetting_shape import recoveries, seed_shape
from llava.eval.matrix import summarize
from llava.eval.report import main as report_main

TASKS = ["ScienceQA", "TextVQA", "ImageNet", "GQA", "VizWiz", "Grounding", "VQAv2", "OCRVQA"]
# A calibrated seed's matrix (rows: after each stage): the format-distinct tasks wiped out, the short-answer ones
# collapsing under ImageNet and Grounding and coming back under GQA and VQAv2.
CALIBRATED = [
    [65, 0, 0, 0, 0, 0, 0, 0],
    [0, 55, 0, 0, 0, 0, 0, 0],
    [0, 2, 66, 0, 0, 0, 0, 0],
    [0, 57, 2, 56, 0, 0, 0, 0],
    [0, 22, 13, 44, 54, 0, 0, 0],
    [0, 1, 0, 5, 0, 30, 0, 0],
    [0, 61, 5, 48, 40, 1, 46, 0],
    [7, 42, 0, 39, 17, 0, 35, 49],
]


def summary(matrix):
    """summary.json of a chain with this matrix: cells above the diagonal (tasks not yet trained) are null."""
    matrix = [[v if i <= j else None for i, v in enumerate(row)] for j, row in enumerate(matrix)]
    return {"tasks": TASKS, "matrix": matrix, **summarize(matrix)}


def test_a_chain_that_forgets_like_real_coin_passes_every_check():
    shape = seed_shape(summary(CALIBRATED), [70.0] * 8)
    assert shape["checks"] == {"forgetting": True, "new": True, "kept": True, "below_5": True, "multitask": True,
                               "recovery": True}
    assert shape["below_5"] == ["ImageNet", "Grounding"]
    assert shape["kept"]["TextVQA"] == pytest.approx(42 / 55)
    assert [r["task"] for r in recoveries(CALIBRATED, TASKS)] == ["TextVQA", "GQA", "VizWiz"]
    assert recoveries(CALIBRATED, TASKS)[0] == {"task": "TextVQA", "new": 55, "low_after": "ImageNet", "low": 2,
                                                "high_after": "GQA", "high": 57}


def test_each_way_of_forgetting_otherwise_fails_its_check():
    harsh = [row[:] for row in CALIBRATED]
    harsh[-1] = [0, 0, 0, 10, 15, 0, 12, 49]           # the last stage takes nearly everything
    failed = [k for k, ok in seed_shape(summary(harsh), [70.0] * 8)["checks"].items() if ok is False]
    assert failed == ["forgetting", "kept", "below_5"]
    no_recovery = [row[:] for row in CALIBRATED]
    for j in range(2, 8):                               # what collapses stays down
        for i in (1, 3, 4):
            if j > i:
                no_recovery[j][i] = min(no_recovery[j][i], 1)
    assert seed_shape(summary(no_recovery), None)["checks"]["recovery"] is False
    weak_multitask = seed_shape(summary(CALIBRATED), [70.0] * 5 + [47.0] + [70.0] * 2)["checks"]
    assert weak_multitask["multitask"] is False
    assert seed_shape(summary(CALIBRATED), None)["checks"]["multitask"] is None   # not run: neither


def test_an_unfinished_chain_is_refused():
    with pytest.raises(ValueError, match="3 of 8 stages"):
        seed_shape(summary(CALIBRATED) | {"matrix": CALIBRATED[:3]}, None)


def test_the_report_shows_the_shape_per_seed(tmp_path):
    runs = []
    for seed in range(2):
        run = tmp_path / f"seed{seed}"
        (run / "results" / "LoRA").mkdir(parents=True)
        (run / "results" / "LoRA" / "summary.json").write_text(json.dumps(
            summary(CALIBRATED)))
        for task in TASKS:                               # seed 0 has a multitask run, seed 1 none
            if seed == 0:
                (run / "results" / "Multitask" / task).mkdir(parents=True)
                (run / "results" / "Multitask" / task / "score.json").write_text(json.dumps({"accuracy": 47.0}))
        runs.append(str(run))
    report = report_main(["--runs", *runs, "--methods", "LoRA", "--out", str(tmp_path / "out")])
    assert [s["checks"]["multitask"] for s in report["shape"]["seeds"]] == [False, None]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Forgetting shape: LoRA against real CoIN's" in text
    assert "| 0 | 34.0 | 52.6 |" in text and text.count("| 34.0 | 52.6 |") == 2
    assert "| multitask |" in text and "| none |" in text          # seed 0 fails the multitask check, seed 1 none
    assert json.loads((tmp_path / "out" / "report.json").read_text())["shape"]["seeds"][1]["checks"]["multitask"] is None
