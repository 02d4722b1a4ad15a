"""The mini base build's decisions (playground/mini_base.py, run by scripts/mini/pretrain.sh): its settings from the
environment, the retry decision of the base check, the cache key, and the build's order of phases (with the phases
faked: the real build is tests/test_mini_demo.py's)."""
import dataclasses
import json
import shutil

import pytest

from conftest import run
from playground import mini_base
from playground.mini_base import (SOURCES, VISION_SOURCE, BaseSettings, BuildError, BuildPaths, build, cache_key,
                                  data_digest, key_inputs, kept_try, should_retry, source_digests)
from playground.mini_coin.generate import generate


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_base_data")
    generate(root, seed=0, train_per_task=2, test_per_task=1, pretrain_size=12, tasks=("ScienceQA", "GQA"))
    return root


def test_settings_come_from_the_environment_with_the_documented_defaults():
    assert BaseSettings.from_env({}) == BaseSettings()
    assert BaseSettings().threads == 2 and BaseSettings.from_env({"OMP_NUM_THREADS": "1"}).threads == 1
    settings = BaseSettings.from_env({"LR": "3e-3", "ALIGN_TOWER": "True", "SELECT_LAYER": "-1", "THREADS": "4",
                                      "OMP_NUM_THREADS": "1", "ALIGN_DATA": "all", "STEPS": ""})
    assert (settings.lr, settings.align_tower, settings.select_layer, settings.threads) == (3e-3, True, -1, 4)
    assert settings.align_data == "all" and settings.steps == 800  # empty means unset, as in the shell


@pytest.mark.parametrize("name, value, message", [
    ("STEPS", "0", "STEPS must be > 0"),
    ("BASE_TRIES", "0", "BASE_TRIES must be > 0"),
    ("VISION_STEPS", "many", "VISION_STEPS must be an integer, got 'many'"),
    ("ALIGN_STEPS", "-5", "ALIGN_STEPS must be a non-negative integer, got -5"),
    ("ALIGN_TOWER", "yes", "ALIGN_TOWER must be True or False, got 'yes'"),
    ("SHAPE_CHECK", "1.5", "SHAPE_CHECK must be a fraction in [0, 1], got 1.5"),
    ("LR", "nan", "LR must be a finite number"),
    ("ALIGN_DATA", "some", "ALIGN_DATA must be captions or all, got 'some'"),
])
def test_a_bad_setting_is_one_error_naming_the_variable(name, value, message):
    with pytest.raises(BuildError, match=message.replace("[", r"\[").replace("]", r"\]")):
        BaseSettings.from_env({name: value})


def test_paths_default_to_the_format_versioned_data_and_checkpoints_mini(tmp_path):
    paths = BuildPaths.from_env({}, seed=3, format_version=7)
    assert paths.data_dir == mini_base.ROOT / "playground" / "data" / "mini_coin" / "seed3-format7"
    assert paths.mini_cache == mini_base.ROOT / "checkpoints" / "mini" and paths.base_dir is None
    choices = BuildPaths.from_env({}, seed=3, format_version=7, pretrain_choices=0.1)
    assert choices.data_dir.name == "seed3-format7-choices0.1"
    given = BuildPaths.from_env({"DATA_DIR": str(tmp_path), "BASE_DIR": "/b", "FORCE": "1"}, seed=0, format_version=1)
    assert (given.data_dir, given.base_dir, given.force, given.keep_work) == (tmp_path, mini_base.Path("/b"), True,
                                                                              False)
    with pytest.raises(BuildError, match="FORCE must be 0 or 1, got 'yes'"):
        BuildPaths.from_env({"FORCE": "yes"}, seed=0, format_version=1)


def test_the_retry_decision_keeps_the_first_pass_else_the_best_try():
    assert kept_try([0.95], 0.9) == (0, True)
    assert kept_try([0.3, 0.9, 1.0], 0.9) == (1, True)           # the threshold itself passes
    assert kept_try([0.38, 0.56, 0.75], 0.9) == (2, False)        # the benchmark base's tries (README)
    assert kept_try([0.5, 0.2, 0.5], 0.9) == (0, False)           # equal scores: the earliest
    assert should_retry([0.38], 0.9, tries=3) and should_retry([0.38, 0.56], 0.9, tries=3)
    assert not should_retry([0.38, 0.56, 0.75], 0.9, tries=3)     # out of tries
    assert not should_retry([0.38, 0.95], 0.9, tries=3)           # passed
    assert not should_retry([0.0], 0.0, tries=3)                  # a threshold of 0 passes any base
    with pytest.raises(ValueError):
        kept_try([], 0.9)


def changed(value):
    """Another value of the same type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, str):
        return "all" if value == "captions" else "captions"
    return value * 2 + 1 if isinstance(value, int) else (value / 2 if value else 0.5)


def test_the_key_covers_every_setting_the_format_version_the_data_and_the_sources(data, tmp_path):
    settings = BaseSettings()
    sources = source_digests(settings)
    assert set(sources) == set(SOURCES) | {VISION_SOURCE}
    assert set(source_digests(dataclasses.replace(settings, vision_steps=0))) == set(SOURCES)
    digest = data_digest(data)
    key = cache_key(key_inputs(settings, 1, digest, sources))
    assert key == cache_key(key_inputs(BaseSettings(), 1, data_digest(data), source_digests(BaseSettings())))
    keys = {key}
    for field in dataclasses.fields(BaseSettings):
        other = dataclasses.replace(settings, **{field.name: changed(getattr(settings, field.name))})
        keys.add(cache_key(key_inputs(other, 1, digest, sources)))
    keys.add(cache_key(key_inputs(settings, 2, digest, sources)))
    keys.add(cache_key(key_inputs(settings, 1, digest, {**sources, "llava/model/tiny.py": "0" * 64})))
    assert len(keys) == len(dataclasses.fields(BaseSettings)) + 3

    # The data: the tokenizer corpus (pre-training records and the multitask union), the metadata, the images.
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    assert data_digest(copy) == digest
    image = copy / "cl_dataset" / json.loads((copy / "Pretrain" / "pretrain.json").read_text())[5]["image"]
    image.write_bytes(image.read_bytes() + b"\0")
    assert data_digest(copy) != digest
    shutil.copy(data / "cl_dataset" / image.relative_to(copy / "cl_dataset"), image)
    assert data_digest(copy) == digest
    (copy / "Instructions" / "Multitask" / "train.json").write_text("[]")
    assert data_digest(copy) != digest
    image.unlink()
    with pytest.raises(BuildError, match=f"{image} missing"):
        data_digest(copy)


class FakeRunner:
    """Stands in for the phases: records every command, writes what each would write, and answers the base check
    with the scripted shape scores."""

    def __init__(self, shapes):
        self.shapes, self.commands = list(shapes), []

    def run(self, command, what, quiet=False):
        self.commands.append(command)
        flag = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
        if "llava.train.train" in command:
            mini_base.Path(flag["--output_dir"]).mkdir(parents=True)
            (mini_base.Path(flag["--output_dir"]) / "config.json").write_text("{}")
        elif "llava.model.export_base" in command:
            mini_base.Path(flag["--output_dir"]).mkdir(parents=True, exist_ok=True)

    def last_line(self, command, what):
        self.commands.append(command)
        return json.dumps({"shape": self.shapes.pop(0), "colour": 0.5, "place": 0.1, "count": 64})


def phases(commands):
    """(phase, --seed, initial model directory name) of each training command, else the module or script."""
    out = []
    for command in commands:
        if "llava.train.train" in command:
            init = mini_base.Path(command[command.index("--model_name_or_path") + 1]).parent.name
            out.append((command[command.index("--version") + 1], command[command.index("--seed") + 1], init))
        else:
            out.append(command[2] if command[1] == "-m" else command[1])
    return out


def one_try(seed: str) -> list:
    """The phases of one try of alignment + instruction with training seed `seed`."""
    return [("plain", seed, "tiny"), "llava.model.export_base", ("v1", seed, "align_base"), "llava.model.export_base",
            "playground/mini_base_check.py"]


def test_the_build_retries_with_the_next_seed_keeps_the_best_try_and_is_cached(data, tmp_path, capsys):
    settings = BaseSettings(seed=5, pretrain_size=12, base_tries=3, shape_check=0.9)
    paths = BuildPaths(data_dir=data, mini_cache=tmp_path / "cache")
    runner = FakeRunner([0.38, 0.56, 0.75])
    base = build(settings, paths, runner, format_version=1, python="python")
    assert phases(runner.commands) == (["llava.model.tiny", "playground/mini_vision_pretrain.py"] + one_try("5")
                                       + one_try("6") + one_try("7") + ["llava.model.export_base"])
    export = runner.commands[-1]
    assert export[export.index("--model-path") + 1].endswith("try2/instruct") and base.name.startswith("base-")
    printed = capsys.readouterr().out
    assert "WARNING: none of 3 tries passed the base check (0.9); keeping try 3 (shape 0.75)" in printed
    record = json.loads((base / "pretrain_settings.json").read_text())
    assert record["training_seed"] == 7 and [c["shape"] for c in record["base_checks"]] == [0.38, 0.56, 0.75]
    assert record["settings"] == dataclasses.asdict(settings) and record["data"] == data_digest(data)
    assert (base / "PRETRAIN_DONE").read_text().strip() == record["hash"] == base.name[len("base-"):]
    assert not any(tmp_path.glob("cache/work-*"))

    again = FakeRunner([])
    assert build(settings, paths, again, format_version=1, python="python") == base and again.commands == []
    assert f"reusing the cached base in {base}" in capsys.readouterr().out

    forced = FakeRunner([0.95])
    build(settings, dataclasses.replace(paths, force=True, keep_work=True), forced, format_version=1, python="python")
    assert [p[1] for p in phases(forced.commands) if isinstance(p, tuple)] == ["5", "5"]  # passed at the first try
    assert json.loads((base / "pretrain_settings.json").read_text())["training_seed"] == 5
    assert (tmp_path / "cache" / f"work-{base.name[len('base-'):]}" / "try0").is_dir()


def test_existing_data_must_match_the_generator_settings(data, tmp_path):
    paths = BuildPaths(data_dir=data, mini_cache=tmp_path)
    with pytest.raises(BuildError, match=f"{data} was generated with pretrain_size 12 but PRETRAIN_SIZE=20000"):
        build(BaseSettings(), paths, FakeRunner([]), format_version=1)
    with pytest.raises(BuildError, match="image_size 96 but IMAGE_SIZE=64"):
        build(BaseSettings(image_size=64, pretrain_size=12), paths, FakeRunner([]), format_version=1)


def test_pretrain_sh_reports_a_bad_setting_and_stops(tmp_path):
    failed = run(["bash", "scripts/mini/pretrain.sh"], check=False, timeout=120, STEPS="0", MINI_CACHE=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == "[mini-pretrain] error: STEPS must be > 0"
    assert not any(tmp_path.iterdir())
