"""Build the mini-CoIN base model, the stand-in for Vicuna + CLIP + LLaVA's pretrain projector
(`bash scripts/mini/pretrain.sh` runs `python -m playground.mini_base`; settings from the environment, see
BaseSettings). Each phase is one command line, run in the repository root:

1. data:      DATA_DIR/Pretrain/pretrain.json (captions + generic image Q&A); generated with
              `playground/make_mini_coin.py --seed SEED --image_size IMAGE_SIZE --pretrain_size PRETRAIN_SIZE`
              when DATA_DIR has none (existing data must have been made with the same IMAGE_SIZE and PRETRAIN_SIZE).
2. model:     `python -m llava.model.tiny --size mini` (a ~2.2 M-parameter Llama LM + CLIP tower 96 px / patch 32 +
              projector, all untrained), its SentencePiece tokenizer trained on the generated training text and the
              conversation template's system prompt (so prompts tokenize compactly).
2b. vision:   `playground/mini_vision_pretrain.py`, VISION_STEPS steps (0: skipped): the untrained tower learns to
              classify every grid cell's shape, colour, letter and place, the stand-in for CLIP's own pre-training
              (captioning alone leaves the tiny tower nearly blind to shape; results/mini_coin/tuning.md).
3. alignment: `llava/train/train.py`, the LM's parameters (the projector too when ALIGN_PROJECTOR=True, the tower
              when ALIGN_TOWER=True), conversation template `plain` (image -> answer text, no system prompt or
              question: short sequences, and the text can only be predicted from the image), ALIGN_STEPS steps
              (0: skipped). This is the step that teaches the LM to read the image tokens; LLaVA's stage 1 trains
              the projector instead, against a frozen, already-trained LM.
4. instruct:  `llava/train/train.py` again, LM and projector (the tower too when INSTRUCT_TOWER=True), template `v1`
              (vicuna_v1, the CoIN chain's), the same captions + Q&A, STEPS steps: the base answers questions about
              images.
4b. check:    `playground/mini_base_check.py`: does the base name the shape of a lone object in a fresh scene?
              Whether the tiny LM learns that in alignment is a coin flip between seeds (even between thread
              counts); below SHAPE_CHECK, phases 3-4 run again from the vision phase's tower with the next training
              seed, at most BASE_TRIES times. The base kept is the first try that passes, else the best one (the
              earliest of equal scores), with a warning (`kept_try`, `should_retry`).
5. export:    `python -m llava.model.export_base` -> BASE_DIR/lm, BASE_DIR/vision, BASE_DIR/mm_projector.bin, the
              layout of --model_name_or_path / --vision_tower / --pretrain_mm_mlp_adapter.
(Phases 3 and 4 each write a full model directory; the export of phase 3 is phase 4's starting point.)

The result is cached: BASE_DIR/PRETRAIN_DONE holds the build's key (`cache_key`: every BaseSettings field, the
generator's FORMAT_VERSION, the digests of the pre-training data and of the sources that define the model); a run
whose key matches reuses the base and says so, FORCE=1 rebuilds. BASE_DIR/pretrain_settings.json records the
settings, what the key covers, the tries' checks and the training seed kept. The last line printed is
`BASE_DIR=<path>`.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping

from llava.conversation import conv_templates
from llava.utils import atomic_write_text
from playground.make_mini_coin import FORMAT_VERSION
from playground.mini_coin.pretraining import CAPTION_PROMPTS

ROOT = Path(__file__).resolve().parents[1]
# The sources that define the base besides the data (repository-relative); the vision phase's only when it runs.
SOURCES = ("scripts/mini/pretrain.sh", "playground/mini_base.py", "playground/mini_base_check.py",
           "llava/model/tiny.py")
VISION_SOURCE = "playground/mini_vision_pretrain.py"
# Output lines of the training phases that only repeat progress bars and the CPU-accelerator notice.
NOISE_AT_START = (b"Loading weights",)
NOISE_ANYWHERE = (b"Writing model shards", b"real_accelerator")
CHAIN_FLAGS = "--mm_vision_select_layer must equal select_layer; --version v1"


class BuildError(RuntimeError):
    """A setting, the data or a phase is wrong; the message says which and what to do."""


@dataclass(frozen=True)
class BaseSettings:
    """What the base is built with; each field is read from the environment variable of its upper-case name
    (`from_env`). Steps and batch sizes are counts, learning rates per step, select_layer indexes the tower's hidden
    states like --mm_vision_select_layer (the CoIN scripts pass -2; the chain must use the same)."""

    seed: int = 0                     # data seed (when generating), model-init seed and first training seed
    image_size: int = 96              # generator image side in px (the tower sees 3x3 patches of 32 px)
    pretrain_size: int = 20000        # pre-training records the generator writes
    pretrain_choices: float = 0.0     # share of them that are multiple-choice questions answered with a letter
    vision_steps: int = 300           # vision pre-training steps (0: skipped)
    vision_batch_size: int = 64
    vision_lr: float = 1e-3
    vision_place_weight: float = 0.3  # weight of the vision phase's where-is-this-patch loss (0: none)
    align_steps: int = 800            # alignment steps, template `plain` (0: skipped)
    align_lr: float = 3e-3
    align_batch_size: int = 32
    align_data: str = "captions"      # `captions` (the captioning records of pretrain.json: each names every
                                      # object, colour, position, word and title in the image) or `all`
    align_tower: bool = False         # train the tower during alignment (False: keep the vision phase's)
    align_projector: bool = False     # train the projector during alignment (False: it stays as initialised and the
                                      # LM learns to read it; trained, it squashed shape out of the image tokens on
                                      # some seeds)
    instruct_tower: bool = False      # train the tower during the instruction phase
    steps: int = 800                  # instruction steps, template `v1`
    lr: float = 2e-3
    batch_size: int = 16
    base_tries: int = 3               # tries of phases 3-4, training seeds seed, seed+1, ...
    shape_check: float = 0.9          # the base check's shape score a try must reach, a fraction in [0, 1]
    warmup_steps: int = 30            # both training phases (cosine schedule, gradient clipping 1.0)
    weight_decay: float = 0.01
    select_layer: int = -2
    threads: int = 2                  # torch threads of every phase (default: $OMP_NUM_THREADS, else 2); the
                                      # weights depend on it

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            name = field.name.upper()
            if field.type == "int" and field.name != "select_layer" and value < 0:
                raise BuildError(f"{name} must be a non-negative integer, got {value}")
            if field.type == "float" and not math.isfinite(value):
                raise BuildError(f"{name} must be a finite number, got {value}")
        for name in ("steps", "base_tries", "threads"):
            if getattr(self, name) <= 0:
                raise BuildError(f"{name.upper()} must be > 0")
        if not 0 <= self.pretrain_choices < 1:
            raise BuildError(f"PRETRAIN_CHOICES must be a fraction in [0, 1), got {self.pretrain_choices}")
        if not 0 <= self.shape_check <= 1:
            raise BuildError(f"SHAPE_CHECK must be a fraction in [0, 1], got {self.shape_check}")
        if self.align_data not in ("captions", "all"):
            raise BuildError(f"ALIGN_DATA must be captions or all, got '{self.align_data}'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BaseSettings:
        """The settings from environment variables (SEED, IMAGE_SIZE, ...); unset ones keep their defaults, THREADS
        defaults to OMP_NUM_THREADS. Booleans are True or False, as train.py's flags."""
        values = {}
        defaults = {"threads": environ.get("OMP_NUM_THREADS", "")}
        for field in fields(cls):
            text = environ.get(field.name.upper(), "") or defaults.get(field.name, "")
            if text:
                values[field.name] = _parse(field.name.upper(), text, field.type)
        return cls(**values)


def _parse(name: str, text: str, kind: str) -> int | float | bool | str:
    if kind == "bool":
        if text not in ("True", "False"):
            raise BuildError(f"{name} must be True or False, got '{text}'")
        return text == "True"
    try:
        return int(text) if kind == "int" else float(text) if kind == "float" else text
    except ValueError:
        raise BuildError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got '{text}'") from None


@dataclass(frozen=True)
class BuildPaths:
    """Where the build reads and writes: data_dir holds the generated mini-CoIN; work directories go under
    mini_cache; base_dir None means mini_cache/base-<key>. force: rebuild even when cached; keep_work: keep the work
    directory (every try's models) after the build."""

    data_dir: Path
    mini_cache: Path
    base_dir: Path | None = None
    force: bool = False
    keep_work: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str], seed: int, format_version: int,
                 pretrain_choices: float = 0.0) -> BuildPaths:
        """DATA_DIR [playground/data/mini_coin/seed<SEED>-format<FORMAT_VERSION>, + -choices<F> with
        PRETRAIN_CHOICES], MINI_CACHE [checkpoints/mini], BASE_DIR, FORCE [0], KEEP_WORK [0] (both 0 or 1)."""
        flags = {}
        for name in ("FORCE", "KEEP_WORK"):
            text = environ.get(name, "") or "0"
            if text not in ("0", "1"):
                raise BuildError(f"{name} must be 0 or 1, got '{text}'")
            flags[name.lower()] = text == "1"
        generated = ROOT / "playground" / "data" / "mini_coin" / (
            f"seed{seed}-format{format_version}" + (f"-choices{pretrain_choices:g}" if pretrain_choices else ""))
        base_dir = environ.get("BASE_DIR")
        return cls(data_dir=Path(environ.get("DATA_DIR") or generated),
                   mini_cache=Path(environ.get("MINI_CACHE") or ROOT / "checkpoints" / "mini"),
                   base_dir=Path(base_dir) if base_dir else None, **flags)


# ---------------------------------------------------------------------------------------------- the retry decision


def kept_try(shapes: list[float], threshold: float) -> tuple[int, bool]:
    """(index of the try to keep, whether it passed): the first try whose shape score reaches threshold, else the
    one with the highest score (the earliest of equal ones). shapes: the base check's shape score of each try run."""
    if not shapes:
        raise ValueError("no tries to choose from")
    for index, shape in enumerate(shapes):
        if shape >= threshold:
            return index, True
    return shapes.index(max(shapes)), False


def should_retry(shapes: list[float], threshold: float, tries: int) -> bool:
    """Whether to run another try: none has passed yet and fewer than `tries` have run."""
    return len(shapes) < tries and not any(shape >= threshold for shape in shapes)


# ---------------------------------------------------------------------------------------------- the cache key


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corpus_files(data_dir: Path) -> list[Path]:
    """The text the tokenizer is trained on: the pre-training records and, when generated, the multitask union."""
    multitask = data_dir / "Instructions" / "Multitask" / "train.json"
    return [data_dir / "Pretrain" / "pretrain.json"] + ([multitask] if multitask.is_file() else [])


def data_digest(data_dir: Path) -> str:
    """sha256 over everything the build reads from data_dir: the tokenizer corpus, mini_coin_meta.json and every
    image pretrain.json names (paths relative to data_dir, each with its bytes)."""
    pretrain = data_dir / "Pretrain" / "pretrain.json"
    images = sorted({record["image"] for record in json.loads(pretrain.read_text(encoding="utf-8"))})
    files = corpus_files(data_dir) + [data_dir / "mini_coin_meta.json"]
    files += [data_dir / "cl_dataset" / image for image in images]
    digest = hashlib.sha256()
    for path in files:
        if not path.is_file():
            raise BuildError(f"{path} missing (named by {pretrain}); regenerate DATA_DIR or remove it")
        digest.update(path.relative_to(data_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def source_digests(settings: BaseSettings, root: Path = ROOT) -> dict[str, str]:
    """{repository path: sha256} of the sources that define the base (the vision phase's when it runs)."""
    paths = SOURCES + ((VISION_SOURCE,) if settings.vision_steps > 0 else ())
    return {path: _sha256(root / path) for path in paths}


def key_inputs(settings: BaseSettings, format_version: int, data: str, sources: dict[str, str]) -> dict:
    """Everything the cache key covers, as recorded in pretrain_settings.json."""
    return {"settings": asdict(settings), "format_version": format_version, "data": data, "sources": sources}


def cache_key(inputs: dict) -> str:
    """16 hex digits of sha256 over key_inputs(...) in canonical JSON."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- running phases


def log(message: str) -> None:
    print(f"[mini-pretrain {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _noise(line: bytes) -> bool:
    return line.startswith(NOISE_AT_START) or any(part in line for part in NOISE_ANYWHERE)


class Runner:
    """Runs the build's commands in `root` with `env`, showing their output (stdout and stderr in order)."""

    def __init__(self, root: Path, env: Mapping[str, str]):
        self.root, self.env = root, dict(env)

    def run(self, command: list[str], what: str, quiet: bool = False) -> None:
        """Run command; progress-bar and accelerator-notice lines are dropped, quiet drops its stdout (stderr
        is shown). A non-zero exit is a BuildError naming `what`."""
        if quiet:
            done = subprocess.run(command, cwd=self.root, env=self.env, stdout=subprocess.DEVNULL)
            code = done.returncode
        else:
            with subprocess.Popen(command, cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT) as process:
                for line in process.stdout:
                    if not _noise(line):
                        sys.stdout.buffer.write(line)
                        sys.stdout.flush()
            code = process.returncode
        if code != 0:
            raise BuildError(f"{what} failed (exit {code}; see the output above)")

    def last_line(self, command: list[str], what: str) -> str:
        """The last line command prints on stdout (stderr is shown)."""
        done = subprocess.run(command, cwd=self.root, env=self.env, stdout=subprocess.PIPE, text=True)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise BuildError(f"{what} failed (exit {done.returncode}; see the output above)")
        return lines[-1]


def build_env(settings: BaseSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """The phases' environment: `threads` torch threads, offline, the repository importable."""
    path = environ.get("PYTHONPATH")
    return {**environ, "OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


def train_command(python: str, settings: BaseSettings, template: str, init: Path, steps: int, lr: float,
                  batch: int, data: Path, image_folder: Path, tower: bool, projector: bool, seed: int,
                  out: Path) -> list[str]:
    """One full (not LoRA) training phase through train.py, every LM parameter trained; tower, projector: whether
    they are trained too."""
    return [
        python, "-m", "llava.train.train",
        "--model_name_or_path", f"{init}/lm", "--vision_tower", f"{init}/vision",
        "--pretrain_mm_mlp_adapter", f"{init}/mm_projector.bin",
        "--version", template, "--mm_projector_type", "mlp2x_gelu",
        "--mm_vision_select_layer", str(settings.select_layer),
        "--mm_use_im_start_end", "False", "--mm_use_im_patch_token", "False", "--image_aspect_ratio", "pad",
        "--unfreeze_mm_vision_tower", str(tower), "--freeze_mm_mlp_adapter", str(not projector),
        "--lora_enable", "False",
        "--data_path", str(data), "--image_folder", str(image_folder),
        "--per_device_train_batch_size", str(batch), "--gradient_accumulation_steps", "1", "--max_steps", str(steps),
        "--learning_rate", repr(lr), "--weight_decay", repr(settings.weight_decay),
        "--warmup_steps", str(settings.warmup_steps),
        "--lr_scheduler_type", "cosine", "--max_grad_norm", "1.0", "--bf16", "False", "--model_max_length", "256",
        "--logging_steps", "25", "--disable_tqdm", "True", "--save_strategy", "no", "--report_to", "none",
        "--dataloader_num_workers", "0", "--seed", str(seed), "--output_dir", str(out),
    ]


def caption_records(pretrain_json: Path) -> list[dict]:
    """The captioning records of pretrain.json (their question is one of the generator's CAPTION_PROMPTS)."""
    records = json.loads(pretrain_json.read_text(encoding="utf-8"))
    captions = [r for r in records if r["conversations"][0]["value"].split("\n", 1)[-1] in CAPTION_PROMPTS]
    if not captions:
        raise BuildError(f"{pretrain_json}: no captioning records (prompts {CAPTION_PROMPTS}); use ALIGN_DATA=all")
    return captions


def template_corpus(files: list[Path]) -> str:
    """The vicuna_v1 system prompt and role names, once per record of files: every rendered training sample starts
    with them, so weighted like that in the tokenizer corpus they become whole-word pieces (33 tokens, not ~90)."""
    conv = conv_templates["vicuna_v1"]
    count = sum(len(json.loads(path.read_text(encoding="utf-8"))) for path in files)
    return f"{conv.system} {conv.roles[0]}: {conv.roles[1]}:\n" * count


def ensure_data(settings: BaseSettings, data_dir: Path, runner: Runner, python: str) -> None:
    """Generate mini-CoIN into data_dir unless it holds one; existing data must match IMAGE_SIZE, PRETRAIN_SIZE and
    PRETRAIN_CHOICES."""
    meta_path, pretrain = data_dir / "mini_coin_meta.json", data_dir / "Pretrain" / "pretrain.json"
    if not (pretrain.is_file() and meta_path.is_file()):
        log(f"generating mini-CoIN (seed {settings.seed}, {settings.image_size} px, {settings.pretrain_size} "
            f"pre-training records) in {data_dir}")
        runner.run([python, "playground/make_mini_coin.py", "--output_dir", str(data_dir), "--seed", str(settings.seed),
                    "--image_size", str(settings.image_size), "--pretrain_size", str(settings.pretrain_size),
                    "--pretrain_choices", str(settings.pretrain_choices)],
                   "generating mini-CoIN")
    args = json.loads(meta_path.read_text(encoding="utf-8"))["args"]
    for name in ("image_size", "pretrain_size", "pretrain_choices"):
        if args.get(name, 0.0) != getattr(settings, name):
            raise BuildError(f"{data_dir} was generated with {name} {args[name]} but {name.upper()}="
                             f"{getattr(settings, name)}; use another DATA_DIR or {name.upper()}={args[name]}")


def build(settings: BaseSettings, paths: BuildPaths, runner: Runner, format_version: int,
          python: str = sys.executable) -> Path:
    """Build (or reuse) the base; returns its directory."""
    started = time.monotonic()
    data_dir = paths.data_dir
    pretrain_json = data_dir / "Pretrain" / "pretrain.json"
    ensure_data(settings, data_dir, runner, python)
    corpus = corpus_files(data_dir)
    inputs = key_inputs(settings, format_version, data_digest(data_dir), source_digests(settings))
    key = cache_key(inputs)
    base_dir = paths.base_dir or paths.mini_cache / f"base-{key}"
    done = base_dir / "PRETRAIN_DONE"
    if not paths.force and done.is_file() and done.read_text().strip() == key:
        log(f"reusing the cached base in {base_dir} (key {key} matches; FORCE=1 rebuilds)")
        return base_dir

    work = paths.mini_cache / f"work-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"building the base (key {key}): {asdict(settings)}; work dir {work}")

    (work / "template_corpus.txt").write_text(template_corpus(corpus), encoding="utf-8")
    log(f"model: python -m llava.model.tiny --size mini (tokenizer corpus: {' '.join(p.name for p in corpus)} + the "
        "v1 system prompt)")
    runner.run([python, "-m", "llava.model.tiny", "--output_dir", str(work / "tiny"), "--size", "mini",
                "--seed", str(settings.seed), "--corpus", str(work / "template_corpus.txt"), *map(str, corpus)],
               "the model build")
    vision_start = work / "tiny"
    if settings.vision_steps > 0:
        log(f"vision: playground/mini_vision_pretrain.py, {settings.vision_steps} steps x batch "
            f"{settings.vision_batch_size}, lr {settings.vision_lr:g} (per-cell shape, colour, letter; place at weight "
            f"{settings.vision_place_weight:g})")
        runner.run([python, "playground/mini_vision_pretrain.py", "--vision_tower", str(vision_start / "vision"),
                    "--steps", str(settings.vision_steps), "--batch_size", str(settings.vision_batch_size),
                    "--lr", repr(settings.vision_lr), "--seed", str(settings.seed),
                    "--select_layer", str(settings.select_layer), "--place_weight", repr(settings.vision_place_weight)],
                   "vision pre-training")
    align_json = pretrain_json
    if settings.align_steps > 0 and settings.align_data == "captions":
        captions = caption_records(pretrain_json)
        align_json = work / "align.json"
        align_json.write_text(json.dumps(captions), encoding="utf-8")
        log(f"alignment data: {len(captions)} captioning records of pretrain.json")

    checks: list[dict] = []
    while not checks or should_retry([c["shape"] for c in checks], settings.shape_check, settings.base_tries):
        attempt = len(checks)
        seed, out = settings.seed + attempt, work / f"try{attempt}"
        label = f"(try {attempt + 1} of {settings.base_tries}, seed {seed})"
        start = vision_start
        if settings.align_steps > 0:
            _train(runner, python, settings, f"alignment {label}", "plain", start, settings.align_steps,
                   settings.align_lr, settings.align_batch_size, align_json, data_dir, settings.align_tower,
                   settings.align_projector, seed, out / "align")
            _export(runner, python, out / "align", out / "align_base", quiet=True)
            start = out / "align_base"
        _train(runner, python, settings, f"instruction {label}", "v1", start, settings.steps, settings.lr,
               settings.batch_size, pretrain_json, data_dir, settings.instruct_tower, True, seed, out / "instruct")
        _export(runner, python, out / "instruct", out / "base", quiet=True)
        line = runner.last_line([python, "playground/mini_base_check.py", "--base", str(out / "base"),
                                 "--threads", str(settings.threads), "--select_layer", str(settings.select_layer)],
                                f"the base check of {out / 'base'}")
        checks.append(json.loads(line))
        log(f"base check (try {attempt + 1}, seed {seed}): {line}; names a lone object's shape: "
            f"{checks[-1]['shape']} (needed: {settings.shape_check})")

    kept, passed = kept_try([c["shape"] for c in checks], settings.shape_check)
    if not passed:
        log(f"WARNING: none of {settings.base_tries} tries passed the base check ({settings.shape_check}); keeping "
            f"try {kept + 1} (shape {checks[kept]['shape']}): task questions about shapes are answered worse than "
            "with a base that passes (results/mini_coin/tuning.md)")
    log(f"export: try {kept + 1} -> {base_dir}")
    _export(runner, python, work / f"try{kept}" / "instruct", base_dir)
    record = {"hash": key, **inputs, "data_dir": str(data_dir), "build_seconds": int(time.monotonic() - started),
              "training_seed": settings.seed + kept, "base_checks": checks, "chain_flags": CHAIN_FLAGS}
    (base_dir / "pretrain_settings.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    atomic_write_text(done, key + "\n")
    if not paths.keep_work:
        shutil.rmtree(work)
    log(f"base ready in {int(time.monotonic() - started)} s: {base_dir} (lm/, vision/, mm_projector.bin)")
    return base_dir


def _train(runner: Runner, python: str, settings: BaseSettings, name: str, template: str, init: Path, steps: int,
           lr: float, batch: int, data: Path, data_dir: Path, tower: bool, projector: bool, seed: int,
           out: Path) -> None:
    log(f"{name}: llava/train/train.py --version {template}, {steps} steps x batch {batch}, lr {lr:g}, LM trained "
        f"(vision tower: {tower}, projector: {projector})")
    runner.run(train_command(python, settings, template, init, steps, lr, batch, data, data_dir / "cl_dataset",
                             tower, projector, seed, out), name)
    if not (out / "config.json").is_file():
        raise BuildError(f"{name} wrote no model to {out}")


def _export(runner: Runner, python: str, model: Path, out: Path, quiet: bool = False) -> None:
    runner.run([python, "-m", "llava.model.export_base", "--model-path", str(model), "--output_dir", str(out)],
               f"the export of {model}", quiet=quiet)


def main(environ: Mapping[str, str] = os.environ) -> None:
    try:
        settings = BaseSettings.from_env(environ)
        paths = BuildPaths.from_env(environ, settings.seed, FORMAT_VERSION, settings.pretrain_choices)
        base_dir = build(settings, paths, Runner(ROOT, build_env(settings, environ)), FORMAT_VERSION)
    except BuildError as err:
        print(f"[mini-pretrain] error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(f"BASE_DIR={base_dir}", flush=True)


if __name__ == "__main__":
    main()
