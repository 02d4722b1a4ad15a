"""The mini base check (playground/mini_base_check.py): the fraction of fresh one-object scenes whose shape and
colour the base names; scripts/mini/pretrain.sh retries a base that fails it."""
import json
import shutil

import pytest

from conftest import run
from playground.mini_base_check import check_base, main


@pytest.fixture
def base(tiny, tmp_path):
    """The untrained test base (lm/, vision/, mm_projector.bin): it names nothing."""
    target = tmp_path / "base"
    for name in ("lm", "vision"):
        shutil.copytree(tiny / name, target / name)
    shutil.copy(tiny / "mm_projector.bin", target / "mm_projector.bin")
    return target


def test_an_untrained_base_scores_near_zero_and_the_scores_are_fractions(base):
    scores = check_base(base, count=6)
    assert scores["count"] == 6
    assert scores["shape"] < 0.5 and 0 <= scores["colour"] <= 1


def test_cli_prints_one_json_line_and_rejects_a_directory_that_is_not_a_base(base, tmp_path):
    printed = run(["python", "playground/mini_base_check.py", "--base", str(base), "--count", "4"], timeout=300)
    assert set(json.loads(printed.stdout.strip().splitlines()[-1])) == {"shape", "colour", "place", "count"}
    with pytest.raises(SystemExit):
        main(["--base", str(tmp_path / "nothing")])
