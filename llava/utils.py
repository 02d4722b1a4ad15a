"""Small shared helpers: atomic file writes (a killed run never leaves a half-written file) and JSON loading
with errors that name the file, line and column."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> None:
    """Write through `write(fileobj)` to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    _atomic_write(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    _atomic_write(path, lambda f: f.write(data), "wb")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    _atomic_write(path, lambda f: torch.save(obj, f), "wb")


def load_json(path: str | os.PathLike) -> Any:
    """json.load with an error naming the file, line and column of a syntax error."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}. "
                         "Fix the JSON syntax there.") from None


def load_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a JSON-lines file; an error names the file and the line."""
    out = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: invalid JSON on line {lineno}, column {e.colno}: {e.msg}") from None
    return out


@contextlib.contextmanager
def hub_cache(cache_dir: str | os.PathLike | None):
    """Within the block, models, tokenizers and processors named by Hugging Face Hub id are downloaded to and
    looked up in `cache_dir` (upstream's `--cache_dir`); None keeps the hub's own cache. Local paths are
    unaffected. transformers and huggingface_hub read `constants.HF_HUB_CACHE` whenever no cache_dir is passed,
    so one setting covers every from_pretrained call in the block."""
    if cache_dir is None:
        yield
        return
    from huggingface_hub import constants

    saved = constants.HF_HUB_CACHE
    constants.HF_HUB_CACHE = os.path.abspath(os.path.expanduser(cache_dir))
    try:
        yield
    finally:
        constants.HF_HUB_CACHE = saved


def run_main(main: Callable[..., Any], *args, **kwargs) -> None:
    """Run a command's `main`; a bad-input error (ValueError, FileNotFoundError, FloatingPointError and their
    kinds) ends with its traceback and then, as the last line, `error: <message>` and exit status 1."""
    import sys
    import traceback

    try:
        main(*args, **kwargs)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        traceback.print_exc()
        sys.stderr.flush()
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
